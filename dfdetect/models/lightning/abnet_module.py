"""ABNet's training, enrolment and validation (docs/models.md, "ABNet").

- Training: the behaviour network only (the face network is frozen), on *real* training clips
  with identity labels (the manifest's ``identity``), with the multi-similarity loss. At fit start
  the frozen per-frame features of every un-augmented real training clip are computed once and
  kept in memory (``bank``); each training step then draws ``identities_per_batch`` identities ×
  ``clips_per_identity`` segments from it (the loader's batch only sets the pace). Without a
  datamodule that offers ``dataset(split)``, a step uses the real clips of its batch, labelled by
  ``identity_index`` or the training split's rows (``clip_index``).
- Enrolment, before every validation and test: the appearance and behaviour of every real training
  segment, per identity; for each split named in ``enrol_splits`` besides ``train``, also the first
  ``reference_clips`` segments of each real video of that split, which are then left out of its
  scores (references of a person are never scored against themselves).
- Scores: the net's decision; unknown clips (no references for the claimed identity) are left out
  of the metrics and counted (``{stage}/unknown_clips``). After each validation during fitting the
  distance threshold is set at the validation equal-error point and the scale to 1 / std.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from pytorch_lightning.trainer.states import TrainerFn
from tqdm.auto import tqdm

from dfdetect.models.lightning.detector_module import DetectorModule
from dfdetect.models.lightning.metric_losses import multi_similarity_loss
from dfdetect.models.lightning.metrics import first_occurrence
from dfdetect.models.nets.abnet import ABNet
from dfdetect.scoring.roc import eer_cut

log = logging.getLogger(__name__)

MIN_SEGMENT_FRAMES = 48  # 2 s at 24 fps: shorter training segments are warned about


def identity_codes(frame: pd.DataFrame) -> torch.Tensor:
    """``(N, 2)`` integer codes of each row's identity and source identity, in one code space
    (a person has the same code in both columns); missing or empty names are -1."""
    columns = [frame[c].fillna("").astype(str) for c in ("identity", "source_identity")]
    names = sorted((set(columns[0]) | set(columns[1])) - {""})
    code = {name: i for i, name in enumerate(names)}
    return torch.tensor(
        [[code.get(a, -1), code.get(s, -1)] for a, s in zip(*columns, strict=True)], dtype=torch.long
    )


def reference_rows(frame: pd.DataFrame, per_video: int) -> np.ndarray:
    """Positions of the first ``per_video`` clips (by first frame) of every real video with an
    identity: the segments enrolled as a split's own references."""
    real = frame[(frame["label"] == 0) & (frame["identity"].fillna("").astype(str) != "")]
    start = real["frame_indices"].map(lambda f: int(f[0]) if len(f) else 0)
    order = real.assign(_start=start.to_numpy()).sort_values(["video_id", "_start"])
    return np.sort(order.groupby("video_id", sort=False).head(per_video).index.to_numpy())


