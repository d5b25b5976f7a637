"""FTDetect's two training stages in one run, switched by epoch, as the authors' ``main.ipynb``.

- Epochs ``< siamese_start_epoch``: stage 1, the base classifier trains with the shared BCE loop
  (the configured optimizer; the authors': Adam 1e-5).
- Epochs ``>= siamese_start_epoch``: stage 2. Everything below the last layer is frozen. The
  few-shot set (the authors' fine-tune folder) is ``reference_size`` un-augmented real training
  clips drawn at random from the datamodule (else the first real clips of the stage-2 batches);
  their frozen features are kept in memory. Each stage-2 epoch is ``siamese_steps`` (40) plain SGD
  steps at ``siamese_lr`` (1e-3) on the last layer, each on ``pairs_per_step`` (32) real-real pairs
  of the set (``real_pairs``: no clip twice in a step while the set allows, never a clip with
  itself), loss = squared Euclidean distance of the two sigmoid outputs (``mse`` against 0). The
  steps are taken at the epoch's first batch; its other batches train nothing (they are still
  loaded: ending the epoch early would skip its validation).
- Inference (``inference``): ``"single"`` (the authors' rule) pairs every clip with one real
  reference drawn at random (``reference_seed``) from the few-shot set and calls it fake when their
  distance is at least ``distance_cut`` (0.8): the net answers ``(d - 0.8) * 10``. ``"bank"`` (our
  option) scores the mean distance to the whole few-shot set, with the threshold set at the
  validation equal-error point and the scale to 1 / std of the validation distances after each
  validation during fitting.

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
from dfdetect.models.lightning.metric_losses import contrastive_loss
from dfdetect.models.lightning.metrics import first_occurrence
from dfdetect.models.nets.ftdetect import FTDetect
from dfdetect.scoring.roc import eer_cut

log = logging.getLogger(__name__)

INFERENCE = ("single", "bank")
SINGLE_SCALE = 10.0  # logit = (distance - cut) * 10: P(fake) > 0.5 exactly where distance > cut


def real_pairs(
    n: int, count: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` pairs of distinct indices into a set of ``n`` real clips, as the authors' pair
    generator draws them: without replacement within a step (a random matching) when the set holds
    ``2 * count`` clips or more; otherwise each pair drawn on its own (clips may recur, never paired
    with themselves)."""
    if n < 2:
        raise ValueError(f"real pairs need at least 2 clips, got {n}")
    if n >= 2 * count:
        order = torch.randperm(n, generator=generator)[: 2 * count]
        return order[:count], order[count:]
    first = torch.randint(0, n, (count,), generator=generator)
    second = (first + torch.randint(1, n, (count,), generator=generator)) % n
    return first, second


