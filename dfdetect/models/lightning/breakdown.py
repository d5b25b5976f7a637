"""Detection metrics per dataset and per manipulation method, at clip and video level.

A method's rows are scored against the real clips of the same dataset (as FaceForensics++
reports each manipulation), so that AUC, AP and EER are defined for every method.
"""

from __future__ import annotations

import pandas as pd
import torch

from dfdetect.models.lightning.metrics import METRIC_NAMES, binary_metrics
from dfdetect.scoring.video import video_level


def _scores(frame: pd.DataFrame, threshold: float) -> dict[str, float]:
    probs = torch.tensor(frame["prob"].to_numpy(), dtype=torch.float32)
    labels = torch.tensor(frame["label"].to_numpy(), dtype=torch.long)
    clip = binary_metrics(probs, labels, threshold)
    videos = torch.tensor(pd.factorize(frame["video_id"])[0])
    vprobs, vlabels = video_level(probs, labels, videos)
    video = binary_metrics(vprobs, vlabels, threshold)
    return {
        "n_clips": len(frame),
        "n_videos": int(videos.max()) + 1 if len(frame) else 0,
        **clip,
        **{f"video_{k}": v for k, v in video.items()},
    }


def metrics_by_dataset_and_method(predictions: pd.DataFrame, threshold: float = 0.5) -> pd.DataFrame:
    """One row per dataset (method ``all``) and per dataset x fake method (with that dataset's reals)."""
    rows = []
    for dataset, frame in predictions.groupby("dataset", sort=True):
        rows.append({"dataset": dataset, "method": "all", **_scores(frame, threshold)})
        reals = frame[frame["label"] == 0]
        for method, fakes in frame[frame["label"] == 1].groupby("method", sort=True):
            rows.append(
                {"dataset": dataset, "method": method, **_scores(pd.concat([reals, fakes]), threshold)}
            )
    columns = [
        "dataset",
        "method",
        "n_clips",
        "n_videos",
        *METRIC_NAMES,
        *(f"video_{m}" for m in METRIC_NAMES),
    ]
    return pd.DataFrame(rows, columns=columns)
