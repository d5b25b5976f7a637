"""The one rule from clips to a video: a video's P(fake) is the mean of its clips' P(fake), its
label the label its clips share (a face track, a still and a member's abstentions score the same
way)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
import torch

VIDEO, LABEL, PROB = "video_id", "label", "prob"
GROUP = "group"  # the unit of independence of a grouped split, carried where the clips have it


def video_prob(clip_probs: Iterable[float]) -> float:
    """One video's (or face track's) P(fake) from its clips'."""
    return float(np.mean(list(clip_probs)))


def video_scores(clips: pd.DataFrame) -> pd.DataFrame:
    """Per video (index ``video_id``, sorted): ``label``, ``group`` where the clips have one, and
    ``prob``, the mean of the clips' ``prob``."""
    keep = [GROUP] if GROUP in clips else []
    columns = {LABEL: (LABEL, "first"), **{c: (c, "first") for c in keep}, PROB: (PROB, "mean")}
    return clips.groupby(VIDEO, sort=True).agg(**columns)


def video_level(
    probs: torch.Tensor, labels: torch.Tensor, video_index: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``video_scores`` for tensors (ordered by video index): mean clip probability and label per
    video; a video must not mix labels."""
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
