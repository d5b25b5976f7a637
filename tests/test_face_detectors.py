"""ABNet, FakeSpotter and FTDetect: configs, net contracts, training steps, checkpoints, the
threshold pass, both FTDetect stages, and the shared face-recognition backbone."""

from __future__ import annotations

import hydra
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from dfdetect.models.layers.dlib_resnet import DLIB_MIN_INPUT_SIZE
from dfdetect.models.layers.face_backbone import (
    MIN_INPUT_SIZE,
    LayerActivations,
    build_face_backbone,
    coverage_layer_names,
    face_embeddings,
)
from dfdetect.models.lightning.abnet_module import ABNetModule, identity_codes
from dfdetect.models.lightning.checkpoint import load_detector
from dfdetect.models.lightning.fakespotter_module import FakeSpotterModule
from dfdetect.models.lightning.ftdetect_module import FTDetectModule
from dfdetect.models.lightning.metric_losses import contrastive_loss, multi_similarity_loss
from dfdetect.models.nets import create_net
from dfdetect.run.train import train
from dfdetect.scoring.roc import eer_cut

MODULES = {"abnet": ABNetModule, "fakespotter": FakeSpotterModule, "ftdetect": FTDetectModule}
# the cheap InceptionResnetV1 variant (random, fewer units), for tests of that face net
SMALL_INCEPTION = {"face_net": "inception_resnet_v1", "weights": None, "block_repeats": [1, 1, 1]}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # on 2 shared cores, one intra-op thread runs these nets several times faster
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def uint8_clips(b: int, t: int, size: int = 64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, t, 3, size, size), dtype=torch.uint8, generator=g)


