"""Detection metrics at clip level and at video level (mean of clip probabilities per video).

All functions take P(fake) probabilities and labels (1 = fake). Metrics that need both classes
(AUC, AP, EER) are NaN when only one class is present.
"""

from __future__ import annotations

import math

import torch
import torchmetrics.functional.classification as tmf
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

METRIC_NAMES = ("acc", "f1", "auc", "ap", "eer")


def equal_error_rate(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """The error rate where false-positive and false-negative rates meet (linear interpolation)."""
    if labels.unique().numel() < 2:
        return math.nan
    fpr, tpr, _ = tmf.binary_roc(probs, labels.long())
    fnr = 1.0 - tpr
    diff = fpr - fnr
    i = int(torch.nonzero(diff >= 0)[0])
    if i == 0 or diff[i] == 0:
        return float((fpr[i] + fnr[i]) / 2)
    w = diff[i] / (diff[i] - diff[i - 1])
    return float(fpr[i] + w * (fpr[i - 1] - fpr[i]))


def binary_metrics(probs: torch.Tensor, labels: torch.Tensor, threshold: float = 0.5) -> dict[str, float]:
    probs, labels = probs.float().cpu(), labels.long().cpu()
    out = {
        "acc": float(tmf.binary_accuracy(probs, labels, threshold=threshold)),
        "f1": float(tmf.binary_f1_score(probs, labels, threshold=threshold)),
    }
    both_classes = labels.unique().numel() == 2
    out["auc"] = float(tmf.binary_auroc(probs, labels)) if both_classes else math.nan
    out["ap"] = float(tmf.binary_average_precision(probs, labels)) if both_classes else math.nan
    out["eer"] = equal_error_rate(probs, labels)
    return out


def video_level(
    probs: torch.Tensor, labels: torch.Tensor, video_index: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean clip probability and label per video; a video must not mix labels."""
    videos, inverse = torch.unique(video_index, return_inverse=True)
    n = len(videos)
    sums = torch.zeros(n, dtype=torch.float64).index_add_(0, inverse, probs.double())
    counts = torch.zeros(n, dtype=torch.float64).index_add_(
        0, inverse, torch.ones_like(probs, dtype=torch.float64)
    )
    label_max = torch.full((n,), -1, dtype=torch.long).scatter_reduce_(0, inverse, labels.long(), "amax")
    label_min = torch.full((n,), 2, dtype=torch.long).scatter_reduce_(0, inverse, labels.long(), "amin")
    if (label_max != label_min).any():
        bad = videos[(label_max != label_min).nonzero()[0]].item()
        raise ValueError(f"video index {bad} has both real and fake clips")
    return (sums / counts).float(), label_max


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
