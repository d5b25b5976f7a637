"""Pooled out-of-fold evaluation of a k-fold cross-validation: every video scored once, by the model
that did not train on it; video AUC with a bootstrap interval that resamples whole groups.

Videos are scored as everywhere (``dfdetect.scoring.video.video_scores``: mean clip P(fake), with
the clips' group). A group (a source video with its fakes, or an identity) is the unit of independence: its videos
share faces and sources, so resampling single videos would understate the spread. The bootstrap
draws as many groups as there are, with replacement, and recomputes the AUC over the videos of the
drawn groups; draws holding one class only are redrawn (and counted).

``fuse_fold`` makes a defense (DD1-DD3) of one fold from its members' finished runs, at the level of
videos (``dfdetect.ensemble.late_fusion``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from dfdetect.ensemble.late_fusion import fuse, member_video_scores
from dfdetect.run.common import VAL_PREDICTIONS
from dfdetect.scoring.roc import auc
from dfdetect.utils.io import atomic_path, write_json


def bootstrap_aucs(videos: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> tuple[np.ndarray, int]:
    """AUCs of ``n_boot`` bootstrap draws of whole groups of ``videos`` (label, group, prob), and
    how many draws were redrawn for holding one class only."""
    names, codes = np.unique(videos["group"].astype(str).to_numpy(), return_inverse=True)
    scores, labels = videos["prob"].to_numpy(float), videos["label"].to_numpy(int)
    rng = np.random.default_rng(seed)
    values, redrawn = [], 0
    while len(values) < n_boot and redrawn <= 100 * n_boot:
        counts = np.bincount(rng.integers(0, len(names), len(names)), minlength=len(names))
        value = auc(scores, labels, counts[codes])
        if np.isnan(value):
            redrawn += 1
        else:
            values.append(value)
    return np.asarray(values), redrawn


def cluster_bootstrap_auc(
    videos: pd.DataFrame, n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> dict[str, float]:
    """AUC of ``videos`` (label, group, prob) and its percentile interval from a bootstrap over
    groups. ``redrawn``: draws with one class only, replaced by new draws."""
    values, redrawn = bootstrap_aucs(videos, n_boot, seed)
    tail = (1 - level) / 2
    low, high = np.quantile(values, [tail, 1 - tail]) if len(values) else (np.nan, np.nan)
    scores, labels = videos["prob"].to_numpy(float), videos["label"].to_numpy(int)
    return {"auc": auc(scores, labels), "low": float(low), "high": float(high), "redrawn": redrawn}


def pool_folds(fold_predictions: Mapping[int, pd.DataFrame], groups: Mapping[str, str]) -> pd.DataFrame:
    """The test predictions of every fold in one frame (with ``fold`` and ``group``); raises when a
    video is tested in two folds or lacks a group."""
    parts = [p.assign(fold=f) for f, p in sorted(fold_predictions.items())]
    clips = pd.concat(parts, ignore_index=True)
    twice = clips.groupby("video_id")["fold"].nunique()
    if (twice > 1).any():
        raise ValueError(f"video {twice[twice > 1].index[0]!r} is tested in more than one fold")
    clips["group"] = clips["video_id"].map(groups)
    if clips["group"].isna().any():
        raise ValueError(f"video {clips.loc[clips['group'].isna(), 'video_id'].iloc[0]!r} has no group")
    return clips


def fuse_fold(kind: str, member_dirs: Mapping[str, Path], run_dir: Path) -> dict:
    """A defense over the finished runs of one fold's members (``dfdetect.ensemble.late_fusion``):
    reads each member's ``predictions.parquet`` (test) and, for DD3, ``val_predictions.parquet``;
    writes ``predictions.parquet`` (one row per test video, its fused P(fake)) and ``metrics.json``
    in ``run_dir``; returns the metrics."""

    def read(name: str) -> dict[str, pd.DataFrame]:
        return {m: pd.read_parquet(Path(d) / name) for m, d in member_dirs.items()}

    test = member_video_scores(read("predictions.parquet"))
    val = member_video_scores(read(VAL_PREDICTIONS)) if kind == "dd3" else None
    if val is not None and set(val.index) & set(test.index):
        raise ValueError("a validation video is also a test video; refusing to fit DD3 on it")
    prob, fitted = fuse(kind, list(member_dirs), test, val)
    if prob.isna().any():
        raise ValueError(f"every member abstained on video {prob[prob.isna()].index[0]!r}")
    videos = test[["label"]].assign(prob=prob).reset_index()
    run_dir.mkdir(parents=True, exist_ok=True)
    metrics = {
        "kind": kind,
        "members": {m: str(d) for m, d in member_dirs.items()},
        "test/video_auc": auc(videos["prob"].to_numpy(), videos["label"].to_numpy()),
        "test/videos": int(len(videos)),
        **({"fitted": fitted} if fitted else {}),
    }
    write_json(run_dir / "metrics.json", metrics)
    with atomic_path(run_dir / "predictions.parquet") as tmp:
        videos.assign(clip_id=videos["video_id"]).to_parquet(tmp, index=False)
    return metrics
