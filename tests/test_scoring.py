"""The scoring rules every part shares (dfdetect.scoring), on cases small enough to work by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from dfdetect.scoring.calibration import (
    CALIBRATION_NAME,
    CalibrationFileError,
    calibrate,
    calibration_beside,
    read_calibration,
)
from dfdetect.scoring.roc import auc, eer_cut, eer_point, equal_error_rate, roc_counts
from dfdetect.scoring.temperature import logits_of, scaled_probs
from dfdetect.scoring.video import video_prob, video_scores


def test_roc_counts_every_distinct_score_strictest_first():
    thresholds, fp, tp = roc_counts([0.1, 0.2, 0.2, 0.4], [0, 1, 0, 1])
    assert thresholds.tolist() == [math.inf, 0.4, 0.2, 0.1]
    assert fp.tolist() == [0, 0, 1, 2] and tp.tolist() == [0, 1, 2, 2]


def test_eer_where_the_rates_meet_at_a_score():
    # real 0.1, 0.3; fake 0.2, 0.4: at 0.3 one real of two is called fake, one fake of two passes
    scores, labels = np.array([0.1, 0.2, 0.3, 0.4]), np.array([0, 1, 0, 1])
    assert eer_point(scores, labels) == (0.3, 0.5)
    assert equal_error_rate(scores, labels) == 0.5
    assert eer_cut(scores, labels) == pytest.approx(0.25)  # between 0.3 and the next lower score


def test_eer_between_two_points_interpolates_or_takes_the_strictest():
    # fake 0.1, 0.3; real 0.2. At 0.3: FPR 0, FNR 1/2; at 0.2: FPR 1, FNR 1/2
    scores, labels = np.array([0.1, 0.2, 0.3]), np.array([1, 0, 1])
    assert equal_error_rate(scores, labels) == pytest.approx(0.5)  # midway on the line
    # |FPR - FNR| is 1/2 at both points: the stricter one, 0.3, with error (0 + 1/2) / 2
    assert eer_point(scores, labels) == (0.3, 0.25)
    assert eer_cut(scores, labels) == pytest.approx(0.25)


def test_tied_scores_are_one_operating_point():
    scores, labels = np.array([0.5, 0.5]), np.array([0, 1])
    assert auc(scores, labels) == 0.5
    assert equal_error_rate(scores, labels) == 0.5
    threshold, eer = eer_point(scores, labels)
    assert threshold == np.nextafter(0.5, 1.0) and eer == 0.5  # nothing called fake


def test_one_class_has_no_roc():
    scores, labels = np.array([0.2, 0.7]), np.array([1, 1])
    assert math.isnan(auc(scores, labels)) and math.isnan(equal_error_rate(scores, labels))
    assert all(math.isnan(v) for v in eer_point(scores, labels))
    assert eer_cut(scores, labels) is None


def test_weighted_auc_repeats_items_and_takes_tensors():
    scores, labels = np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])
    # the fake at 0.35 beats the twice-counted 0.1 but not 0.4; the one at 0.8 beats all three
    assert auc(scores, labels, np.array([2, 1, 1, 1])) == pytest.approx(5 / 6)
    assert auc(torch.tensor(scores), torch.tensor(labels)) == 0.75


def test_a_video_is_the_mean_of_its_clips():
    clips = pd.DataFrame(
        {
            "video_id": ["b", "a", "a"],
            "label": [0, 1, 1],
            "prob": [0.3, 0.2, 0.6],
            "group": ["g2", "g1", "g1"],
        }
    )
    videos = video_scores(clips)
    assert videos.index.tolist() == ["a", "b"] and videos["prob"].tolist() == pytest.approx([0.4, 0.3])
    assert videos.loc["b", "group"] == "g2" and "group" not in video_scores(clips.drop(columns="group"))
    assert video_prob([0.2, 0.6]) == pytest.approx(0.4)


def test_temperature_one_changes_nothing_and_logits_stay_finite():
    probs = np.array([0.0, 0.25, 0.5, 1.0])
    assert scaled_probs(probs[1:3], 1.0) == pytest.approx(probs[1:3])
    assert np.isfinite(logits_of(probs)).all() and logits_of(np.array([0.5]))[0] == 0.0


def _calibration():
    clips = pd.DataFrame(
        {
            "video_id": ["a", "a", "b", "b", "c", "c", "d", "d"],
            "label": [0, 0, 0, 0, 1, 1, 1, 1],
            "prob": [0.1, 0.3, 0.2, 0.6, 0.7, 0.5, 0.9, 0.95],
        }
    )
    return calibrate(clips, target_frr=0.0, split="val", dataset="demo")


def test_calibration_round_trip_and_refusal_of_another_model(tmp_path):
    fitted = _calibration().for_model({"name": "m", "sha256": "a" * 64, "kind": "checkpoint", "members": []})
    ckpt = tmp_path / "m.ckpt"
    path = tmp_path / CALIBRATION_NAME
    fitted.write(path)
    assert calibration_beside(ckpt) == path
    assert read_calibration(path, "a" * 64, "m@aaaa") == fitted
    assert json.loads(path.read_text())["model"]["sha256"] == "a" * 64
    assert fitted.threshold_at("eer") == fitted["eer_threshold"]
    with pytest.raises(CalibrationFileError, match="was fitted for model aaaaaaaaaaaa, not this one"):
        read_calibration(path, "b" * 64, "m@bbbb")


def test_unusable_calibration_files_are_refused(tmp_path):
    path = tmp_path / CALIBRATION_NAME
    path.write_text(json.dumps({"temperature": 2.0}))
    with pytest.raises(CalibrationFileError, match="not a usable calibration.json"):
        read_calibration(path, "a" * 64, "m")
    path.write_text(json.dumps({"threshold": 0.4, "temperature": 0.0}))
    with pytest.raises(CalibrationFileError, match="are not usable"):
        read_calibration(path, "a" * 64, "m")
    path.write_text(json.dumps({"threshold": 0.4}))
    only_frr = read_calibration(path, "a" * 64, "m")
    assert only_frr.temperature == 1.0 and only_frr.threshold_at("frr") == 0.4
    with pytest.raises(CalibrationFileError, match="no eer_threshold"):
        only_frr.threshold_at("eer")
