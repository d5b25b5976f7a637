"""The many-user protocol (issue #26) on a hand-made folder of 5 tiny identities: cloaks batched
across users (a batch holds several users, the users told apart by ``groups``), targets from the
attacker's pool only, cached and resumed per user; results written per (attack, user) and not
recomputed on a rerun; the attacker's amplified cloaks as rows of their own; the perturbation table's numbers."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from torch import nn

import dfdetect.puface.evaluation.protocol as protocol
from dfdetect.puface.data.identity_datamodule import IdentityDataModule
from dfdetect.puface.evaluation.cloak_cache import cloak_users
from dfdetect.puface.evaluation.evaluate import Evaluation
from dfdetect.puface.evaluation.protocol import ci_table, perturbation_stats, run_protocol

COLOURS = {
    "ann": (200, 30, 30),
    "bob": (30, 200, 30),
    "cid": (30, 30, 200),
    "dee": (200, 200, 30),
    "eve": (30, 200, 200),
}


class _Shift:
    """A fake targeted attack: +10 grey levels; records each batch's users (groups)."""

    targeted = True
    top_targets = 20
    max_target_images = 10

    def __init__(self):
        self.batches = []

    def __call__(self, x, extractors, x_target, groups=None):
        self.batches.append(groups.tolist())
        return (x + 10).clamp(0, 255)


@pytest.fixture()
def faces(tmp_path):
    rng = np.random.default_rng(0)
    for name, colour in COLOURS.items():
        (tmp_path / "raw" / name).mkdir(parents=True)
        for i in range(5):
            img = np.clip(np.array(colour) + rng.normal(0, 12, (16, 16, 3)), 0, 255).astype(np.uint8)
            cv2.imwrite(str(tmp_path / "raw" / name / f"{i}.png"), img[..., ::-1])
    return IdentityDataModule(str(tmp_path / "raw"), str(tmp_path / "chips"), source="folder", chip_size=16,
                              identities=["ann", "bob", "cid"])  # fmt: skip


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(12, 6)).eval()


def test_cloaks_are_batched_across_users_targeted_from_the_pool_and_resumed(faces, tmp_path):
    users = {
        u: (faces.rows("train", u)["name"].tolist(), faces.identity_chips("train", u)) for u in ["ann", "bob"]
    }
    pool = {"eve": torch.full((3, 3, 16, 16), 90, dtype=torch.uint8)}
    attack = _Shift()
    out = cloak_users(attack, users, tmp_path / "cloaks", pool, [_net()], batch_size=5)
    assert any(len(set(b)) == 2 for b in attack.batches)  # one batch held both users
    assert sum(len(b) for b in attack.batches) == sum(len(n) for n, _ in users.values())
    for u, (_names, chips) in users.items():
        meta = json.loads((tmp_path / "cloaks" / u / "cloak.json").read_text())
        assert meta["complete"] and meta["target"] == "eve"
        assert torch.equal(out[u], (chips.int() + 10).clamp(0, 255).to(torch.uint8))
    again = _Shift()
    cloak_users(again, users, tmp_path / "cloaks", pool, [_net()], batch_size=5)
    assert again.batches == []