class FTDetectModule(DetectorModule):
    def __init__(
        self,
        net: FTDetect,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        siamese_start_epoch: int = 5,
        reference_size: int = 64,
        pairs_per_step: int = 32,
        siamese_steps: int = 40,
        siamese_lr: float = 1e-3,
        contrastive_margin: float = 1.4,
        reference_seed: int = 0,
        inference: str = "single",
        distance_cut: float = 0.8,
        **kwargs,
    ):
        if reference_size < 2:
            raise ValueError(f"reference_size must be at least 2 (pairs of real clips), got {reference_size}")
        if inference not in INFERENCE:
            raise ValueError(f"inference must be one of {INFERENCE}, got {inference!r}")
        if siamese_steps < 1:
            raise ValueError(f"siamese_steps must be at least 1, got {siamese_steps}")
        super().__init__(net, optimizer, scheduler, **kwargs)
        self.few_shot: list[torch.Tensor] = []  # frozen features (T, hidden) of real training clips
        self.few_shot_from_batches = True
        self.pair_generator = torch.Generator().manual_seed(reference_seed)
        self.siamese_steps_done = 0  # in the current epoch
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
        self.siamese_steps_done = 0
        if not self.siamese_stage:
            return
        self.net.freeze_below_final()
        if not self.few_shot:
            self.few_shot_from_batches = not self.collect_few_shot_set()
        if self.current_epoch == self.hparams.siamese_start_epoch:
            log.info(
                "FTDetect: stage 2 (Siamese fine-tuning of the last layer) from epoch %d, %d real clips, "
                "%d SGD steps per epoch",
                self.current_epoch,
                len(self.few_shot),
                self.hparams.siamese_steps,
            )

    def optimizer_step(self, epoch, batch_idx, optimizer, optimizer_closure=None) -> None:
        """Stage 2 takes its own SGD steps in ``training_step``; the configured optimizer (Adam)
        only serves stage 1 (an adaptive optimizer would rescale the tiny real-pair gradients into
        large steps)."""
        if not self.siamese_stage:
            return super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        optimizer_closure()

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
        """One step's loss: squared distance of the sigmoid outputs over ``pairs_per_step`` real pairs
        (the contrastive loss of similar pairs, which is the authors' ``mse`` against 0)."""
        features = torch.stack(self.few_shot)
        first, second = real_pairs(len(features), self.hparams.pairs_per_step, self.pair_generator)
        emb = self.net.embeddings(features)
        distances = (emb[first.to(emb.device)] - emb[second.to(emb.device)]).norm(dim=1)
        return contrastive_loss(distances, torch.zeros_like(distances), self.hparams.contrastive_margin)

    def siamese_sgd_step(self) -> torch.Tensor:
        params = list(self.net.final.parameters())
        with torch.enable_grad():
            loss = self.siamese_loss()
            grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, g in zip(params, grads, strict=True):
                p.sub_(self.hparams.siamese_lr * g)
        self.siamese_steps_done += 1
        return loss.detach()

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor | None:
        if not self.siamese_stage:
            return super().training_step(batch, batch_idx)
        if self.few_shot_from_batches:
            self.grow_few_shot_set(batch)
        if len(self.few_shot) < 2 or self.siamese_steps_done >= self.hparams.siamese_steps:
            return None  # no real pair yet, or this epoch's steps are taken
        losses = [
            self.siamese_sgd_step() for _ in range(self.hparams.siamese_steps - self.siamese_steps_done)
        ]
        loss = torch.stack(losses).mean()
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(losses))
        self.log("train/contrastive", loss, on_step=False, on_epoch=True, batch_size=len(losses))
        return None  # the steps are taken; nothing for the configured optimizer

    @torch.no_grad()
    def refresh_references(self) -> None:
        """The few-shot set's branch outputs become the reference bank: all of them
        (``inference="bank"``), or one drawn at random with ``reference_seed`` (``"single"``,
        the authors' rule, with its fixed cut)."""
        embeddings = self.net.embeddings(torch.stack(self.few_shot))
        if self.hparams.inference == "single":
            generator = torch.Generator().manual_seed(self.hparams.reference_seed)
            pick = int(torch.randint(0, len(embeddings), (1,), generator=generator))
            embeddings = embeddings[pick : pick + 1]
            self.net.set_distance_threshold(self.hparams.distance_cut, SINGLE_SCALE)
        trainer = self._trainer
        self.net.set_references(trainer.strategy.broadcast(embeddings, src=0) if trainer else embeddings)

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
        threshold = eer_cut(distances, labels)
        if threshold is None:
            log.warning("FTDetect: validation has one class only; distance threshold kept")
            threshold = float(self.net.distance_threshold)
        scale = 1.0 / max(float(distances.float().std()) if len(distances) > 1 else 0.0, 1e-6)
        self.net.set_distance_threshold(threshold, scale)

    def on_validation_epoch_end(self) -> None:
        stage_auc = self.metrics["val"].compute()["auc"] + float(bool(self.net.siamese_ready))
        bank = self.hparams.inference == "bank"
        if bank and self._fitting() and bool(self.net.siamese_ready) and self.val_distances:
            self.fit_distance_threshold()
        super().on_validation_epoch_end()
        self.log("val/stage_auc", stage_auc)

    def on_train_epoch_end(self) -> None:
        if self.siamese_stage and len(self.few_shot) >= 2:
            self.refresh_references()  # last.ckpt saved after a training epoch matches its weights
