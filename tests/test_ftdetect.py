"""FTDetect as the authors' main.ipynb builds it: defaults, real-real pair sampling, 40 SGD steps
per Siamese epoch, and the inference rule (one random real reference, cut at 0.8)."""

from __future__ import annotations

import math

import pytest
import torch

from dfdetect.models.lightning.ftdetect_module import FTDetectModule, real_pairs
from dfdetect.models.nets import create_net
from tests.conftest import compose_config
from tests.test_face_detectors import _one_thread, training_batch, uint8_clips  # noqa: F401


def small(**kwargs) -> FTDetectModule:
    torch.manual_seed(0)
    net = create_net("ftdetect", input_size=64, hidden=16)
    return FTDetectModule(net, reference_size=8, pairs_per_step=4, **kwargs)


def test_defaults_are_the_authors_alexnet_recipe(tmp_path):
    net = create_net("ftdetect")
    assert net.input_size == 224 and tuple(net.mean) == (0.0,) * 3 and tuple(net.std) == (1.0,) * 3
    assert sum(p.numel() for p in net.parameters()) == 4_802_593
    cfg = compose_config("train.yaml", ["experiment=ftdetect"], tmp_path)
    m = cfg.model
    assert (m.net.backbone, m.optimizer._target_, m.optimizer.lr) == ("alexnet", "torch.optim.Adam", 1e-5)
    assert (m.siamese_lr, m.siamese_steps, m.pairs_per_step) == (1e-3, 40, 32)
    assert (m.inference, m.distance_cut) == ("single", 0.8)
    assert cfg.trainer.max_epochs - m.siamese_start_epoch == 3  # the authors' 3 Siamese epochs


def test_pairs_are_distinct_real_clips_each_used_once_per_step_when_possible():
    g = torch.Generator().manual_seed(0)
    first, second = real_pairs(64, 32, g)  # the authors' 32 pairs from a large enough folder
    assert sorted(torch.cat([first, second]).tolist()) == list(range(64))
    first, second = real_pairs(5, 40, g)  # a small set: clips recur, never with themselves
    assert len(first) == 40 and (first != second).all()
    assert first.min() >= 0 and max(first.max(), second.max()) < 5
    with pytest.raises(ValueError, match="at least 2"):
        real_pairs(1, 4)


def test_siamese_pairs_come_from_the_real_clips_only():
    model = small()
    model.grow_few_shot_set(training_batch(b=4))  # labels 0, 1, 0, 1
    real = model.normalise(training_batch(b=4)["clip"][[0, 2]])
    with torch.no_grad():
        expected = model.net.clip_features(real)
    assert len(model.few_shot) == 2 and torch.allclose(torch.stack(model.few_shot), expected)


def test_a_siamese_epoch_is_40_sgd_steps_then_its_other_batches_train_nothing():
    model = small(siamese_start_epoch=0).train()
    model.grow_few_shot_set({"clip": uint8_clips(6, 2, seed=2), "label": torch.zeros(6, dtype=torch.long)})
    model.net.freeze_below_final()
    adam = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1.0)
    before = [p.detach().clone() for p in model.net.parameters()]
    model.on_train_epoch_start = lambda: None  # no trainer here; the epoch counter starts at 0
    model.optimizer_step(0, 0, adam, lambda: model.training_step(training_batch(b=4), 0))
    assert model.siamese_steps_done == 40 and not adam.state
    after = [p.detach().clone() for p in model.net.parameters()]
    assert model.training_step(training_batch(b=4), 1) is None and model.siamese_steps_done == 40
    assert all(torch.equal(a, p) for a, p in zip(after, model.net.parameters(), strict=True))
    changed = [not torch.equal(b, p) for b, p in zip(before, model.net.parameters(), strict=True)]
    names = [n for n, _ in model.net.named_parameters()]
    assert {n for n, c in zip(names, changed, strict=True) if c} == {"final.weight", "final.bias"}


def constant_score(model: FTDetectModule, score: float) -> None:
    """Make every frame's sigmoid output ``score``."""
    with torch.no_grad():
        model.net.final.weight.zero_()
        model.net.final.bias.fill_(math.log(score / (1 - score)))


def test_inference_pairs_each_clip_with_one_random_real_reference_and_cuts_at_0_8():
    model = small(inference="single").eval()
    model.few_shot = [torch.randn(2, 16) for _ in range(8)]
    model.refresh_references()
    assert model.net.reference_embeddings.shape == (1, 1) and bool(model.net.siamese_ready)
    assert float(model.net.distance_threshold) == pytest.approx(0.8)
    again = small(inference="single").eval()
    again.few_shot = list(model.few_shot)
    again.refresh_references()  # the same seed draws the same reference
    assert torch.equal(again.net.reference_embeddings, model.net.reference_embeddings)
    clips = uint8_clips(2, 3)
    for reference, fake in ((0.9, True), (0.84, False), (0.5, False)):
        constant_score(model, 0.05)  # every clip scores 0.05
        model.net.set_references(torch.tensor([[reference]]))
        with torch.no_grad():
            prob = torch.sigmoid(model(clips))
        distance = reference - 0.05
        assert torch.allclose(prob, torch.sigmoid(torch.tensor(10 * (distance - 0.8))), atol=1e-5)
        assert bool((prob > 0.5).all()) == fake, (reference, prob)


def test_bank_option_scores_the_mean_distance_to_the_few_shot_set():
    model = small(inference="bank").eval()
    model.few_shot = [torch.randn(2, 16) for _ in range(8)]
    model.refresh_references()
    assert model.net.reference_embeddings.shape == (8, 1)
    with pytest.raises(ValueError, match="inference"):
        small(inference="nearest")
