"""The purifier's pool on a hand-made case: several attacks, each cached in its own folder, one pair
per chip and attack, and the pairs of one chip on one side of the train/validation split."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from dfdetect.puface.purifier.pairs import CloakPairDataModule
from dfdetect.utils.errors import UserError


class Faces:
    """Identities a, b, c (chips of value 10, 20, 30 plus the chip's index), 4 training chips each."""

    identities = ["a", "b", "c"]

    def __init__(self):
        self.table = pd.DataFrame([(i, "train", f"{i}{n}.png") for i in self.identities for n in range(4)],
                                  columns=["identity", "split", "name"])  # fmt: skip

    def rows(self, split, identity=None):
        t = self.table[self.table["split"] == split]
        return t if identity is None else t[t["identity"] == identity]

    def identity_chips(self, split, identity):
        base = 10 * (self.identities.index(identity) + 1)
        return torch.stack([torch.full((3, 4, 4), base + n, dtype=torch.uint8) for n in range(4)])


class Shift:
    """An untargeted toy cloak: every pixel plus ``step``."""

    targeted = False

    def __init__(self, step: int):
        self.step = step

    def __call__(self, x, extractors, x_target=None):
        return x + self.step


def test_each_attack_has_its_own_folder_and_pairs_follow_the_chips(tmp_path):
    pool = CloakPairDataModule(Faces(), {"up1": Shift(1), "up5": Shift(5)}, str(tmp_path), exclude=["c"],
                               per_identity=3, val_fraction=0.5, extractors=(), device="cpu")  # fmt: skip
    natural, cloaked = pool.prepare()
    for attack in ("up1", "up5"):
        assert sorted(p.name for p in (tmp_path / attack).iterdir()) == ["a", "b"]
        assert len(list((tmp_path / attack / "a").glob("*.png"))) == 3
    # 2 identities x 3 chips x 2 attacks, attack-major; the cloak is the attack's shift exactly
    assert len(natural) == 12
    assert (cloaked[:6].int() - natural[:6].int()).unique().tolist() == [1]
    assert (cloaked[6:].int() - natural[6:].int()).unique().tolist() == [5]
    assert pool.chip_ids.tolist() == [0, 1, 2, 3, 4, 5] * 2
    pool.setup()
    val = {int(x[0, 0, 0]) for x, _ in pool.val_set}
    train = {int(x[0, 0, 0]) for x, _ in pool.train_set}
    assert len(pool.val_set) == 6 and len(pool.train_set) == 6  # 3 of 6 chips, both their pairs
    assert not val & train
    # a rerun reads the cached cloaks
    again = CloakPairDataModule(Faces(), {"up1": Shift(1), "up5": Shift(5)}, str(tmp_path), exclude=["c"],
                                per_identity=3, extractors=(), device="cpu")  # fmt: skip
    assert torch.equal(again.prepare()[1], cloaked)


def test_a_pool_without_attacks_is_refused(tmp_path):
    with pytest.raises(UserError, match="at least one attack"):
        CloakPairDataModule(Faces(), {}, str(tmp_path))
