"""DD1/DD2/DD3 over per-video scores: for members that cannot share one clip loader.

A detector scores its own clips (ABNet 2-s segments of a 64-frame store read every 4th frame, with
its identity enrolment and "unknown" abstentions; the frame and short-clip nets 5-frame clips of
another store), so the members' clips differ but their videos do not. The common unit is the
video: a member's video score is the mean P(fake) of the clips it scored (as ``test/video_auc``),
NaN where it abstained on every clip.

- DD1: the one member's video score.
- DD2: a video passes as real only if every member that answered says real: the maximum member
  probability (each member's own 0.5 cut decides, as the clip-level ``RuleEnsemble``).
- DD3: a stacking learner fitted on the validation videos only: logistic regression over the
  members' video logits (an abstention reads as logit 0), starting from, and penalised towards,
  their plain mean (weights 1/M, bias 0) by ``strength`` · ||θ − θ₀||². The strength is chosen
  among ``STRENGTHS`` by stratified k-fold over the validation videos (folds by video, not group:
  a validation fold of a small dataset can hold a single group with fakes, so fit and select share
  groups) on the pooled held-out log loss, ties to the stronger penalty; then refitted on every
  validation video. The test videos are only scored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from dfdetect.scoring.temperature import logits_of
from dfdetect.scoring.video import video_scores

KINDS = ("dd1", "dd2", "dd3")
# the last one is plain averaging in all but name
STRENGTHS = (0.01, 0.1, 1.0, 10.0, 1e6)
EPS = 1e-4


def member_video_scores(clips: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Per video (index ``video_id``): ``label`` and one column of mean clip P(fake) per member,
    NaN where a member scored none of the video's clips. Raises when members disagree on a label."""
    frames, labels = [], []
    for name, frame in clips.items():
        per_video = video_scores(frame)
        frames.append(per_video["prob"].rename(name))
        labels.append(per_video["label"].rename(name))
    scores = pd.concat(frames, axis=1).sort_index()
    known = pd.concat(labels, axis=1).reindex(scores.index)
    agreed = known.nunique(axis=1, dropna=True)
    if (agreed > 1).any():
        raise ValueError(f"members disagree on the label of video {agreed[agreed > 1].index[0]!r}")
    return scores.assign(label=known.bfill(axis=1).iloc[:, 0].astype(int))


def logits(probs: np.ndarray) -> np.ndarray:
    """Member logits of video probabilities; an abstention (NaN) reads as logit 0."""
    return np.nan_to_num(logits_of(probs, EPS), nan=0.0)


def fit_stack(x: np.ndarray, y: np.ndarray, strength: float, steps: int = 50) -> np.ndarray:
    """Parameters ``[w_1 .. w_M, b]`` of ``sigmoid(x @ w + b)`` minimising the mean log loss plus
    ``strength`` · ||θ − θ₀||² with θ₀ = (1/M, …, 1/M, 0), by Newton's method."""
    n, m = x.shape
    design = np.hstack([x, np.ones((n, 1))])
    prior = np.append(np.full(m, 1.0 / m), 0.0)
    theta = prior.copy()
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(design @ theta)))
        grad = design.T @ (p - y) / n + 2 * strength * (theta - prior)
        hess = (design.T * (p * (1 - p))) @ design / n + 2 * strength * np.eye(m + 1)
        step = np.linalg.solve(hess, grad)
        theta -= step
        if np.abs(step).max() < 1e-10:
            break
    return theta


def stratified_folds(y: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold index of each item, every class dealt round-robin over ``k`` folds after a seeded shuffle."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(y), dtype=int)
    for label in np.unique(y):
        where = rng.permutation(np.flatnonzero(y == label))
        fold[where] = np.arange(len(where)) % k
    return fold


def log_loss(p: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(p, EPS, 1 - EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def choose_strength(x: np.ndarray, y: np.ndarray, k: int = 4, seed: int = 0) -> tuple[float, dict]:
    """The penalty strength of the lowest pooled held-out log loss over stratified k-fold (k capped
    by the smaller class), ties to the stronger penalty; and every candidate's loss."""
    k = int(min(k, np.bincount(y.astype(int), minlength=2).min()))
    if k < 2:
        return STRENGTHS[-1], {}
    fold = stratified_folds(y, k, seed)
    losses = {}
    for strength in STRENGTHS:
        held_out = np.empty(len(y))
        for f in range(k):
            theta = fit_stack(x[fold != f], y[fold != f], strength)
            held_out[fold == f] = 1 / (1 + np.exp(-(x[fold == f] @ theta[:-1] + theta[-1])))
        losses[strength] = log_loss(held_out, y)
    best = min(losses.values())
    return max(s for s, loss in losses.items() if loss <= best + 1e-12), losses


def fuse(
    kind: str, members: Sequence[str], test: pd.DataFrame, val: pd.DataFrame | None = None
) -> tuple[pd.Series, dict]:
    """Fused P(fake) of each test video (index as ``test``, from ``member_video_scores``) and what
    was fitted. DD3 needs ``val`` (the same columns over the validation videos) and uses nothing
    else; DD1 and DD2 fit nothing."""
    if kind not in KINDS:
        raise ValueError(f"unknown defense {kind!r}; known: {', '.join(KINDS)}")
    members = list(members)
    if kind == "dd1":
        if len(members) != 1:
            raise ValueError(f"DD1 takes exactly one member, got {len(members)}")
        return test[members[0]].rename("prob"), {}
    if kind == "dd2":
        return test[members].max(axis=1, skipna=True).rename("prob"), {}
    if val is None:
        raise ValueError("DD3 is fitted on the validation videos: pass their member scores")
    x_val, y_val = logits(val[members].to_numpy()), val["label"].to_numpy(int)
    if len(np.unique(y_val)) < 2:
        raise ValueError("DD3 cannot be fitted: the validation videos hold one class only")
    strength, losses = choose_strength(x_val, y_val)
    theta = fit_stack(x_val, y_val, strength)
    z = logits(test[members].to_numpy()) @ theta[:-1] + theta[-1]
    fitted = {
        "strength": strength,
        "weights": dict(zip(members, map(float, theta[:-1]), strict=True)),
        "bias": float(theta[-1]),
        "held_out_log_loss": {str(k): v for k, v in losses.items()},
        "val_videos": int(len(y_val)),
    }
    return pd.Series(1 / (1 + np.exp(-z)), index=test.index, name="prob"), fitted
