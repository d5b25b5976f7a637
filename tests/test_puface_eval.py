"""PuFace's evaluation on a hand-made case (a stand-in face net whose descriptor is the mean red
value), the defenses, and the clear errors for users that cannot be evaluated."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from dfdetect.puface.data.identity_datamodule import read_image
from dfdetect.puface.evaluation.eval_command import sweep_checkpoints
from dfdetect.puface.evaluation.evaluate import (
    Evaluation,
    check_users,
    evaluate,
    purifier_sweep,
    summary_table,
)
from dfdetect.puface.evaluation.grid import purifier_strip
from dfdetect.puface.purifier.defenses import bit_depth, build_defenses, jpeg, median_filter
from dfdetect.utils.errors import UserError


class Red(nn.Module):
    def forward(self, x):
        return torch.cat([x.float()[:, :1].mean((2, 3)) / 100, torch.zeros(len(x), 127)], 1)


class Faces:
    """Three identities at red = 0, 100, 200; 4 training and 2 test chips each."""

    identities = ["a", "b", "c"]

    def __init__(self):
        self.table = pd.DataFrame(
            [
                (i, s, f"{i}{s}{n}.png")
                for i in self.identities
                for s, k in (("train", 4), ("test", 2))
                for n in range(k)
            ],
            columns=["identity", "split", "name"],
        )

    def rows(self, split, identity=None):
        t = self.table[self.table["split"] == split]
        return t if identity is None else t[t["identity"] == identity]

    def chips(self, split):
        rows = self.rows(split)
        y = torch.tensor([self.identities.index(i) for i in rows["identity"]])
        x = (y * 100).view(-1, 1, 1, 1).expand(-1, 3, 8, 8).to(torch.uint8).contiguous()
        return x, y

    def identity_chips(self, split, identity):
        x, y = self.chips(split)
        return x[y == self.identities.index(identity)]


class RedShift:
    """A toy untargeted cloak: the red channel pushed to 255."""

    targeted = False

    def __call__(self, x, extractors, x_target=None):
        x = x.clone()
        x[:, 0] = 255
        return x


def test_hand_made_attack_succeeds_and_spares_the_others(tmp_path):
    ev = Evaluation(Faces(), Red(), {"none": lambda c: c}, ["linear", "nn"])
    results = evaluate(ev, {"toy": RedShift()}, ["a"], tmp_path, [Red()], "cpu")
    by = results.set_index(["attack", "model"])
    # natural: everyone right; cloaked: user a's training chips sit at red 255 (beyond c), so its
    # natural test chips (red 0) are nearest to b; b and c stay right
    assert by.loc[("natural", "nn"), "asr"] == 0 and by.loc[("natural", "nn"), "normal_accuracy"] == 1
    assert by.loc[("toy", "nn"), "asr"] == 1 and by.loc[("toy", "nn"), "normal_accuracy"] == 1
    assert set(results["user_test"]) == {2} and set(results["other_test"]) == {4}
    assert (tmp_path / "toy" / "a" / "atrain0.png").is_file()
    table = summary_table(results)
    assert "| toy | nn | 100.0 / 100.0 |" in table and "| natural | nn | 0.0 / 100.0 |" in table


def test_users_that_cannot_be_evaluated_are_named():
    faces = Faces()
    with pytest.raises(UserError, match="'zed' is not an identity"):
        check_users(faces, ["zed"])
    faces.table = faces.table[~((faces.table["identity"] == "a") & (faces.table["split"] == "test"))]
    with pytest.raises(UserError, match="'a' has no test images"):
        check_users(faces, ["a"])
    with pytest.raises(UserError, match="no users"):
        check_users(faces, [])


def test_defenses_keep_shape_and_dtype_and_bit_depth_is_exact():
    chips = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8)
    for fn in (jpeg, median_filter):
        out = fn(chips)
        assert out.shape == chips.shape and out.dtype == torch.uint8
    assert bit_depth(torch.tensor([0, 15, 16, 255], dtype=torch.uint8), bits=4).tolist() == [8, 8, 24, 248]
    built = build_defenses({"none": {"kind": "none"}, "p": {"kind": "purifier", "ckpt": None},
                            "blur": {"kind": "blur", "sigma": 1.0, "kernel": 3}}, load_purifier=None)  # fmt: skip
    assert set(built) == {"none", "blur"} and built["none"](chips) is chips
    with pytest.raises(UserError, match="unknown kind 'sharpen'"):
        build_defenses({"s": {"kind": "sharpen"}}, load_purifier=None)


def test_purifier_sweep_scores_each_purifier_against_the_real_cloaks(tmp_path):
    ev = Evaluation(Faces(), Red(), {"none": lambda c: c}, ["linear", "nn"])
    undo_toy_cloak = lambda c: torch.where(c == 255, torch.zeros_like(c), c)  # noqa: E731
    rows = purifier_sweep(
        ev, "toy", RedShift(), ["a"], {1: lambda c: c, 2: undo_toy_cloak}, tmp_path, [Red()], "cpu"
    )
    by = rows.set_index("k_train")
    # k=1 leaves the cloak (user a's chips at red 255: misidentified); k=2 removes it
    assert by.loc[1.0, "asr"] == 1 and by.loc[2.0, "asr"] == 0
    assert set(rows["model"]) == {"linear"} and set(rows["normal_accuracy"]) == {1.0}
    assert ev.models == ["linear", "nn"] and set(ev.defenses) == {"none"}  # restored


def test_sweep_checkpoints_from_pattern_or_explicit_and_missing_named(tmp_path):
    for name in ("k1.ckpt", "k2.5.ckpt", "other.ckpt"):
        (tmp_path / name).write_bytes(b"x")
    got = sweep_checkpoints([1, 2.5, 4], str(tmp_path / "k{k}.ckpt"), {4: str(tmp_path / "other.ckpt")})
    assert got == {1.0: tmp_path / "k1.ckpt", 2.5: tmp_path / "k2.5.ckpt", 4.0: tmp_path / "other.ckpt"}
    # as the config gives them: an empty DictConfig of explicit checkpoints
    assert sweep_checkpoints([1], str(tmp_path / "k{k}.ckpt"), OmegaConf.create({})) == {
        1.0: tmp_path / "k1.ckpt"
    }
    with pytest.raises(UserError, match=r"k=6 .*k6\.ckpt.*k_range=\[6,6\]"):
        sweep_checkpoints([6], str(tmp_path / "k{k}.ckpt"))


def test_purifier_strip_has_a_column_per_purifier(tmp_path):
    natural = torch.zeros(2, 3, 8, 8, dtype=torch.uint8)
    strip = purifier_strip(natural, natural + 1, {"k=1": natural + 2, "k=2": natural + 3}, tmp_path / "s.png")
    img = read_image(strip)
    assert img.shape == (28 + 2 * 8, 4 * 8, 3)
    assert img[28, 8 * 3, 0] == 3 and img[28 + 8, 8 * 2, 0] == 2


class CountingE2E:
    """A stand-in end-to-end model (1-NN on the mean red value) that counts its fits."""

    fits = 0

    def fit(self, chips, labels, features=None):
        CountingE2E.fits += 1
        self.red, self.labels = chips.float()[:, 0].mean((1, 2)), torch.as_tensor(labels)
        return self

    def predict(self, chips):
        d = (chips.float()[:, 0].mean((1, 2))[:, None] - self.red[None]).abs()
        return self.labels[d.argmin(1)].numpy()


def test_e2e_natural_rows_are_fitted_once_for_all_users(tmp_path):
    CountingE2E.fits = 0
    ev = Evaluation(Faces(), Red(), {"none": lambda c: c}, ["e2e"], CountingE2E, ["none"])
    results = evaluate(ev, {"toy": RedShift()}, ["a", "b"], tmp_path, [Red()], "cpu")
    # natural: one fit shared by users a and b; toy: one fit per user
    assert CountingE2E.fits == 3
    by = results.set_index(["attack", "user"])
    assert by.loc[("natural", "a"), "asr"] == 0 and by.loc[("natural", "b"), "asr"] == 0
    assert by.loc[("toy", "a"), "asr"] == 1
