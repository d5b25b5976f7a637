"""FTDetect's two training stages in one run, switched by epoch.

- Epochs ``< siamese_start_epoch``: stage 1, the base classifier trains with the shared BCE loop.
- Epochs ``>= siamese_start_epoch``: stage 2. Everything below the last layer is frozen, and the
  last layer is stepped with plain SGD at ``siamese_lr`` (``optimizer_step``). The few-shot set
  is ``reference_size`` un-augmented real training clips drawn at random from the datamodule
  (else the first real clips of the stage-2 batches); their frozen features are kept in memory
  (augmented clips would shift the references' scores towards the fakes'); every step trains on
  ``pairs_per_step`` random real-real pairs of that set with the contrastive loss (distance of
  the Siamese outputs -> 0). Before each validation the few-shot set's embeddings become the
  net's reference bank, and from then on the net scores a clip by its distance to the bank.
  After each validation during fitting, the distance threshold is set at the validation
  equal-error point and the scale to 1 / std of the validation distances, so ``logit > 0``
  means "farther from the real references than the threshold".

``val/stage_auc`` (= ``val/auc`` + 1 once the net scores by distance) lets a checkpoint callback
rank any Siamese epoch above every base-classifier epoch (``experiment=ftdetect`` does).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from pytorch_lightning.trainer.states import TrainerFn

from dfdetect.models.lightning.detector_module import DetectorModule
from dfdetect.models.lightning.metric_losses import contrastive_loss, eer_threshold
from dfdetect.models.lightning.metrics import first_occurrence
from dfdetect.models.nets.ftdetect import FTDetect

log = logging.getLogger(__name__)


class FTDetectModule(DetectorModule):
    def __init__(
        self,
        net: FTDetect,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        siamese_start_epoch: int = 5,
        reference_size: int = 64,
        pairs_per_step: int = 32,
        siamese_lr: float = 1e-3,
        contrastive_margin: float = 1.4,
        reference_seed: int = 0,
        **kwargs,
    ):
        if reference_size < 2:
            raise ValueError(f"reference_size must be at least 2 (pairs of real clips), got {reference_size}")
        super().__init__(net, optimizer, scheduler, **kwargs)
        self.few_shot: list[torch.Tensor] = []  # frozen features (T, hidden) of real training clips
        self.few_shot_from_batches = True
        self.val_distances: list[torch.Tensor] = []
        self.val_labels: list[torch.Tensor] = []
        self.val_clip_index: list[torch.Tensor] = []

    @property
    def siamese_stage(self) -> bool:
        return self.current_epoch >= self.hparams.siamese_start_epoch

    def _fitting(self) -> bool:
        trainer = self._trainer
        return trainer is not None and trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking

    def on_train_epoch_start(self) -> None:
        if not self.siamese_stage:
            return
        self.net.freeze_below_final()
        if not self.few_shot:
            self.few_shot_from_batches = not self.collect_few_shot_set()
        if self.current_epoch == self.hparams.siamese_start_epoch:
            log.info(
                "FTDetect: stage 2 (Siamese fine-tuning of the last layer) from epoch %d, %d real clips",
                self.current_epoch,
                len(self.few_shot),
            )

    def optimizer_step(self, epoch, batch_idx, optimizer, optimizer_closure=None) -> None:
        """Stage 2 steps the last layer with plain SGD at ``siamese_lr``, as the authors do (an
        adaptive optimizer would rescale the tiny real-pair gradients into large steps); the
        configured optimizer only serves stage 1."""
        if not self.siamese_stage:
            return super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        optimizer_closure()  # training_step and backward
        with torch.no_grad():
            for p in self.net.final.parameters():
                if p.grad is not None:
                    p.sub_(self.hparams.siamese_lr * p.grad)

    @torch.no_grad()
    def collect_few_shot_set(self) -> bool:
        """``reference_size`` un-augmented real training clips drawn at random
        (``reference_seed``), when the datamodule offers ``dataset("train", augment=False)``."""
        datamodule = getattr(self._trainer, "datamodule", None)
        if not hasattr(datamodule, "dataset"):
            return False
        dataset = datamodule.dataset("train", augment=False)
        labels = getattr(dataset, "labels", None)
        if labels is None:
            return False
        real = torch.as_tensor(labels == 0).nonzero().flatten()
        generator = torch.Generator().manual_seed(self.hparams.reference_seed)
        chosen = real[torch.randperm(len(real), generator=generator)[: self.hparams.reference_size]]
        chunk = getattr(datamodule, "eval_batch_size", None) or 16
        for start in range(0, len(chosen), chunk):
            clips = torch.stack([dataset[int(i)]["clip"] for i in chosen[start : start + chunk]])
            self.few_shot.extend(self.net.clip_features(self.normalise(clips.to(self.device))).detach())
        return len(self.few_shot) >= 2

    @torch.no_grad()
    def grow_few_shot_set(self, batch: dict) -> None:
        """Without such a datamodule: the first real clips of the stage-2 training batches."""
        need = self.hparams.reference_size - len(self.few_shot)
        real = batch["clip"][batch["label"] == 0][:need]
        if need > 0 and len(real):
            self.few_shot.extend(self.net.clip_features(self.normalise(real)).detach())

    def siamese_loss(self) -> torch.Tensor:
        features = torch.stack(self.few_shot)
        n, pairs = len(features), self.hparams.pairs_per_step
        first = torch.randint(0, n, (pairs,), device=features.device)
        second = (first + torch.randint(1, n, (pairs,), device=features.device)) % n  # never the same clip
        emb = self.net.embeddings(features)
        distances = (emb[first] - emb[second]).norm(dim=1)
        return contrastive_loss(distances, torch.zeros_like(distances), self.hparams.contrastive_margin)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor | None:
        if not self.siamese_stage:
            return super().training_step(batch, batch_idx)
        if self.few_shot_from_batches:
            self.grow_few_shot_set(batch)
        if len(self.few_shot) < 2:
            return None  # no real pair yet: skip the optimizer step
        loss = self.siamese_loss()
        self.log(
            "train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(batch["label"])
        )
        self.log("train/contrastive", loss, on_step=False, on_epoch=True, batch_size=len(batch["label"]))
        return loss

    @torch.no_grad()
    def refresh_references(self) -> None:
        embeddings = self.net.embeddings(torch.stack(self.few_shot))
        self.net.set_references(self.trainer.strategy.broadcast(embeddings, src=0))

    def on_validation_epoch_start(self) -> None:
        self.val_distances, self.val_labels, self.val_clip_index = [], [], []
        if self._fitting() and self.siamese_stage and len(self.few_shot) >= 2:
            self.refresh_references()

    def _eval_step(self, stage: str, batch: dict) -> None:
        if not bool(self.net.siamese_ready):
            return super()._eval_step(stage, batch)
        features = self.net.clip_features(self.normalise(batch["clip"]))
        distances = self.net.reference_distances(self.net.embeddings(features))
        self.update_eval_metrics(stage, batch, self.net.distance_logits(distances))
        if stage == "val":
            self.val_distances.append(distances.detach())
            self.val_labels.append(batch["label"].detach())
            self.val_clip_index.append(batch["clip_index"].detach())

    def fit_distance_threshold(self) -> None:
        """EER threshold over every rank's validation distances, each clip once (a distributed
        sampler repeats clips to even out the ranks' shares)."""
        distances = self.all_gather(torch.cat(self.val_distances)).flatten()
        labels = self.all_gather(torch.cat(self.val_labels)).flatten()
        clip_index = self.all_gather(torch.cat(self.val_clip_index)).flatten()
        first = first_occurrence(clip_index.cpu())[1].to(distances.device)
        distances, labels = distances[first], labels[first]
        threshold = eer_threshold(distances, labels)
        if threshold is None:
            log.warning("FTDetect: validation has one class only; distance threshold kept")
            threshold = float(self.net.distance_threshold)
        scale = 1.0 / max(float(distances.float().std()) if len(distances) > 1 else 0.0, 1e-6)
        self.net.set_distance_threshold(threshold, scale)

    def on_validation_epoch_end(self) -> None:
        stage_auc = self.metrics["val"].compute()["auc"] + float(bool(self.net.siamese_ready))
        if self._fitting() and bool(self.net.siamese_ready) and self.val_distances:
            self.fit_distance_threshold()
        super().on_validation_epoch_end()
        self.log("val/stage_auc", stage_auc)

    def on_train_epoch_end(self) -> None:
        if self.siamese_stage and len(self.few_shot) >= 2:
            self.refresh_references()  # last.ckpt saved after a training epoch matches its weights
