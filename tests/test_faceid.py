"""FR models under attack and the attack's figures: ASR and normal accuracy on hand-made cases,
1-NN and the linear probe on separable descriptors, the end-to-end model learning a toy task."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dfdetect.puface.faceid.classifiers import FeatureClassifier
from dfdetect.puface.faceid.finetune import EndToEnd
from dfdetect.puface.faceid.metrics import attack_success_rate, normal_accuracy
from dfdetect.utils.errors import UserError


def test_asr_and_normal_accuracy_on_a_hand_made_case():
    labels = [0, 0, 0, 0, 1, 1, 2, 2, 2, 2]
    pred = [0, 3, 1, 1, 1, 0, 2, 2, 2, 1]
    # user 0: 3 of its 4 natural test images misidentified; others: 1,0 | 2,2,2,1 -> 4 of 6 right
    assert attack_success_rate(pred, labels, [0]) == 0.75
    assert normal_accuracy(pred, labels, [0]) == pytest.approx(4 / 6)
    # two users: ASR over both users' images, normal accuracy over identity 2 alone
    assert attack_success_rate(pred, labels, [0, 1]) == pytest.approx(4 / 6)
    assert normal_accuracy(pred, labels, [0, 1]) == 0.75


def test_a_user_without_test_images_is_a_clear_error():
    with pytest.raises(UserError, match="no test images"):
        attack_success_rate([1, 1], [1, 2], [0])
    with pytest.raises(UserError, match="other than the cloaked"):
        normal_accuracy([0, 0], [0, 0], [0])


class Project(nn.Module):
    """A stand-in face net: the mean colour of a chip, scaled to unit-ish descriptors."""

    def forward(self, x):
        m = x.float().mean((2, 3)) / 255
        return torch.cat([m, torch.zeros(len(x), 125)], 1)


def colour_chips(labels, seed=0):
    rng = np.random.default_rng(seed)
    base = np.array([[200, 20, 20], [20, 200, 20], [20, 20, 200]])
    x = np.stack([np.clip(base[y] + rng.normal(0, 10, 3), 0, 255) for y in labels])
    return torch.from_numpy(
        np.broadcast_to(x[:, :, None, None], (len(labels), 3, 8, 8)).astype(np.uint8).copy()
    )


@pytest.mark.parametrize("kind", ["linear", "nn"])
def test_feature_classifiers_separate_separable_identities(kind):
    ytr, yte = np.repeat([0, 1, 2], 6), np.repeat([0, 1, 2], 3)
    clf = FeatureClassifier(Project(), kind).fit(colour_chips(ytr), ytr)
    assert (clf.predict(colour_chips(yte, seed=1)) == yte).all()


def test_nearest_neighbour_takes_the_closest_training_descriptor():
    clf = FeatureClassifier(Project(), "nn").fit_features(
        np.array([[0.0, 0], [1, 0], [5, 5]]), np.array([4, 7, 9])
    )
    assert clf.predict_features(np.array([[0.9, 0.2], [4, 4], [0.1, 0]])).tolist() == [7, 9, 4]


def test_end_to_end_fine_tunes_a_copy_and_learns():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 128))
    before = [p.clone() for p in net.parameters()]
    y = np.repeat([0, 1, 2], 8)
    model = EndToEnd(net, epochs=30, lr=1e-2, head_lr=5e-2, batch_size=8, input_size=8).fit(
        colour_chips(y), y
    )
    assert (model.predict(colour_chips(y, seed=3)) == y).mean() >= 0.9
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))


def test_end_to_end_probe_fits_the_head_on_frozen_descriptors_first():
    """probe_steps (LP-FT): with no fine-tuning epochs the head alone, on the untouched backbone,
    already classifies; the backbone's copy is not moved by the probe."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 128))
    y = np.repeat([0, 1, 2], 8)
    zero_head = EndToEnd(net, epochs=0, head_lr=5e-2, batch_size=8, input_size=8).fit(colour_chips(y), y)
    assert len(set(zero_head.predict(colour_chips(y, seed=3)).tolist())) == 1  # an untrained head: one class
    probed = EndToEnd(net, epochs=0, head_lr=5e-2, batch_size=8, input_size=8, probe_steps=200).fit(
        colour_chips(y), y
    )
    assert (probed.predict(colour_chips(y, seed=3)) == y).mean() >= 0.9
    assert all(torch.equal(a, b) for a, b in zip(net.parameters(), probed.model[0].parameters(), strict=True))
    assert probed.recipe()["probe_steps"] == 200


def test_end_to_end_probe_uses_the_descriptors_the_caller_holds():
    """The caller's frozen descriptors (Evaluation's, dlib's input size) stand in for recomputing
    them: the same probe when they are the net's own, another one when they are not; ignored at
    another input size, where they would not be the net's descriptors of what it is fed."""
    from dfdetect.puface.faceid.features import embed

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 128))
    y = np.repeat([0, 1, 2], 8)
    chips = colour_chips(y)
    own = embed(net, chips).numpy()

    def head(features=None, **kw):
        model = EndToEnd(net, epochs=0, head_lr=5e-2, probe_steps=50, **kw).fit(chips, y, features=features)
        return torch.cat([model.model[1].weight.detach().ravel(), model.model[1].bias.detach()])

    recomputed = head()
    assert torch.allclose(head(own), recomputed, atol=1e-6)
    assert not torch.allclose(head(np.zeros_like(own)), recomputed, atol=1e-3)
    assert torch.allclose(head(np.zeros_like(own), input_size=8), head(input_size=8), atol=1e-6)
