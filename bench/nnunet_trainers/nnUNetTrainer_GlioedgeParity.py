"""nnU-Net v2's own trainer with only the training budget changed (bench/nnunet_training_parity.py).

The bench imports it from this folder and builds it as ``nnUNetv2_train`` does (nnU-Net's search
by name, also through ``nnUNet_extTrainer``, imports every trainer module of nnunetv2, and some
need ``timm``).
Patch, batch, network, loss (labels or regions, batch Dice), augmentation, oversampling and the
schedule are nnU-Net's, from the plans the bench writes. The budget comes from the environment
(``GLIOEDGE_PARITY_EPOCHS``, ``_ITERS``, ``_SEED``) because nnU-Net builds the trainer from its
fixed ``__init__`` signature.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer


class nnUNetTrainer_GlioedgeParity(nnUNetTrainer):  # noqa: N801 (nnU-Net's naming scheme)
    """``nnUNetTrainer`` with epochs × iterations set, one pseudo-validation batch per epoch, no
    periodic checkpoint, and seeded ``random``/numpy/torch (nnU-Net has no seed option; its
    multi-process augmentation would not be deterministic, the bench runs it in-process)."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cpu")) -> None:  # noqa: B008 (nnU-Net's signature)
        seed = int(os.environ.get("GLIOEDGE_PARITY_SEED", "0"))
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = int(os.environ.get("GLIOEDGE_PARITY_EPOCHS", "24"))
        self.num_iterations_per_epoch = int(os.environ.get("GLIOEDGE_PARITY_ITERS", "20"))
        # nnU-Net's per-epoch pseudo-Dice on random validation patches (50 batches by default):
        # one batch, the fewest its epoch-end code accepts; it only feeds nnU-Net's log and
        # 'checkpoint_best', never the weights. The bench uses checkpoint_final.
        self.num_val_iterations_per_epoch = 1
        self.save_every = self.num_epochs + 1
