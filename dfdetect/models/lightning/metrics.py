"""Detection metrics at clip level and at video level (``dfdetect.scoring.video``), with AUC and
EER from ``dfdetect.scoring.roc``.

All functions take P(fake) probabilities and labels (1 = fake). Metrics that need both classes
(AUC, AP, EER) are NaN when only one class is present.
"""

from __future__ import annotations

import math

import torch
import torchmetrics.functional.classification as tmf
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from dfdetect.scoring.roc import auc, equal_error_rate
from dfdetect.scoring.video import video_level

METRIC_NAMES = ("acc", "f1", "auc", "ap", "eer")


def binary_metrics(probs: torch.Tensor, labels: torch.Tensor, threshold: float = 0.5) -> dict[str, float]:
    probs, labels = probs.float().cpu(), labels.long().cpu()
    out = {
        "acc": float(tmf.binary_accuracy(probs, labels, threshold=threshold)),
        "f1": float(tmf.binary_f1_score(probs, labels, threshold=threshold)),
    }
    both_classes = labels.unique().numel() == 2
    out["auc"] = auc(probs, labels)
    out["ap"] = float(tmf.binary_average_precision(probs, labels)) if both_classes else math.nan
    out["eer"] = equal_error_rate(probs, labels)
    return out


class ClipVideoMetrics(Metric):
    """Accumulates (prob, label, clip index, video index[, loss]); computes clip and video metrics
    and, when every update gave per-clip losses, their mean (``loss``).

    Each clip counts once even if a distributed sampler repeated it to pad a rank's share.
    """

    full_state_update = False

    def __init__(self, threshold: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        self.threshold = threshold
        for name in ("probs", "labels", "clip_index", "video_index", "losses"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(self, probs, labels, clip_index, video_index, losses=None) -> None:
        if losses is None:
            losses = torch.full_like(probs, float("nan"), dtype=torch.float32)
        self.losses.append(losses.detach().float())
        self.probs.append(probs.detach().float())
        self.labels.append(labels.detach().long())
        self.clip_index.append(clip_index.detach().long())
        self.video_index.append(video_index.detach().long())

    def gathered(self) -> dict[str, torch.Tensor]:
        """The accumulated values, one entry per clip, ordered by clip index."""
        clip_index = dim_zero_cat(self.clip_index).cpu()
        unique, first = first_occurrence(clip_index)
        return {
            "clip_index": unique,
            "probs": dim_zero_cat(self.probs).cpu()[first],
            "labels": dim_zero_cat(self.labels).cpu()[first],
            "video_index": dim_zero_cat(self.video_index).cpu()[first],
            "losses": dim_zero_cat(self.losses).cpu()[first],
        }

    def compute(self) -> dict[str, float]:
        g = self.gathered()
        clip = binary_metrics(g["probs"], g["labels"], self.threshold)
        vprobs, vlabels = video_level(g["probs"], g["labels"], g["video_index"])
        video = binary_metrics(vprobs, vlabels, self.threshold)
        losses = {} if g["losses"].isnan().any() else {"loss": float(g["losses"].mean())}
        return {**clip, **{f"video_{k}": v for k, v in video.items()}, **losses}


def first_occurrence(index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    unique, inverse = torch.unique(index, return_inverse=True)
    positions = torch.arange(len(index))
    first = torch.full((len(unique),), len(index), dtype=torch.long).scatter_reduce_(
        0, inverse, positions, "amin"
    )
    return unique, first
