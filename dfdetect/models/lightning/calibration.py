"""Turning a detector's scores into verdicts: a temperature for P(fake) and decision thresholds,
fitted on labelled clips of a split the test never reads (the validation split by default).

A verdict is made per video (a still is a one-clip video): the mean of its clips' P(fake), each
clip's P(fake) first scaled by the temperature, is called fake when it is at least the threshold.
Two thresholds are given: the lowest one that rejects at most ``target_frr`` of the real videos
(the false rejection rate of genuine faces a gate in front of a recognition API can accept), and
the one at the equal error rate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from sklearn.metrics import roc_curve

TEMPERATURE_RANGE = (0.05, 20.0)
_EPS = 1e-7


class CalibrationError(ValueError):
    """Labelled scores that cannot calibrate anything (no real or no fake video)."""


def logits_of(probs: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(probs, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


def scaled_probs(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Each P(fake) with its logit divided by ``temperature``."""
    return 1.0 / (1.0 + np.exp(-logits_of(probs) / temperature))


def _nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    z = logits / temperature
    # binary cross-entropy on logits, written to stay finite for large |z|
    return float(np.mean(np.logaddexp(0.0, z) - labels * z))


def fit_temperature(probs: Sequence[float], labels: Sequence[int]) -> tuple[float, float, float]:
    """The temperature minimising the clips' negative log-likelihood; with the NLL before and
    after."""
    logits, y = logits_of(np.asarray(probs)), np.asarray(labels, dtype=np.float64)
    lo, hi = (math.log(t) for t in TEMPERATURE_RANGE)
    best = minimize_scalar(lambda s: _nll(logits, y, math.exp(s)), bounds=(lo, hi), method="bounded")
    temperature = math.exp(best.x)
    return temperature, _nll(logits, y, 1.0), _nll(logits, y, temperature)


def threshold_at_frr(real_scores: np.ndarray, target_frr: float) -> float:
    """The lowest threshold at which at most ``target_frr`` of the real scores are >= it."""
    if not 0.0 <= target_frr < 1.0:
        raise ValueError(f"target_frr must be in [0, 1), got {target_frr}")
    ranked = np.sort(np.asarray(real_scores, dtype=np.float64))[::-1]
    allowed = math.floor(target_frr * len(ranked) + 1e-9)
    return float(np.nextafter(ranked[allowed], np.inf))


def eer_threshold(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """(threshold, EER): where the share of real videos called fake meets the share of fakes
    passed as real."""
    # every point: with intermediate points dropped, the crossing of the two rates can be lost
    frr, tpr, thresholds = roc_curve(labels, scores, drop_intermediate=False)
    far = 1.0 - tpr
    i = int(np.argmin(np.abs(frr - far)))
    # roc_curve's first threshold is +inf (nothing called fake): just above the top score instead
    threshold = thresholds[i] if np.isfinite(thresholds[i]) else np.nextafter(np.max(scores), np.inf)
    return float(threshold), float((frr[i] + far[i]) / 2)


def rates(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    fake = scores >= threshold
    return {"frr": float(fake[labels == 0].mean()), "far": float((~fake[labels == 1]).mean())}


def calibrate(
    clips: pd.DataFrame, target_frr: float = 0.01, split: str = "val", dataset: str | None = None
) -> dict:
    """``clips``: one row per clip with ``prob`` (P(fake)), ``label`` and ``video_id``."""
    for column in ("prob", "label", "video_id"):
        if column not in clips:
            raise ValueError(f"calibration needs a {column!r} column")
    counts = clips.groupby("video_id")["label"].first().value_counts()
    n_real, n_fake = int(counts.get(0, 0)), int(counts.get(1, 0))
    if n_real == 0 or n_fake == 0:
        raise CalibrationError(
            f"the {split} split has {n_real} real and {n_fake} fake videos; calibration needs both"
        )
    temperature, nll_before, nll_after = fit_temperature(clips["prob"], clips["label"])
    videos = (
        clips.assign(p=scaled_probs(clips["prob"].to_numpy(), temperature))
        .groupby("video_id")
        .agg(p=("p", "mean"), label=("label", "first"))
    )
    labels, scores = videos["label"].to_numpy(), videos["p"].to_numpy()
    at_frr = threshold_at_frr(scores[labels == 0], target_frr)
    at_eer, eer = eer_threshold(labels, scores)
    return {
        "split": split,
        "dataset": dataset,
        "unit": "video",
        "score": "mean over a video's clips of the temperature-scaled P(fake)",
        "n_real_videos": n_real,
        "n_fake_videos": n_fake,
        "n_clips": len(clips),
        "temperature": temperature,
        "clip_nll": {"before": nll_before, "after": nll_after},
        "target_frr": target_frr,
        "threshold": at_frr,
        "at_threshold": rates(labels, scores, at_frr),
        "eer_threshold": at_eer,
        "eer": eer,
        "at_eer_threshold": rates(labels, scores, at_eer),
    }
