"""calibration.json: a temperature for P(fake) and video thresholds at a target false rejection
rate of real videos and at the EER, fitted on the validation split."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dfdetect.run.evaluate import evaluate
from dfdetect.run.train import train
from dfdetect.scoring.calibration import CalibrationError, calibrate, threshold_at_frr
from dfdetect.scoring.roc import eer_point
from dfdetect.scoring.temperature import fit_temperature, scaled_probs
from dfdetect.utils.io import file_sha256
from tests.conftest import compose_config, tiny_data_overrides


def test_threshold_at_target_frr_rejects_at_most_that_share_of_reals():
    reals = np.linspace(0.0, 0.99, 100)
    t = threshold_at_frr(reals, 0.01)
    assert (reals >= t).sum() == 1 and t > reals[-2]
    t0 = threshold_at_frr(reals, 0.0)
    assert (reals >= t0).sum() == 0 and t0 == pytest.approx(0.99)
    assert (reals >= threshold_at_frr(reals, 0.05)).sum() == 5
    with pytest.raises(ValueError, match="target_frr"):
        threshold_at_frr(reals, 1.0)


def test_eer_threshold_separates_separable_scores_and_balances_overlap():
    labels = np.array([0, 0, 0, 1, 1, 1])
    t, eer = eer_point(np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9]), labels)
    assert eer == 0.0 and 0.3 < t <= 0.7
    t, eer = eer_point(np.array([0.1, 0.6, 0.4, 0.9]), np.array([0, 0, 1, 1]))
    assert eer == pytest.approx(0.5)


def test_temperature_recovers_the_scale_of_overconfident_logits():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 6, 20_000)
    labels = (rng.random(len(logits)) < 1 / (1 + np.exp(-logits / 3.0))).astype(int)
    temperature, before, after = fit_temperature(1 / (1 + np.exp(-logits)), labels)
    assert temperature == pytest.approx(3.0, rel=0.08)
    assert after < before
    assert scaled_probs(np.array([0.5, 0.9]), temperature)[0] == pytest.approx(0.5)


def test_calibrate_works_per_video_and_needs_both_classes():
    clips = pd.DataFrame(
        {
            "video_id": ["a", "a", "b", "b", "c", "c", "d", "d"],
            "label": [0, 0, 0, 0, 1, 1, 1, 1],
            "prob": [0.1, 0.3, 0.2, 0.6, 0.7, 0.5, 0.9, 0.95],
        }
    )
    out = calibrate(clips, target_frr=0.0, split="val", dataset="demo")
    assert (out["n_real_videos"], out["n_fake_videos"], out["n_clips"]) == (2, 2, 8)
    assert out["at_threshold"]["frr"] == 0.0 and out["eer"] == 0.0
    assert out["split"] == "val" and out["dataset"] == "demo" and out["temperature"] > 0
    with pytest.raises(CalibrationError, match="2 real and 0 fake videos"):
        calibrate(clips[clips.label == 0])


def test_evaluate_writes_calibration_fitted_on_the_validation_split(train_cfg, tmp_path):
    _, objects = train(train_cfg("trainer.max_epochs=1"))
    ckpt = objects["run_dir"].parent / "checkpoints" / "run" / "last.ckpt"
    eval_dir = tmp_path / "eval"
    eval_dir.mkdir()
    overrides = [*tiny_data_overrides(objects["cfg"].data.store.root), f"ckpt_path={ckpt}"]
    metrics, out = evaluate(compose_config("eval.yaml", overrides, eval_dir))
    calibration = json.loads((out["run_dir"] / "calibration.json").read_text())
    val = out["datamodule"].split_frame("val")
    assert calibration["split"] == "val" and calibration["n_clips"] == len(val)
    assert calibration["n_real_videos"] + calibration["n_fake_videos"] == val["video_id"].nunique()
    assert calibration["at_threshold"]["frr"] <= 0.01
    assert metrics["calibration"]["threshold"] == calibration["threshold"]
    assert calibration["model"]["sha256"] == file_sha256(ckpt)  # predict.py checks it is its model
    # the scored split's predictions and metrics are the test split's, not the calibration pass's
    preds = pd.read_parquet(out["run_dir"] / "predictions.parquet")
    assert len(preds) == len(out["datamodule"].split_frame("test")) and metrics["split"] == "test"

    off = tmp_path / "off"
    off.mkdir()
    _, out = evaluate(compose_config("eval.yaml", [*overrides, "calibration.enabled=false"], off))
    assert not (out["run_dir"] / "calibration.json").exists()


def test_eer_is_found_where_the_roc_curve_runs_straight():
    # the crossing lies on a vertical stretch of the ROC curve, which roc_curve drops by default
    labels = np.array([0] * 10 + [1] * 10)
    scores = np.array([0.1] * 8 + [0.95, 0.96] + list(np.linspace(0.5, 0.59, 10)))
    threshold, eer = eer_point(scores, labels)
    frr = (scores[labels == 0] >= threshold).mean()
    far = (scores[labels == 1] < threshold).mean()
    assert eer == pytest.approx(0.2) and frr == pytest.approx(0.2) and far == pytest.approx(0.2)
