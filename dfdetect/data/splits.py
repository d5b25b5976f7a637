"""Leak-free splits: every clip of a group lands in one split.

A group links a real video with every fake made from it or from its identities (FaceForensics++
fake ``A_B`` shares a group with originals ``A`` and ``B``). ``link_groups`` derives such groups
from identity columns; ``assign_grouped_splits`` distributes whole groups over train/val/test.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from dfdetect.data.manifest import SPLITS


class SplitLeakError(ValueError):
    pass


def link_groups(
    df: pd.DataFrame, columns: Sequence[str] = ("group", "identity", "source_identity")
) -> pd.Series:
    """Connected components over rows that share a value in any of ``columns`` (union-find)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(keys: Iterable[str]) -> None:
        keys = list(keys)
        root = find(keys[0])
        for k in keys[1:]:
            parent[find(k)] = root

    row_keys = [
        [f"{c}={v}" for c in columns if isinstance(v := row[c], str) and v != ""] or [f"row={i}"]
        for i, row in df[list(columns)].iterrows()
    ]
    for keys in row_keys:
        union(keys)
    roots = [find(keys[0]) for keys in row_keys]
    names = {r: f"g{n:05d}" for n, r in enumerate(dict.fromkeys(sorted(set(roots))))}
    return pd.Series([names[r] for r in roots], index=df.index, name="group")


def check_no_group_leak(df: pd.DataFrame, column: str = "group") -> None:
    spread = df.groupby(column)["split"].nunique()
    leaked = spread[spread > 1]
    if len(leaked):
        g = leaked.index[0]
        where = sorted(df.loc[df[column] == g, "split"].unique())
        raise SplitLeakError(f"{len(leaked)} group(s) cross splits, e.g. {column}={g!r} in {where}")


def assign_grouped_splits(
    df: pd.DataFrame, fractions: Sequence[float] = (0.7, 0.15, 0.15), seed: int = 0, column: str = "group"
) -> pd.Series:
    """Return a split per row. Rows with a split already keep it; a group that has one keeps it
    for all its rows; the remaining groups are shuffled (seeded) and each is given to the split
    furthest below its share of clips."""
    if len(fractions) != len(SPLITS) or any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise ValueError(f"split fractions must be three non-negative numbers, got {list(fractions)}")
    split = df["split"].fillna("").astype(str).copy()
    preset = df.loc[split != ""].groupby(column)["split"].unique()
    conflicting = preset[preset.map(len) > 1]
    if len(conflicting):
        g = conflicting.index[0]
        raise SplitLeakError(f"group {g!r} is preset to several splits {sorted(conflicting.iloc[0])}")
    assigned = {g: values[0] for g, values in preset.items()}
    split = df[column].map(assigned).fillna(split)

    share = np.asarray(fractions, dtype=float) / sum(fractions)
    counts = {s: int((split == s).sum()) for s in SPLITS}
    open_sizes = df.loc[split == "", column].value_counts().sort_index()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(open_sizes))
    total = len(df)
    for i in order:
        g, size = open_sizes.index[i], int(open_sizes.iloc[i])
        deficits = [share[k] * total - counts[s] if share[k] > 0 else -np.inf for k, s in enumerate(SPLITS)]
        target = SPLITS[int(np.argmax(deficits))]
        assigned[g] = target
        counts[target] += size
    return df[column].map(assigned).fillna(split).rename("split")