def training_batch(b: int = 4, t: int = 2) -> dict:
    return {
        "clip": uint8_clips(b, t),
        "label": torch.tensor([0, 1] * (b // 2)),
        "clip_index": torch.arange(b),
        "video_index": torch.arange(b),
        "identity_index": torch.tensor([0, 1, 1, 0][:b]),
        "source_identity_index": torch.tensor([0, 0, 1, 1][:b]),
    }


@pytest.fixture(scope="module")
def modules(tmp_path_factory):
    from tests.conftest import compose_config, tiny_data_overrides

    root = tmp_path_factory.mktemp("face_cfg")
    out = {}
    for name in MODULES:
        cfg = compose_config(
            "train.yaml", [*tiny_data_overrides(root / "data"), f"model={name}"], root / name
        )
        torch.manual_seed(0)
        out[name] = hydra.utils.instantiate(cfg.model)
    return out


@pytest.mark.parametrize("name", list(MODULES))
def test_config_instantiates_the_detector(name, modules):
    model = modules[name]
    assert type(model) is MODULES[name]
    # the tiny data asks for 64 px: raised to what the face net needs
    # (ftdetect's default AlexNet takes the 64 px as they are)
    assert model.net.input_size == (64 if name == "ftdetect" else DLIB_MIN_INPUT_SIZE)
    extra = {
        "abnet": "identities_per_batch",
        "fakespotter": "threshold_batches",
        "ftdetect": "siamese_start_epoch",
    }
    assert model.hparams[extra[name]] == {"abnet": 8, "fakespotter": 50, "ftdetect": 5}[name]


@pytest.mark.parametrize("name", list(MODULES))
@pytest.mark.parametrize("t", [5, 1])
def test_forward_on_uint8_clips(name, t, modules):
    model = modules[name].eval()
    clips = uint8_clips(2, t, size=80)
    if name == "abnet":  # scores only identities it holds references of
        from tests.test_abnet import enrol_self

        enrol_self(model.net, model.normalise(clips))
    out = model(clips)
    assert out.shape == (2,)
    if name == "abnet" and t == 1:
        assert torch.isnan(out).all()  # a still has no behaviour: unknown
        return
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", list(MODULES))
def test_training_step_gives_every_trainable_parameter_a_gradient(name, modules):
    model = modules[name].train()
    model.zero_grad()
    loss = model.training_step(training_batch(), 0)
    assert torch.isfinite(loss)
    loss.backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert trainable
    for pname, p in trainable:
        assert p.grad is not None and p.grad.abs().sum() > 0, pname
    model.zero_grad()


@pytest.mark.parametrize("name", list(MODULES))
def test_state_dict_round_trip_gives_identical_outputs(name, tmp_path):
    def build(seed: int):
        torch.manual_seed(seed)
        return MODULES[name](create_net(name, input_size=64, **SMALL_INCEPTION)).eval()

    model = build(0)
    if name == "fakespotter":
        model.net.set_thresholds(torch.rand(len(model.net.layers)) * 0.1)
    if name == "ftdetect":
        model.net.set_references(torch.rand(7, 1))
        model.net.set_distance_threshold(0.2, 3.0)
    clips = uint8_clips(2, 3, size=80, seed=3)
    if name == "abnet":
        from tests.test_abnet import enrol_self

        enrol_self(model.net, model.normalise(clips))
    torch.save(model.state_dict(), tmp_path / "w.pt")
    other = build(1)
    other.load_state_dict(torch.load(tmp_path / "w.pt", weights_only=True))
    assert torch.equal(model(clips), other(clips)) and torch.isfinite(other(clips)).all()
    if name == "ftdetect":
        assert other.net.reference_embeddings.shape == (7, 1) and bool(other.net.siamese_ready)
    if name == "fakespotter":
        assert bool(other.net.thresholds_fitted)


# --- the shared backbone


def test_backbone_needs_75_pixels_and_gives_unit_embeddings():
    net = build_face_backbone(block_repeats=[1, 1, 1]).eval()
    with torch.no_grad():
        emb = face_embeddings(net, torch.randn(2, 3, 3, MIN_INPUT_SIZE, MIN_INPUT_SIZE))
        assert emb.shape == (2, 512)
        assert torch.allclose(emb.norm(dim=1), torch.ones(2), atol=1e-5)
        with pytest.raises(RuntimeError):
            net(torch.randn(1, 3, MIN_INPUT_SIZE - 1, MIN_INPUT_SIZE - 1))


@pytest.fixture(scope="module")
def face_weights(tmp_path_factory):
    """A facenet-style state dict file (with its ``logits`` classifier) and the net it came from."""
    torch.manual_seed(0)
    source = build_face_backbone().eval()
    state = {**source.state_dict(), "logits.weight": torch.zeros(8631, 512), "logits.bias": torch.zeros(8631)}
    path = tmp_path_factory.mktemp("face_weights") / "vggface2.pt"
    torch.save(state, path)
    return path, source


def test_local_weights_load_and_facenet_logits_are_dropped(face_weights):
    path, source = face_weights
    torch.manual_seed(1)
    loaded = build_face_backbone(weights=path).eval()
    x = torch.randn(2, 3, 80, 80)
    with torch.no_grad():
        assert torch.equal(source(x), loaded(x))


def test_bad_weight_files_are_named(tmp_path):
    missing = tmp_path / "nowhere.pt"
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        build_face_backbone(weights=missing)
    torch.save({"conv.weight": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="other.pt"):
        build_face_backbone(weights=tmp_path / "other.pt")
    with pytest.raises(ValueError, match="block_repeats"):
        build_face_backbone(weights=tmp_path / "other.pt", block_repeats=[1, 1, 1])


def test_frozen_appearance_with_weights_is_not_trained(face_weights):
    path, source = face_weights
    net = create_net("abnet", input_size=64, face_net="inception_resnet_v1", weights=str(path))
    names = [n for n, _ in net.named_parameters()]
    assert names and not any(n.startswith("appearance.") for n in names)
    assert net.train().appearance.module.training is False
    kept = net.state_dict()["appearance.module.conv2d_1a.conv.weight"]
    assert torch.equal(kept, source.conv2d_1a.conv.weight)


def test_nothing_is_downloaded(monkeypatch):
    import facenet_pytorch.models.inception_resnet_v1 as irv1

    def refuse(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(irv1, "download_url_to_file", refuse)
    monkeypatch.setattr(irv1, "load_weights", refuse)
    for name in MODULES:
        create_net(name, input_size=64, **SMALL_INCEPTION)


def test_layer_hooks_record_every_layer_and_are_removed():
    net = build_face_backbone(block_repeats=[2, 1, 1]).eval()
    names = coverage_layer_names(net)
    assert names[:6] == ["conv2d_1a", "conv2d_2a", "conv2d_2b", "conv2d_3b", "conv2d_4a", "conv2d_4b"]
    assert names[6:] == ["repeat_1.0", "repeat_1.1", "mixed_6a", "repeat_2.0", "mixed_7a", "repeat_3.0"] + [
        "block8",
        "last_bn",
    ]
    with LayerActivations(net, names) as outputs, torch.no_grad():
        net(torch.randn(1, 3, 80, 80))
    assert list(outputs) == names and outputs["last_bn"].shape == (1, 512)
    assert all(not m._forward_hooks for m in net.modules())
    with pytest.raises(KeyError, match="nope"):
        LayerActivations(net, ["nope"])


# --- ABNet


def test_identity_codes_share_one_space_and_mark_unknowns():
    frame = pd.DataFrame(
        {"identity": ["ann", "bob", "bob", ""], "source_identity": ["ann", "ann", "bob", None]}
    )
    codes = identity_codes(frame)
    assert codes.tolist() == [[0, 0], [1, 0], [1, 1], [-1, -1]]


def test_multi_similarity_loss_prefers_clustered_identities():
    torch.manual_seed(0)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    centres = F.normalize(torch.randn(3, 16), dim=1)
    clustered = F.normalize(centres[labels] + 0.05 * torch.randn(6, 16), dim=1)
    assert multi_similarity_loss(clustered, labels) < multi_similarity_loss(
        clustered, labels[[0, 2, 4, 1, 3, 5]]
    )
    unknown = torch.tensor([0, 0, 1, 1, -1, -1])
    assert torch.isclose(
        multi_similarity_loss(clustered, unknown), multi_similarity_loss(clustered[:4], labels[:4])
    )
    assert multi_similarity_loss(clustered, torch.full((6,), -1)) == 0


# --- FakeSpotter


def test_thresholds_are_layer_means_and_coverage_counts_neurons_above_them():
    torch.manual_seed(0)
    net = create_net("fakespotter", input_size=64, **SMALL_INCEPTION, features="coverage")
    model = FakeSpotterModule(net, threshold_batches=2)
    batches = [{"clip": uint8_clips(2, 2, seed=s)} for s in range(3)]
    thresholds = model.fit_thresholds(batches)  # only the first two batches count
    frames = torch.cat([model.net.resize(model.normalise(b["clip"]).flatten(0, 1)) for b in batches[:2]])
    with torch.no_grad():
        outs = net.neuron_outputs(frames)
        expected = torch.stack([o.mean() for o in outs])
        assert torch.allclose(thresholds, expected, rtol=1e-5, atol=1e-6)
        assert bool(net.thresholds_fitted)
        coverage = net.coverage_features(frames)
    manual = torch.stack([(o > t).float().mean(dim=1) for o, t in zip(outs, thresholds, strict=True)], dim=1)
    assert coverage.shape == (len(frames), len(net.layers)) and torch.equal(coverage, manual)
    assert 0 < float(coverage.mean()) < 1


def test_batch_norm_calibration_standardises_a_random_network():
    torch.manual_seed(0)
    net = create_net("fakespotter", input_size=64, **SMALL_INCEPTION)
    assert net.calibrate_bn  # no weights: a random network
    frames = torch.randn(12, 3, 75, 75)
    bn = net.backbone.module.conv2d_2b.bn
    with torch.no_grad():
        with LayerActivations(net.backbone.module, ["conv2d_2b.bn"]) as out:
            net.backbone(frames)
        assert out["conv2d_2b.bn"].std() < 0.1  # default statistics: activations fade
        net.calibrate_batch_norm([frames[:6], frames[6:]])
        with LayerActivations(net.backbone.module, ["conv2d_2b.bn"]) as out:
            net.backbone(frames)
    assert not bn.training and bn.momentum == 0.1 and int(bn.num_batches_tracked) == 2
    per_channel = out["conv2d_2b.bn"].transpose(0, 1).flatten(1)
    assert per_channel.mean(dim=1).abs().max() < 0.05
    assert torch.allclose(per_channel.std(dim=1), torch.ones(64), atol=0.05)


def test_fitted_thresholds_are_not_refitted():
    net = create_net("fakespotter", input_size=64, **SMALL_INCEPTION)
    net.set_thresholds(torch.full((len(net.layers),), 0.25))
    FakeSpotterModule(net).on_fit_start()  # no trainer, no data: must not need them
    assert torch.all(net.thresholds == 0.25)


def test_activated_features_zero_the_inactive_neurons():
    net = create_net("fakespotter", input_size=64, **SMALL_INCEPTION, features="activated").eval()
    net.set_thresholds(torch.full((len(net.layers),), 1e9))
    with torch.no_grad():
        feats = net.coverage_features(torch.randn(2, 3, 75, 75))
    assert feats.shape == (2, sum(net.widths) + len(net.layers))
    assert torch.count_nonzero(feats) == 0


# --- FTDetect


def small_ftdetect(**kwargs) -> FTDetectModule:
    torch.manual_seed(0)
    net = create_net("ftdetect", input_size=64, backbone="alexnet", hidden=16)
    return FTDetectModule(net, reference_size=4, pairs_per_step=8, **kwargs)


def test_authors_alexnet_has_their_parameter_count():
    net = create_net("ftdetect", input_size=224, backbone="alexnet")
    assert sum(p.numel() for p in net.parameters()) == 4_802_593  # their Keras summary


def test_siamese_stage_trains_only_the_last_layer_on_real_pairs():
    model = small_ftdetect().train()
    batch = training_batch(b=4)
    model.grow_few_shot_set(batch)
    assert len(model.few_shot) == 2  # the two real clips
    model.net.freeze_below_final()
    assert {n for n, p in model.net.named_parameters() if p.requires_grad} == {"final.weight", "final.bias"}
    assert not model.net.train().hidden.training
    loss = model.siamese_loss()
    loss.backward()
    assert loss > 0 and model.net.final.weight.grad.abs().sum() > 0
    assert all(p.grad is None for n, p in model.net.named_parameters() if not n.startswith("final."))
    model.grow_few_shot_set({"clip": uint8_clips(6, 2, seed=4), "label": torch.zeros(6, dtype=torch.long)})
    assert len(model.few_shot) == 4  # reference_size caps the few-shot set


def test_siamese_steps_are_plain_sgd_on_the_last_layer():
    model = small_ftdetect(siamese_start_epoch=0, siamese_lr=0.5, siamese_steps=1).train()
    model.grow_few_shot_set(training_batch(b=4))
    model.net.freeze_below_final()
    adam = torch.optim.Adam(model.parameters(), lr=1.0)
    before = model.net.final.weight.detach().clone()
    generator_state = model.pair_generator.get_state()
    with torch.enable_grad():
        expected_loss = model.siamese_loss()
        grad = torch.autograd.grad(expected_loss, model.net.final.weight)[0]
    model.pair_generator.set_state(generator_state)  # the step draws the same pairs
    model.optimizer_step(0, 0, adam, lambda: model.training_step(training_batch(b=4), 0))
    assert grad.abs().sum() > 0 and not adam.state  # the configured optimizer did not step
    assert torch.allclose(model.net.final.weight, before - 0.5 * grad)


def test_distance_scoring_uses_references_threshold_and_scale():
    model = small_ftdetect().eval()
    net = model.net
    clips = model.normalise(uint8_clips(3, 2))
    with torch.no_grad():
        base = net(clips)
        emb = net.embeddings(net.clip_features(clips))
        net.set_references(torch.tensor([[0.1], [0.3]]))
        net.set_distance_threshold(0.05, 4.0)
        distance_logits = net(clips)
    expected = ((emb - 0.1).abs() + (emb - 0.3).abs()).squeeze(1) / 2
    assert not torch.equal(base, distance_logits)
    assert torch.allclose(distance_logits, (expected - 0.05) * 4.0, atol=1e-6)


def test_distance_threshold_counts_each_validation_clip_once():
    model = small_ftdetect()
    model.all_gather = lambda tensor: tensor  # one process: the gather is the identity
    distances = torch.tensor([0.1, 0.2, 0.65, 0.3, 0.6, 0.9])
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    # a distributed sampler's pad repeats clip 2 (a real one among the fakes) four times
    repeat = torch.tensor([2, 2, 2, 2])
    model.val_distances = [distances, distances[repeat]]
    model.val_labels = [labels, labels[repeat]]
    model.val_clip_index = [torch.arange(6), repeat]
    model.fit_distance_threshold()
    expected = eer_cut(distances, labels)
    assert float(model.net.distance_threshold) == pytest.approx(expected)
    assert eer_cut(torch.cat(model.val_distances), torch.cat(model.val_labels)) != pytest.approx(expected)


def test_eer_threshold_and_contrastive_loss():
    scores = torch.tensor([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    assert 0.3 < eer_cut(scores, labels) < 0.7
    assert eer_cut(scores, torch.zeros(6)) is None
    d = torch.tensor([0.5, 2.0])
    assert torch.isclose(contrastive_loss(d, torch.tensor([0, 1]), margin=1.4), torch.tensor(0.125))


# --- end to end through train.py


def test_abnet_fast_dev_run_trains_on_real_identities_and_scores_enrolled_ones(train_cfg):
    metrics, objects = train(
        train_cfg(
            "model=abnet",
            "model.enrol_splits=[train,val,test]",
            "model.reference_clips=1",
            "trainer.fast_dev_run=true",
        )
    )  # frozen dlib net
    model, trainer = objects["model"], objects["trainer"]
    assert metrics["global_step"] == 1 and trainer.state.finished
    frame = objects["datamodule"].split_frame("train")
    real = frame[(frame["label"] == 0)]
    bank = model.bank
    assert len(bank["features"]) == len(real) and bank["names"] == sorted(real["identity"].unique())
    test = objects["datamodule"].split_frame("test")
    # enrolled: every training identity, and the test split's real identities from their first clips
    assert set(model.net.identities) == set(real["identity"]) | set(test[test["label"] == 0]["identity"])
    assert len(model.excluded["test"]) == test[test["label"] == 0]["video_id"].nunique()
    assert "test/auc" in metrics


def test_fakespotter_fast_dev_run_fits_thresholds_first(train_cfg):
    metrics, objects = train(
        train_cfg("model=fakespotter", "model.threshold_batches=1", "trainer.fast_dev_run=true")
    )
    net = objects["model"].net
    assert metrics["global_step"] == 1 and "val/auc" in metrics
    assert bool(net.thresholds_fitted) and torch.isfinite(net.thresholds).all()
    assert net.thresholds.abs().sum() > 0


@pytest.mark.parametrize("inference", ["single", "bank"])
def test_ftdetect_runs_both_stages_and_keeps_the_siamese_checkpoint(train_cfg, inference):
    cfg = train_cfg(
        "experiment=ftdetect",
        f"model.inference={inference}",
        "model.net.backbone=alexnet",
        "model.net.hidden=64",
        "model.siamese_start_epoch=1",
        "model.reference_size=4",
        "model.pairs_per_step=8",
        "trainer.max_epochs=2",
    )
    metrics, objects = train(cfg)
    assert metrics["epochs"] == 2 and metrics["global_step"] >= 3
    assert "stageauc" in metrics["best_checkpoint"]
    best = load_detector(metrics["best_checkpoint"])
    assert bool(best.net.siamese_ready)
    assert len(objects["model"].few_shot) == 4 and not objects["model"].few_shot_from_batches
    if inference == "bank":
        assert len(best.net.reference_embeddings) == 4
        assert float(best.net.distance_scale) > 0
    else:  # one random real reference, the authors' fixed cut
        assert len(best.net.reference_embeddings) == 1
        assert float(best.net.distance_threshold) == pytest.approx(0.8)
        assert float(best.net.distance_scale) == 10.0
    assert {n for n, p in objects["model"].net.named_parameters() if p.requires_grad} == {
        "final.weight",
        "final.bias",
    }
    assert torch.isfinite(best(uint8_clips(2, 5))).all()
