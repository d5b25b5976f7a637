"""The LightningModule every detector trains through.

It takes a ``net`` (see ``dfdetect.models.nets.base``), a partial optimizer and optional partial
scheduler; converts uint8 clips to normalised floats on the training device; trains with BCE on
logits (label 1 = fake) or, with ``loss="mse"``, the squared error of P(fake) (MesoNet's
authors' ``loss='mean_squared_error'``), optionally with class weights; and logs clip- and
video-level acc, F1, AUROC, AP and EER as ``val/*`` and ``test/*``. A NaN logit means the detector
abstains on that clip (ABNet: an identity it holds no references of): such clips are left out of
the metrics and counted as ``{stage}/unknown_clips``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.utilities.rank_zero import rank_zero_info, rank_zero_warn
from pytorch_lightning.utilities.warnings import PossibleUserWarning
from torch import nn

from dfdetect.models.layers.finetune import apply_finetune
from dfdetect.models.lightning.metrics import ClipVideoMetrics

STAGES = ("val", "test")
LOSSES = ("bce", "mse")
# the checkpoint key under which a module stores the config that built it (see checkpoint.py)
CONFIG_KEY = "dfdetect_model_config"

# val/* and test/* metrics are computed from every rank's predictions, gathered (each clip once), so
# they are already global and equal on all ranks: Lightning's advice to sync them does not apply
warnings.filterwarnings(
    "ignore", message=r"It is recommended to use `self\.log\('(val|test)/", category=PossibleUserWarning
)


class DetectorModule(pl.LightningModule):
    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        scheduler_monitor: str = "val/auc",
        channels_last: bool = True,
        threshold: float = 0.5,
        loss: str = "bce",
        class_weight: str | Sequence[float] | None = None,
        finetune: str = "full",
    ):
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"model.loss must be one of {LOSSES}, got {loss!r}")
        if isinstance(class_weight, str) and class_weight != "balanced":
            raise ValueError(
                f"model.class_weight must be null, 'balanced' or [real, fake], got {class_weight!r}"
            )
        if class_weight is not None and not isinstance(class_weight, str) and len(class_weight) != 2:
            raise ValueError(
                f"model.class_weight must be null, 'balanced' or [real, fake], got {class_weight!r}"
            )
        # callables stay out of the checkpoint so it loads with torch.load(weights_only=True)
        self.save_hyperparameters(logger=False, ignore=["net", "optimizer", "scheduler"])
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.net = net
        # which parameters train (full / head / norm, dfdetect.models.layers.finetune)
        if finetune == "norm" and getattr(net, "l2_normalize", None) is False:
            net.l2_normalize = True  # LNCLIP-DF: L2-normalised features before the linear head
        self.finetune_counts = apply_finetune(net, finetune)
        rank_zero_info(self.finetune_counts.line())
        if finetune != "full" and getattr(net, "has_weights", True) is False:
            rank_zero_warn(
                f"model.finetune={finetune} on randomly initialised weights: only a smoke test; pass "
                "model.net.pretrained=true (downloads) or model.net.weights=<file>"
            )
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
            self.net.channels_last = True
        mean = torch.tensor(getattr(net, "mean", (0.0, 0.0, 0.0)), dtype=torch.float32)
        std = torch.tensor(getattr(net, "std", (1.0, 1.0, 1.0)), dtype=torch.float32)
        self.register_buffer("pixel_scale", (1.0 / (255.0 * std)).view(1, 1, -1, 1, 1), persistent=False)
        self.register_buffer("pixel_shift", (-mean / std).view(1, 1, -1, 1, 1), persistent=False)
        weights = (
            class_weight if class_weight is not None and not isinstance(class_weight, str) else (1.0, 1.0)
        )
        # training-loss weight of real (0) and fake (1) clips; "balanced" is set in on_fit_start
        self.register_buffer("class_weights", torch.tensor(weights, dtype=torch.float32), persistent=False)
        self.metrics = nn.ModuleDict({s: ClipVideoMetrics(threshold=threshold) for s in STAGES})
        self.predictions: dict[str, pd.DataFrame] = {}
        self.unknown_clips = dict.fromkeys(STAGES, 0)
        self.model_config: dict | None = None

    def normalise(self, clips: torch.Tensor) -> torch.Tensor:
        if clips.dtype != torch.uint8:
            raise TypeError(f"clips must be uint8 (B, T, C, H, W), got {clips.dtype}")
        return clips.float() * self.pixel_scale + self.pixel_shift

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """uint8 clips ``(B, T, C, H, W)`` -> P(fake) logits ``(B,)``."""
        if getattr(self.net, "takes_uint8", False):
            return self.net(clips)
        return self.net(self.normalise(clips))

    def clip_losses(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The detection loss of every clip (``model.loss``: BCE on the logit of P(fake), or the
        squared error of P(fake)); training minimises its class-weighted mean, ``{stage}/loss``
        reports its plain mean over the stage's clips."""
        if self.hparams.get("loss", "bce") == "mse":
            return (torch.sigmoid(logits) - labels.float()).square()
        return F.binary_cross_entropy_with_logits(logits, labels.float(), reduction="none")

    def _loss(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self(batch["clip"])
        losses = self.clip_losses(logits, batch["label"])
        return (losses * self.class_weights[batch["label"]]).mean(), logits

    def on_fit_start(self) -> None:
        """``class_weight: balanced`` as Keras computes it, n / (2 n_class), over the training clips
        as the loader draws them: all ones when the datamodule already balances its sampling."""
        if self.hparams.get("class_weight") != "balanced":
            return
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None or getattr(datamodule, "balance", False):
            self.class_weights.fill_(1.0)
            return
        labels = torch.as_tensor(datamodule.splits["train"].labels).long()
        counts = torch.bincount(labels, minlength=2).clamp(min=1).float()
        self.class_weights.copy_(len(labels) / (2.0 * counts))

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss, logits = self._loss(batch)
        acc = ((logits > 0).long() == batch["label"]).float().mean()
        bs = len(batch["label"])
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=bs)
        self.log("train/acc", acc, on_step=False, on_epoch=True, prog_bar=True, batch_size=bs)
        return loss

    def _eval_step(self, stage: str, batch: dict) -> None:
        self.update_eval_metrics(stage, batch, self(batch["clip"]))

    def update_eval_metrics(self, stage: str, batch: dict, logits: torch.Tensor) -> None:
        """Per-clip P(fake) and loss go to the stage's metric, which counts every clip once
        (``{stage}/loss`` included) even where a distributed sampler padded a rank's share. Clips
        with a NaN logit (the detector abstains) are counted, not scored."""
        known = ~torch.isnan(logits)
        if not bool(known.all()):
            self.unknown_clips[stage] += int((~known).sum())
            batch = {k: batch[k][known] for k in ("label", "clip_index", "video_index")}
            logits = logits[known]
            if not len(logits):
                return
        losses = self.clip_losses(logits, batch["label"])
        self.metrics[stage].update(
            torch.sigmoid(logits), batch["label"], batch["clip_index"], batch["video_index"], losses
        )

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step("val", batch)

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step("test", batch)

    def eval_results(self, stage: str) -> tuple[pd.DataFrame, dict[str, float]]:
        """The clips of ``stage`` scored since its last results: their predictions (clip_index,
        prob, label; ordered by clip index) and metrics (``{stage}/auc`` ...); the stage restarts."""
        metric = self.metrics[stage]
        unknown, self.unknown_clips[stage] = self.unknown_clips[stage], 0
        values = {f"{stage}/unknown_clips": float(unknown)} if unknown else {}
        if not metric.update_count:
            warnings.warn(
                f"{stage}: the detector abstained on every clip ({unknown} unknown); no metrics", stacklevel=1
            )
            metric.reset()
            empty = pd.DataFrame({"clip_index": [], "prob": [], "label": []})
            return empty, {**values, f"{stage}/auc": float("nan")}
        with metric.sync_context():
            gathered = metric.gathered()
        predictions = pd.DataFrame(
            {k: gathered[k].numpy() for k in ("clip_index", "probs", "labels")}
        ).rename(columns={"probs": "prob", "labels": "label"})
        values.update({f"{stage}/{k}": v for k, v in metric.compute().items()})
        metric.reset()
        return predictions, values

    def _eval_epoch_end(self, stage: str) -> None:
        self.predictions[stage], values = self.eval_results(stage)
        for name, value in values.items():
            short = name.removeprefix(f"{stage}/")
            reduce = "sum" if short == "unknown_clips" else "mean"
            self.log(name, value, prog_bar=short in ("auc", "loss"), reduce_fx=reduce)

    def on_validation_epoch_end(self) -> None:
        self._eval_epoch_end("val")

    def on_test_epoch_end(self) -> None:
        self._eval_epoch_end("test")

    def configure_optimizers(self) -> dict:
        if self.optimizer_factory is None:
            raise ValueError("this detector has no optimizer configured, so it cannot be trained")
        optimizer = self.optimizer_factory(params=[p for p in self.parameters() if p.requires_grad])
        if self.scheduler_factory is None:
            return {"optimizer": optimizer}
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {
                "scheduler": scheduler,
                "monitor": self.hparams.scheduler_monitor,
                "interval": "epoch",
            },
        }

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self.model_config is not None:
            checkpoint[CONFIG_KEY] = self.model_config
