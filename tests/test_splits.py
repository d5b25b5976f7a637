"""Grouped splits: no group in two splits, presets respected, seeded, balanced sampling."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from dfdetect.data.datamodule import balanced_sampler
from dfdetect.data.splits import SplitLeakError, assign_grouped_splits, check_no_group_leak, link_groups


def random_manifest(n_groups: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 30, n_groups)
    return pd.DataFrame(
        {
            "group": np.repeat([f"g{i}" for i in range(n_groups)], sizes),
            "label": rng.integers(0, 2, sizes.sum()),
            "split": "",
        }
    )


@pytest.mark.parametrize("seed", range(5))
def test_no_group_crosses_splits_and_shares_are_close(seed):
    df = random_manifest(60, seed)
    df["split"] = assign_grouped_splits(df, (0.7, 0.15, 0.15), seed=seed)
    assert set(df["split"]) == {"train", "val", "test"}
    assert df.groupby("group")["split"].nunique().max() == 1
    check_no_group_leak(df)
    shares = df["split"].value_counts(normalize=True)
    assert abs(shares["train"] - 0.7) < 0.08
    assert abs(shares["val"] - 0.15) < 0.08


def test_split_is_reproducible_and_seed_dependent():
    df = random_manifest(40, 0)
    a = assign_grouped_splits(df, seed=1)
    b = assign_grouped_splits(df, seed=1)
    c = assign_grouped_splits(df, seed=2)
    assert a.equals(b)
    assert not a.equals(c)


def test_preset_splits_are_kept_and_spread_to_their_group():
    df = random_manifest(20, 3)
    df.loc[df["group"] == "g0", "split"] = "test"
    first_g1 = df.index[df["group"] == "g1"][0]
    df.loc[first_g1, "split"] = "val"  # one preset row pulls its whole group
    split = assign_grouped_splits(df, seed=0)
    assert (split[df["group"] == "g0"] == "test").all()
    assert (split[df["group"] == "g1"] == "val").all()


def test_group_preset_to_two_splits_is_a_leak():
    df = random_manifest(5, 0)
    rows = df.index[df["group"] == "g0"]
    if len(rows) < 2:
        df = pd.concat([df, df.loc[rows]], ignore_index=True)
        rows = df.index[df["group"] == "g0"]
    df.loc[rows[0], "split"], df.loc[rows[1], "split"] = "train", "test"
    with pytest.raises(SplitLeakError, match="g0"):
        assign_grouped_splits(df)
    with pytest.raises(SplitLeakError):
        check_no_group_leak(df)


def test_bad_fractions_are_rejected():
    with pytest.raises(ValueError, match="fractions"):
        assign_grouped_splits(random_manifest(5, 0), (0.5, 0.5))


def test_link_groups_joins_ffpp_style_pairs():
    # FF++: fake A_B (identity B in video of A) links originals A and B; C stays apart
    df = pd.DataFrame(
        {
            "group": ["", "", "", "", ""],
            "identity": ["A", "B", "B", "A", "C"],
            "source_identity": ["A", "B", "A", "B", "C"],
        }
    )
    groups = link_groups(df)
    assert groups.iloc[0] == groups.iloc[1] == groups.iloc[2] == groups.iloc[3]
    assert groups.iloc[4] != groups.iloc[0]


def test_balanced_sampler_draws_classes_equally_without_discarding():
    labels = torch.tensor([0] * 900 + [1] * 100)
    sampler = balanced_sampler(labels, seed=0)
    drawn = torch.tensor(list(iter(sampler)))
    assert len(drawn) == len(labels)
    fake_share = labels[drawn].float().mean().item()
    assert 0.45 < fake_share < 0.55
    again = torch.tensor(list(iter(balanced_sampler(labels, seed=0))))
    assert torch.equal(drawn, again)