def test_protocol_rows_per_attack_and_user_resume_and_table(faces, tmp_path, monkeypatch):
    net = _net()
    ev = Evaluation(faces, net, {"none": lambda c: c, "bits4": lambda c: (c // 16) * 16}, [], device="cpu")
    pool = {"eve": torch.full((3, 3, 16, 16), 90, dtype=torch.uint8)}
    kw = dict(models=["linear", "nn"], batch_size=4, ks=[1, 2])
    res = run_protocol(
        ev, {"shift": _Shift()}, ["ann", "bob"], tmp_path / "c", pool, [net], tmp_path / "r", **kw
    )
    assert sorted((tmp_path / "r" / "shift").glob("*.csv")) == [
        tmp_path / "r/shift/ann.csv",
        tmp_path / "r/shift/bob.csv",
    ]
    assert sorted(p.name for p in (tmp_path / "r" / "shift_x2").glob("*.csv")) == ["ann.csv", "bob.csv"]
    assert len(res) == 3 * 2 * 2 * 2  # (natural, shift, shift_x2) x users x defenses x models
    assert set(res["attack"]) == {"natural", "shift", "shift_x2"}
    assert set(res["setting"]) == {"white-box"} and res["asr"].between(0, 1).all()
    calls = []
    monkeypatch.setattr(protocol, "user_rows", lambda *a, **k: calls.append(a) or [])
    again = run_protocol(
        ev, {"shift": _Shift()}, ["ann", "bob"], tmp_path / "c", pool, [net], tmp_path / "r", **kw
    )
    assert calls == [] and len(again) == len(res)
    table = ci_table(res, n_boot=200)
    assert "| white-box | shift | linear | 2 |" in table and "none" in table.splitlines()[0]


def test_perturbation_stats_on_a_known_change():
    x = torch.full((2, 3, 16, 16), 100, dtype=torch.uint8)
    xc = x.clone()
    xc[0, :, 0, 0] = 151  # one pixel, +51 = 0.2 on [0, 1]
    s = perturbation_stats(x, xc)
    assert s["n"] == 2 and s["linf_max"] == pytest.approx(0.2) and s["linf_mean"] == pytest.approx(0.1)
    assert s["l2_max"] == pytest.approx(0.2 * 3**0.5, rel=1e-5)
    assert s["psnr_min"] == pytest.approx(10 * np.log10(1 / (3 * 0.04 / (3 * 256))), rel=1e-4)


class _FakeE2E:
    """Predicts the training label of the nearest mean colour; records its seed."""

    seeds: list[int] = []

    def __init__(self, seed):
        _FakeE2E.seeds.append(seed)

    def fit(self, chips, labels, features=None):
        labels = np.asarray(labels)
        self.labels = np.unique(labels)
        self.means = torch.stack(
            [chips[torch.from_numpy(labels == k)].float().mean((0, 2, 3)) for k in self.labels]
        )
        return self

    def predict(self, chips):
        return self.labels[torch.cdist(chips.float().mean((2, 3)), self.means).argmin(1).numpy()]


def test_grey_box_rows_per_seed_only_for_its_defenses(faces, tmp_path):
    net = _net()
    ev = Evaluation(faces, net, {"none": lambda c: c, "bits4": lambda c: (c // 16) * 16}, [], device="cpu")
    _FakeE2E.seeds = []
    res = run_protocol(ev, {}, ["ann"], tmp_path / "c", {}, [net], tmp_path / "r", models=["linear", "e2e"],
                       make_e2e=_FakeE2E, e2e_seeds=[0, 1], e2e_defenses=["none"])  # fmt: skip
    grey = res[res["model"] == "e2e"]
    assert set(grey["setting"]) == {"grey-box"} and sorted(grey["seed"]) == [0, 1]
    assert set(grey["defense"]) == {"none"} and _FakeE2E.seeds == [0, 1]
    assert (grey["asr"] == 0).all() and (grey["normal_accuracy"] == 1).all()
    assert set(res.loc[res["model"] == "linear", "setting"]) == {"white-box"}


def test_grey_box_joint_fits_once_per_defense_and_seed_with_every_user_cloaked(faces, tmp_path, monkeypatch):
    net = _net()
    ev = Evaluation(faces, net, {"none": lambda c: c, "bits4": lambda c: (c // 16) * 16}, [], device="cpu")
    fits = []

    class _Recording(_FakeE2E):
        def fit(self, chips, labels, features=None):
            fits.append(chips.clone())
            return super().fit(chips, labels)

    _FakeE2E.seeds = []
    kw = dict(models=["linear", "e2e"], make_e2e=_Recording, e2e_seeds=[0, 1], e2e_defenses=["none"],
              batch_size=4, e2e_joint=True)  # fmt: skip
    pool = {"eve": torch.full((3, 3, 16, 16), 90, dtype=torch.uint8)}
    res = run_protocol(
        ev, {"shift": _Shift()}, ["ann", "bob"], tmp_path / "c", pool, [net], tmp_path / "r", **kw
    )
    joint = res[res["model"] == "e2e"]
    # (natural, shift) x 1 defense x 2 seeds fine-tunings, not x 2 users
    assert len(fits) == 4 and _FakeE2E.seeds == [0, 1, 0, 1]
    assert set(joint["setting"]) == {"grey-box (joint)"} and len(joint) == 2 * 2 * 2
    xtr, ytr = ev.xtr, ev.ytr
    for user in ["ann", "bob"]:  # the shift fits saw both users' chips cloaked (+10), the others natural
        mine = ytr == faces.identities.index(user)
        assert torch.equal(fits[2][mine], (xtr[mine].int() + 10).clamp(0, 255).to(fits[2].dtype))
    other = ytr == faces.identities.index("cid")
    assert torch.equal(fits[2][other], xtr[other]) and torch.equal(fits[0], xtr)
    assert sorted(p.name for p in (tmp_path / "r" / "shift" / "e2e_joint").iterdir()) == [
        "none_s0.csv",
        "none_s1.csv",
    ]
    fits.clear()
    with monkeypatch.context() as m:  # every fit is on disk: no cloak is read again
        m.setattr(protocol, "read_cloaks", lambda *a: pytest.fail("cloaks read on a resumed run"))
        again = run_protocol(
            ev, {"shift": _Shift()}, ["ann", "bob"], tmp_path / "c", pool, [net], tmp_path / "r", **kw
        )
    assert fits == [] and len(again) == len(res)
    fits.clear()
    run_protocol(ev, {"shift": _Shift()}, ["ann"], tmp_path / "c", pool, [net], tmp_path / "r", **kw)
    assert len(fits) == 4  # another set of users: fitted again


def test_grey_box_joint_rows_are_refitted_when_the_fine_tuning_recipe_changes(faces, tmp_path):
    net = _net()
    ev = Evaluation(faces, net, {"none": lambda c: c}, [], device="cpu")
    fits = []

    def recipe_of(lr):
        class _WithRecipe(_FakeE2E):
            def recipe(self):
                return {"lr": lr}

            def fit(self, chips, labels, features=None):
                fits.append(lr)
                return super().fit(chips, labels)

        return _WithRecipe

    kw = dict(models=["linear", "e2e"], e2e_seeds=[0], e2e_defenses=["none"], batch_size=4, e2e_joint=True)
    args = (ev, {}, ["ann", "bob"], tmp_path / "c", {}, [net], tmp_path / "r")
    run_protocol(*args, make_e2e=recipe_of(1e-4), **kw)
    run_protocol(*args, make_e2e=recipe_of(1e-4), **kw)
    assert fits == [1e-4]  # the same recipe: read from disk
    res = run_protocol(*args, make_e2e=recipe_of(1e-5), **kw)
    assert fits == [1e-4, 1e-5]
    assert set(res.loc[res["model"] == "e2e", "recipe"]) == {'{"lr": 1e-05}'}
