"""Clip- and video-level metrics, EER, de-duplication of padded clips."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from dfdetect.models.lightning.metrics import ClipVideoMetrics, binary_metrics
from dfdetect.scoring.roc import equal_error_rate
from dfdetect.scoring.video import video_level


def test_binary_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 500)
    probs = np.clip(labels * 0.3 + rng.random(500) * 0.7, 0, 1)
    m = binary_metrics(torch.tensor(probs), torch.tensor(labels))
    assert m["auc"] == pytest.approx(roc_auc_score(labels, probs), abs=1e-6)
    assert m["ap"] == pytest.approx(average_precision_score(labels, probs), abs=1e-6)
    assert m["acc"] == pytest.approx(((probs > 0.5) == labels).mean(), abs=1e-6)
    fpr, tpr, _ = roc_curve(labels, probs)
    i = np.argmin(np.abs(fpr - (1 - tpr)))
    assert m["eer"] == pytest.approx((fpr[i] + 1 - tpr[i]) / 2, abs=0.01)


def test_eer_of_perfect_and_inverted_scores():
    labels = torch.tensor([0, 0, 1, 1])
    assert equal_error_rate(torch.tensor([0.1, 0.2, 0.8, 0.9]), labels) == pytest.approx(0.0)
    assert equal_error_rate(torch.tensor([0.9, 0.8, 0.2, 0.1]), labels) == pytest.approx(1.0)


def test_single_class_gives_nan_not_a_number_that_looks_real():
    m = binary_metrics(torch.tensor([0.2, 0.7]), torch.tensor([1, 1]))
    assert math.isnan(m["auc"]) and math.isnan(m["ap"]) and math.isnan(m["eer"])
    assert m["acc"] == 0.5


def test_video_level_means_clip_probabilities():
    probs = torch.tensor([0.2, 0.4, 0.9, 0.7, 0.1])
    labels = torch.tensor([0, 0, 1, 1, 0])
    videos = torch.tensor([3, 3, 8, 8, 5])
    vp, vl = video_level(probs, labels, videos)
    assert torch.allclose(vp, torch.tensor([0.3, 0.1, 0.8]))
    assert vl.tolist() == [0, 0, 1]


def test_video_with_mixed_labels_is_an_error():
    with pytest.raises(ValueError, match="both real and fake"):
        video_level(torch.tensor([0.1, 0.2]), torch.tensor([0, 1]), torch.tensor([0, 0]))


def test_padded_duplicate_clips_count_once():
    clean, padded = ClipVideoMetrics(), ClipVideoMetrics()
    probs = torch.tensor([0.1, 0.9, 0.8, 0.3])
    labels = torch.tensor([0, 1, 1, 1])
    idx = torch.arange(4)
    vids = torch.tensor([0, 1, 1, 2])
    clean.update(probs, labels, idx, vids)
    padded.update(probs, labels, idx, vids)
    padded.update(probs[:2], labels[:2], idx[:2], vids[:2])  # what a DistributedSampler pad adds
    assert clean.compute() == padded.compute()
    assert padded.gathered()["clip_index"].tolist() == [0, 1, 2, 3]
    assert "loss" not in padded.compute()  # no update gave losses


def test_loss_is_the_mean_over_clips_each_counted_once():
    clean, padded = ClipVideoMetrics(), ClipVideoMetrics()
    probs, labels = torch.tensor([0.1, 0.9, 0.8, 0.3]), torch.tensor([0, 1, 1, 1])
    idx, vids = torch.arange(4), torch.tensor([0, 1, 1, 2])
    losses = torch.tensor([0.1, 0.2, 0.3, 5.0])
    clean.update(probs, labels, idx, vids, losses)
    padded.update(probs, labels, idx, vids, losses)
    padded.update(probs[3:], labels[3:], idx[3:], vids[3:], losses[3:])  # the padded repeat of clip 3
    assert clean.compute()["loss"] == pytest.approx(5.6 / 4)
    assert padded.compute()["loss"] == clean.compute()["loss"]
    partial = ClipVideoMetrics()
    partial.update(probs[:2], labels[:2], idx[:2], vids[:2], losses[:2])
    partial.update(probs[2:], labels[2:], idx[2:], vids[2:])
    assert "loss" not in partial.compute()


def test_breakdown_scores_each_method_against_the_datasets_reals():
    import pandas as pd

    from dfdetect.models.lightning.breakdown import metrics_by_dataset_and_method

    preds = pd.DataFrame(
        {
            "dataset": ["ff"] * 6,
            "method": ["real", "real", "Deepfakes", "Deepfakes", "FaceSwap", "FaceSwap"],
            "video_id": ["r1", "r2", "d1", "d1", "s1", "s2"],
            "label": [0, 0, 1, 1, 1, 1],
            "prob": [0.1, 0.3, 0.9, 0.8, 0.2, 0.6],
        }
    )
    table = metrics_by_dataset_and_method(preds).set_index("method")
    assert list(table.index) == ["all", "Deepfakes", "FaceSwap"]
    assert table.loc["Deepfakes", "auc"] == 1.0 and table.loc["Deepfakes", "n_clips"] == 4
    assert table.loc["FaceSwap", "acc"] == pytest.approx(3 / 4)  # 0.2 is missed
    assert table.loc["FaceSwap", "auc"] == pytest.approx(0.75)
    assert table.loc["Deepfakes", "n_videos"] == 3 and table.loc["Deepfakes", "video_acc"] == 1.0
    assert table.loc["all", "n_clips"] == 6
