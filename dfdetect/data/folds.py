"""Grouped k-fold cross-validation: every video tested once over the k folds, no group in two folds.

``assign_grouped_folds`` deals whole groups to ``k`` folds (seeded, largest groups first, each to
the fold whose real and fake clip counts stay lowest relative to the totals, so each fold gets
both classes where the groups allow). ``fold_splits`` makes fold ``i`` the test split and carves
the validation split from the training folds as the next fold, ``(i + 1) % k``: whole groups,
stratified like every fold, and the same for every run of fold i.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def assign_grouped_folds(df: pd.DataFrame, folds: int, seed: int = 0, column: str = "group") -> pd.Series:
    """Fold index (0 .. ``folds`` - 1) of every row; all rows of a group share it."""
    groups = df.groupby(column)["label"].agg(fake="sum", clips="size")
    groups["real"] = groups["clips"] - groups["fake"]
    if folds < 2:
        raise ValueError(f"data.folds must be at least 2, got {folds}")
    if folds > len(groups):
        raise ValueError(f"data.folds={folds} exceeds the {len(groups)} groups of this data; use fewer folds")
    totals = np.array([max(groups["real"].sum(), 1), max(groups["fake"].sum(), 1)], dtype=float)
    rng = np.random.default_rng(seed)
    # a seeded shuffle breaks ties among equal sizes; the largest groups are placed first
    order = rng.permutation(len(groups))
    order = order[np.argsort(-groups["clips"].to_numpy()[order], kind="stable")]
    load = np.zeros((folds, 2))
    assigned = {}
    for i in order:
        g = groups.index[i]
        counts = np.array([groups["real"].iloc[i], groups["fake"].iloc[i]], dtype=float)
        after = (load + counts) / totals
        # the fold where the heavier of its two class shares stays lowest; then the lighter one
        best = min(range(folds), key=lambda f: (after[f].max(), after[f].sum(), f))
        load[best] += counts
        assigned[g] = best
    return df[column].map(assigned).astype(int).rename("fold")


def fold_splits(
    df: pd.DataFrame, folds: int, fold: int, fold_seed: int = 0, column: str = "group"
) -> pd.Series:
    """train/val/test per row for fold ``fold``: test = that fold, val = the next fold
    (``(fold + 1) % folds``), train = the other ``folds - 2``. Preset splits in ``df`` are ignored:
    cross-validation tests every group once."""
    if folds < 3:
        raise ValueError(f"data.folds must be at least 3 (test, val and train folds), got {folds}")
    if not 0 <= fold < folds:
        raise ValueError(f"data.fold must be in 0..{folds - 1} for data.folds={folds}, got {fold}")
    index = assign_grouped_folds(df, folds, fold_seed, column)
    split = pd.Series("train", index=df.index, name="split")
    split[index == fold] = "test"
    split[index == (fold + 1) % folds] = "val"
    return split
