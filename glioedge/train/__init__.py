"""Single-stage knowledge distillation training (teacher + student nnU-Nets in one run).

Owns the networks and their plans (:mod:`.networks`, :mod:`.plan`), the losses, the trainer and
its schedule, DDP (:mod:`.distributed`), checkpoints (:mod:`.checkpoint`), validation and the
training history; :mod:`.run` is ``glioedge train``. Imports torch (the only part besides
``export`` and the runtime's optional torch back-end that does).

May import: the ground floor, ``data``, ``metrics`` (``tests/test_architecture.py``).
"""