class ABNetModule(DetectorModule):
    def __init__(
        self,
        net: ABNet,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        ms_alpha: float = 2.0,
        ms_beta: float = 50.0,
        ms_base: float = 0.5,
        identities_per_batch: int = 8,
        clips_per_identity: int = 4,
        enrol_splits: Sequence[str] = ("train",),
        reference_clips: int = 4,
        sample_seed: int = 0,
        **kwargs,
    ):
        enrol_splits = tuple(str(s) for s in enrol_splits)  # plain data in the checkpoint's hparams
        unknown = set(enrol_splits) - {"train", "val", "test"}
        if unknown or "train" not in enrol_splits:
            raise ValueError(
                f"enrol_splits must include train and name only train/val/test, got {list(enrol_splits)}"
            )
        super().__init__(net, optimizer, scheduler, **kwargs)
        self.bank: dict | None = None  # frozen features of the real training clips
        self.train_identities: torch.Tensor | None = None
        self.generator = torch.Generator().manual_seed(sample_seed)
        self.excluded: dict[str, set[int]] = {}  # per split, clip indices enrolled as references
        self.val_scores: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    # --- data
    def _datamodule(self):
        trainer = self._trainer
        datamodule = getattr(trainer, "datamodule", None) if trainer is not None else None
        return datamodule if hasattr(datamodule, "dataset") and hasattr(datamodule, "split_frame") else None

    @torch.no_grad()
    def features_of(self, dataset, rows: Sequence[int], desc: str) -> torch.Tensor:
        """Frozen per-frame features ``(N, T, F)`` of the given clips of an un-augmented dataset."""
        out, chunk = [], 8
        for start in tqdm(range(0, len(rows), chunk), desc=desc, unit="batch", leave=False):
            clips = torch.stack([dataset[int(i)]["clip"] for i in rows[start : start + chunk]])
            out.append(self.net.frame_features(self.normalise(clips.to(self.device))).cpu())
        return torch.cat(out) if out else torch.zeros(0)

    def build_bank(self) -> None:
        datamodule = self._datamodule()
        if datamodule is None:
            return
        frame = datamodule.split_frame("train")
        names = frame["identity"].fillna("").astype(str)
        rows = np.flatnonzero((frame["label"].to_numpy() == 0) & (names.to_numpy() != ""))
        if not len(rows):
            raise ValueError(
                "ABNet trains on real training clips with identities; the training split has none"
            )
        span = frame.iloc[rows]["frame_indices"].map(lambda f: int(f[-1]) - int(f[0]) + 1 if len(f) else 0)
        if int(span.median()) < MIN_SEGMENT_FRAMES:
            log.warning(
                "ABNet: training segments span %d source frames (median), under 2 s; the method needs "
                "segments of seconds (docs/models.md, ABNet: data.frame_stride on a store of long clips)",
                int(span.median()),
            )
        dataset = datamodule.dataset("train", augment=False)
        features = self.features_of(dataset, rows.tolist(), "ABNet: features of real training clips")
        vocabulary = sorted(set(names.iloc[rows]))
        code = {n: i for i, n in enumerate(vocabulary)}
        identity = torch.tensor([code[n] for n in names.iloc[rows]], dtype=torch.long)
        self.bank = {"features": features, "identity": identity, "names": vocabulary}
        log.info("ABNet: %d real training segments of %d identities", len(rows), len(vocabulary))

    def on_fit_start(self) -> None:
        self.bank = None
        self.build_bank()
        datamodule = getattr(self.trainer, "datamodule", None)
        if self.bank is None and hasattr(datamodule, "split_frame"):
            self.train_identities = identity_codes(datamodule.split_frame("train"))

    # --- training
    def sample_from_bank(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``identities_per_batch`` identities with at least two segments, ``clips_per_identity``
        segments each (drawn with replacement where an identity has fewer)."""
        identity = self.bank["identity"]
        counts = torch.bincount(identity)
        eligible = torch.nonzero(counts >= 2).flatten()
        if len(eligible) < 2:
            eligible = torch.nonzero(counts >= 1).flatten()
        chosen = eligible[
            torch.randperm(len(eligible), generator=self.generator)[: self.hparams.identities_per_batch]
        ]
        picks = []
        for i in chosen.tolist():
            members = torch.nonzero(identity == i).flatten()
            k = self.hparams.clips_per_identity
            if len(members) >= k:
                picks.append(members[torch.randperm(len(members), generator=self.generator)[:k]])
            else:
                picks.append(members[torch.randint(0, len(members), (k,), generator=self.generator)])
        index = torch.cat(picks)
        return self.bank["features"][index].to(self.device), identity[index].to(self.device)

    def batch_real_identities(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Without a bank: the batch's real clips with known identities, as (features, codes)."""
        if "identity_index" in batch:
            codes = batch["identity_index"].long()
        elif self.train_identities is not None and "clip_index" in batch:
            codes = self.train_identities[batch["clip_index"].long().cpu(), 0].to(batch["label"].device)
        else:
            return None
        keep = (batch["label"] == 0) & (codes >= 0)
        if int(keep.sum()) < 2:
            return None
        return self.net.frame_features(self.normalise(batch["clip"][keep])), codes[keep]

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor | None:
        if self.bank is not None:
            features, labels = self.sample_from_bank()
        else:
            found = self.batch_real_identities(batch)
            if found is None:
                if batch_idx == 0:
                    log.warning(
                        "ABNet: fewer than two real clips with identities in this batch; step skipped"
                    )
                return None
            features, labels = found
        h = self.hparams
        embeddings = self.net.behaviour_from_features(features)
        loss = multi_similarity_loss(embeddings, labels, h.ms_alpha, h.ms_beta, h.ms_base)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(labels))
        self.log("train/metric_loss", loss, on_step=False, on_epoch=True, batch_size=len(labels))
        return loss

    # --- enrolment
    @torch.no_grad()
    def enrol(self, stage: str) -> None:
        """References from the real training segments (and, if ``stage`` is in ``enrol_splits``,
        from the first ``reference_clips`` segments of each real video of that split)."""
        datamodule = self._datamodule()
        if datamodule is None:
            return  # keep the enrolment the checkpoint holds
        if self.bank is None:
            self.build_bank()
        features, names = [self.bank["features"]], [self.bank["names"][i] for i in self.bank["identity"]]
        self.excluded[stage] = set()
        if stage != "train" and stage in self.hparams.enrol_splits:
            frame = datamodule.split_frame(stage)
            rows = reference_rows(frame, self.hparams.reference_clips)
            dataset = datamodule.dataset(stage, augment=False)
            features.append(self.features_of(dataset, rows.tolist(), f"ABNet: {stage} references"))
            names += frame["identity"].iloc[rows].astype(str).tolist()
            self.excluded[stage] = set(rows.tolist())
        appearance, behaviour = [], []
        for part in features:
            for chunk in part.split(64):
                chunk = chunk.to(self.device)
                appearance.append(self.net.appearance_from_features(chunk))
                behaviour.append(self.net.behaviour_from_features(chunk))
        self.net.enrol(names, torch.cat(appearance), torch.cat(behaviour))

    def _fitting(self) -> bool:
        trainer = self._trainer
        return trainer is not None and trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking

    def on_validation_epoch_start(self) -> None:
        self.val_scores = []
        self.enrol("val")

    def on_test_epoch_start(self) -> None:
        self.enrol("test")

    # --- scores
    def _eval_step(self, stage: str, batch: dict) -> None:
        excluded = self.excluded.get(stage, set())
        keep = torch.tensor(
            [int(i) not in excluded for i in batch["clip_index"]], device=batch["label"].device
        )
        if not bool(keep.any()):
            return
        batch = {k: batch[k][keep] for k in ("clip", "label", "clip_index", "video_index")}
        decision = self.net.decide(self.normalise(batch["clip"]))
        self.update_eval_metrics(stage, batch, decision.logits)
        if stage == "val":
            known = ~decision.unknown
            self.val_scores.append(
                (decision.distance[known].detach(), batch["label"][known], batch["clip_index"][known])
            )

    def fit_distance_threshold(self) -> None:
        distances, labels, clip_index = (
            self.all_gather(torch.cat([s[i] for s in self.val_scores])).flatten() for i in range(3)
        )
        first = first_occurrence(clip_index.cpu())[1].to(distances.device)
        distances, labels = distances[first], labels[first]
        threshold = eer_cut(distances, labels)
        if threshold is None:
            log.warning("ABNet: the scored validation clips hold one class only; distance threshold kept")
            return
        scale = 1.0 / max(float(distances.float().std()) if len(distances) > 1 else 0.0, 1e-6)
        self.net.set_distance_threshold(threshold, scale)

    def on_validation_epoch_end(self) -> None:
        if self._fitting() and self.val_scores and sum(len(s[0]) for s in self.val_scores):
            self.fit_distance_threshold()
        super().on_validation_epoch_end()
