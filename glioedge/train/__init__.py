"""Single-stage knowledge distillation training (teacher + student nnU-Nets in one run)."""
