"""DD1-DD3 over per-video member scores (dfdetect/ensemble/late_fusion.py) and one fold of them
from finished member runs (dfdetect/run/crossval.py fuse_fold), on hand-made cases."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dfdetect.ensemble.late_fusion import (
    STRENGTHS,
    choose_strength,
    fit_stack,
    fuse,
    logits,
    member_video_scores,
    stratified_folds,
)
from dfdetect.run.crossval import fuse_fold


def clips(rows: list[tuple[str, int, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["video_id", "label", "prob"])


def test_video_scores_are_clip_means_and_an_abstaining_member_is_nan():
    a = clips([("v1", 1, 0.2), ("v1", 1, 0.6), ("v2", 0, 0.3)])
    b = clips([("v2", 0, 0.9)])  # b scored no clip of v1 (ABNet: unknown identity)
    scores = member_video_scores({"a": a, "b": b})
    assert scores.loc["v1", "a"] == pytest.approx(0.4) and np.isnan(scores.loc["v1", "b"])
    assert scores["label"].to_dict() == {"v1": 1, "v2": 0}
    with pytest.raises(ValueError, match="disagree on the label of video 'v2'"):
        member_video_scores({"a": a, "b": clips([("v2", 1, 0.9)])})


def test_dd2_is_the_largest_answer_and_dd1_its_member():
    test = pd.DataFrame(
        {"a": [0.2, 0.7, np.nan], "b": [0.4, 0.1, 0.3], "label": [0, 1, 0]}, index=["x", "y", "z"]
    )
    prob, fitted = fuse("dd2", ["a", "b"], test)
    assert prob.tolist() == [0.4, 0.7, 0.3] and fitted == {}
    assert fuse("dd1", ["b"], test)[0].tolist() == [0.4, 0.1, 0.3]
    with pytest.raises(ValueError, match="exactly one member"):
        fuse("dd1", ["a", "b"], test)
    with pytest.raises(ValueError, match="validation videos"):
        fuse("dd3", ["a", "b"], test)


def test_the_stack_starts_at_the_mean_and_the_penalty_holds_it_there():
    x = np.array([[2.0, -1.0], [1.0, 0.5], [-1.0, 1.0], [-2.0, 0.0]])
    y = np.array([1, 1, 0, 0])
    assert fit_stack(x, y, 1e6) == pytest.approx([0.5, 0.5, 0.0], abs=1e-5)
    free = fit_stack(x, y, 0.01)
    assert free[0] > 1.0 > 0.5 > free[1]  # member a separates the videos, b does not
    # at the optimum the penalised gradient vanishes
    p = 1 / (1 + np.exp(-(x @ free[:2] + free[2])))
    design = np.hstack([x, np.ones((4, 1))])
    grad = design.T @ (p - y) / 4 + 2 * 0.01 * (free - [0.5, 0.5, 0.0])
    assert np.abs(grad).max() < 1e-8
    assert logits(np.array([0.5, np.nan]))[1] == 0.0  # an abstention reads as logit 0


def test_strength_is_chosen_by_stratified_folds_of_the_validation_videos():
    y = np.array([0, 0, 0, 1, 1, 1, 1, 1, 1])
    fold = stratified_folds(y, 3, seed=0)
    for f in range(3):  # one real and two fakes held out per fold
        assert np.bincount(y[fold == f], minlength=2).tolist() == [1, 2]
    # member a is informative, member b is noise pointing the wrong way: less penalty wins
    x = np.column_stack([np.where(y == 1, 3.0, -3.0), np.where(y == 1, -0.5, 0.5)])
    strength, losses = choose_strength(x, y, k=3)
    assert strength < STRENGTHS[-1] and losses[strength] == min(losses.values())
    assert choose_strength(x, np.array([0, 1, 1, 1, 1, 1, 1, 1, 1]))[0] == STRENGTHS[-1]  # one real


def test_dd3_uses_the_validation_videos_only():
    rng = np.random.default_rng(0)
    val = pd.DataFrame({"a": rng.uniform(size=12), "b": rng.uniform(size=12), "label": [0] * 4 + [1] * 8})
    test = pd.DataFrame({"a": [0.9, 0.1, 0.5], "b": [0.2, 0.3, 0.8], "label": [1, 0, 1]})
    prob, fitted = fuse("dd3", ["a", "b"], test, val)
    relabelled, _ = fuse("dd3", ["a", "b"], test.assign(label=[0, 1, 0]), val)
    assert prob.tolist() == relabelled.tolist()  # test labels are never read
    assert set(fitted) >= {"strength", "weights", "bias"} and fitted["val_videos"] == 12
    w, b = fitted["weights"], fitted["bias"]
    z = w["a"] * logits(test["a"].to_numpy()) + w["b"] * logits(test["b"].to_numpy()) + b
    assert prob.to_numpy() == pytest.approx(1 / (1 + np.exp(-z)))


def write_run(run, test_rows, val_rows=None):
    run.mkdir(parents=True)
    clips(test_rows).to_parquet(run / "predictions.parquet")
    if val_rows is not None:
        clips(val_rows).to_parquet(run / "val_predictions.parquet")


def test_a_fold_is_fused_from_its_members_runs(tmp_path):
    val = [("r1", 0, 0.2), ("r2", 0, 0.3), ("f1", 1, 0.8), ("f2", 1, 0.6), ("f3", 1, 0.7)]
    write_run(tmp_path / "a", [("t0", 0, 0.1), ("t0", 0, 0.3), ("t1", 1, 0.9)], val)
    write_run(tmp_path / "b", [("t0", 0, 0.6), ("t1", 1, 0.4)], val)
    out = tmp_path / "dd2"
    metrics = fuse_fold("dd2", {"a": tmp_path / "a", "b": tmp_path / "b"}, out)
    videos = pd.read_parquet(out / "predictions.parquet").set_index("video_id")
    assert videos["prob"].to_dict() == pytest.approx({"t0": 0.6, "t1": 0.9})
    assert (
        metrics["test/video_auc"] == 1.0 and json.loads((out / "metrics.json").read_text())["kind"] == "dd2"
    )
    metrics = fuse_fold("dd3", {"a": tmp_path / "a", "b": tmp_path / "b"}, tmp_path / "dd3")
    assert metrics["fitted"]["val_videos"] == 5 and metrics["test/videos"] == 2
    write_run(tmp_path / "c", [("t0", 0, 0.5), ("t1", 1, 0.5)], [("t1", 1, 0.5), ("r1", 0, 0.5)])
    with pytest.raises(ValueError, match="also a test video"):
        fuse_fold("dd3", {"c": tmp_path / "c"}, tmp_path / "bad")
