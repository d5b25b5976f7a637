"""Lightning callbacks of the detector training loop."""

from __future__ import annotations

import logging
import math

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint

log = logging.getLogger(__name__)


class FiniteModelCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` that never selects a checkpoint on a NaN or missing monitored metric
    (e.g. ``val/auc`` of a validation split with one class): such an epoch is skipped with a
    warning, where Lightning would keep it while its top-k slots are not yet full."""

    def check_monitor_top_k(self, trainer: pl.Trainer, current: torch.Tensor | None = None) -> bool:
        if current is None or math.isnan(float(current)):
            log.warning(
                "epoch %d: %s is %s, so no checkpoint is selected on it",
                trainer.current_epoch,
                self.monitor,
                "missing" if current is None else "NaN",
            )
            return False
        return super().check_monitor_top_k(trainer, current)
