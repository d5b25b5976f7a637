"""AUC and the equal error rate, all read off one ROC: the operating points of ``roc_counts``.

Label 1 is the positive class (fake; for face verification, "same person"); a score at least a
threshold is called positive. With one class missing there is no ROC: AUC and EER are NaN and a
threshold is None (or NaN), never a number that looks real.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def _arrays(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(scores, torch.Tensor):
        scores = scores.detach().cpu().numpy()
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    return np.asarray(scores, dtype=np.float64).ravel(), np.asarray(labels).ravel().astype(np.int64)


def roc_counts(scores, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every operating point, strictest first: the thresholds (the first, +inf, calls nothing
    positive; then each distinct score, highest first) with the false and true positives there.
    The last point calls everything positive, so its counts are the class sizes."""
    s, y = _arrays(scores, labels)
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last = np.append(np.flatnonzero(s[1:] != s[:-1]), len(s) - 1) if len(s) else np.zeros(0, int)
    tp = np.concatenate([[0], np.cumsum(y)[last]])
    fp = np.concatenate([[0], last + 1 - tp[1:]])
    return np.concatenate([[np.inf], s[last]]), fp, tp


def _balance(fp: np.ndarray, tp: np.ndarray) -> np.ndarray:
    """False-positive rate minus false-negative rate at each point, times both class sizes: in
    whole numbers, so that equal rates compare equal."""
    n_neg, n_pos = fp[-1], tp[-1]
    return fp * n_pos - (n_pos - tp) * n_neg


def _error_at(fp: np.ndarray, tp: np.ndarray, i: int) -> float:
    n_neg, n_pos = fp[-1], tp[-1]
    return float((fp[i] / n_neg + (n_pos - tp[i]) / n_pos) / 2)


def auc(scores, labels, weights=None) -> float:
    """Area under the ROC curve, ties counted half; ``weights`` repeat items (a bootstrap's
    multiplicities). NaN when a class is missing."""
    scores, labels = _arrays(scores, labels)
    weights = np.ones(len(scores)) if weights is None else np.asarray(weights, float)
    pos, neg = weights * (labels == 1), weights * (labels == 0)
    if pos.sum() == 0 or neg.sum() == 0:
        return float("nan")
    order = np.argsort(scores, kind="stable")
    s, p, n = scores[order], pos[order], neg[order]
    # per distinct score: negatives strictly below, half of those tied
    uniq, start = np.unique(s, return_index=True)
    neg_tied = np.add.reduceat(n, start)
    pos_tied = np.add.reduceat(p, start)
    neg_below = np.concatenate([[0.0], np.cumsum(neg_tied)[:-1]])
    return float((pos_tied * (neg_below + 0.5 * neg_tied)).sum() / (p.sum() * n.sum()))


def equal_error_rate(scores, labels) -> float:
    """The error rate where the false-positive and false-negative rates meet, interpolated
    linearly between the two operating points around the crossing (the training metric)."""
    _, fp, tp = roc_counts(scores, labels)
    if fp[-1] == 0 or tp[-1] == 0:
        return math.nan
    balance = _balance(fp, tp)
    i = int(np.flatnonzero(balance >= 0)[0])
    if i == 0 or balance[i] == 0:
        return _error_at(fp, tp, i)
    n_neg = fp[-1]
    w = balance[i] / (balance[i] - balance[i - 1])
    return float(fp[i] / n_neg + w * (fp[i - 1] - fp[i]) / n_neg)


def eer_point(scores, labels) -> tuple[float, float]:
    """(threshold, EER) at the operating point where the two error rates are closest, the
    strictest such point on ties; the threshold is one a verdict can use (just above the top score
    where nothing is called positive). (NaN, NaN) when a class is missing."""
    thresholds, fp, tp = roc_counts(scores, labels)
    if fp[-1] == 0 or tp[-1] == 0:
        return math.nan, math.nan
    i = int(np.argmin(np.abs(_balance(fp, tp))))
    threshold = thresholds[i] if i > 0 else np.nextafter(thresholds[1], np.inf)
    return float(threshold), _error_at(fp, tp, i)


def eer_cut(scores, labels) -> float | None:
    """A threshold at the equal error rate placed between scores: midway between the last score
    called positive and the next lower one (just outside the range at either end), the
    strictest point on ties, as ``eer_point``; for the distance thresholds of metric learning. None
    when a class is missing."""
    thresholds, fp, tp = roc_counts(scores, labels)
    if fp[-1] == 0 or tp[-1] == 0:
        return None
    i = int(np.argmin(np.abs(_balance(fp, tp))))
    scores_desc = thresholds[1:]
    step = 1e-6 * (1.0 + np.abs(scores_desc).max())
    if i == 0:
        return float(scores_desc[0] + step)
    if i == len(scores_desc):
        return float(scores_desc[-1] - step)
    return float((scores_desc[i - 1] + scores_desc[i]) / 2)
