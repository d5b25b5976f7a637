"""Whether the splits a run needs are usable, and a message that says how to mend them when not.

A split with no clips cannot be read; a split with one class gives no AUC (NaN), so training on it
learns nothing, checkpoint selection on it has nothing to select on, and its test report is empty.
Small datasets get there easily: with each file its own group, 6 videos split 0.7/0.15/0.15 leave
one video in validation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import pandas as pd

from dfdetect.data.manifest import SPLITS
from dfdetect.utils.errors import UserError

# why each split needs both classes, for the message
NEEDS = {
    "train": "training needs real and fake clips",
    "val": "validation AUC (checkpoint selection, early stopping) needs real and fake clips",
    "test": "test AUC needs real and fake clips (or run with test=false)",
}
SEEDS_TRIED = 100
# tried after the configured shares when no seed makes those work
EVEN_SHARES = (0.34, 0.33, 0.33)


class SplitError(UserError, ValueError):
    """A split a run needs is empty or holds one class only."""


def split_counts(df: pd.DataFrame, column: str = "group") -> dict[str, dict[str, int]]:
    """Per split: clips, real, fake and groups."""
    out = {}
    for split in SPLITS:
        part = df[df["split"] == split]
        fake = int(part["label"].sum())
        out[split] = {
            "clips": len(part),
            "real": len(part) - fake,
            "fake": fake,
            "groups": part[column].nunique(),
        }
    return out


def problem(counts: Mapping[str, int], both_classes: bool) -> str | None:
    if counts["clips"] == 0:
        return "is empty"
    if both_classes and counts["fake"] == 0:
        return "has no fake clips"
    if both_classes and counts["real"] == 0:
        return "has no real clips"
    return None


def unusable(df: pd.DataFrame, needed: Sequence[str], both_classes: bool, column: str = "group") -> dict:
    counts = split_counts(df, column)
    return {s: p for s in needed if (p := problem(counts[s], both_classes)) is not None}


def describe(counts: Mapping[str, Mapping[str, int]], names: Mapping[str, str] | None = None) -> str:
    names = names or {}
    return "; ".join(
        f"{names.get(s, s)} {c['clips']} clips ({c['real']} real, {c['fake']} fake, {c['groups']} group"
        + ("s)" if c["groups"] != 1 else ")")
        for s, c in counts.items()
    )


def working_seed(
    split: Callable[[int], pd.DataFrame], needed: Sequence[str], both_classes: bool, column: str, first: int
) -> int | None:
    """The first split seed from ``first`` on (``SEEDS_TRIED`` of them) whose splits are all usable."""
    for seed in range(first, first + SEEDS_TRIED):
        try:
            if not unusable(split(seed), needed, both_classes, column):
                return seed
        except ValueError:
            return None
    return None


def split_error(
    df: pd.DataFrame,
    needed: Sequence[str],
    both_classes: bool,
    where: str,
    fractions: Sequence[float],
    column: str = "group",
    fix: tuple[Sequence[float], int] | None = None,
    names: Mapping[str, str] | None = None,
    seed_key: str = "data.split_seed",
) -> SplitError:
    """The error for the first unusable split among ``needed`` (there must be one).
    ``fix``: split shares and a seed known to work, suggested in the message."""
    bad = unusable(df, needed, both_classes, column)
    names = names or {}
    split, what = next(iter(bad.items()))
    counts = split_counts(df, column)
    total_groups = df[column].nunique()
    why = NEEDS[split] if both_classes else "it is the split to score"
    fixes = []
    share = ",".join(f"{f:g}" for f in fractions)
    if fix is not None:
        shares, seed = fix
        other = (
            ""
            if tuple(shares) == tuple(fractions)
            else f"data.split_fractions=[{','.join(map(str, shares))}] "
        )
        fixes.append(f"{other}{seed_key}={seed} gives every split both classes")
    fixes.append(f"other split shares (data.split_fractions=[{share}] now)")
    fixes.append(
        "more data, or fewer and larger groups: clips of one group always share a split, and "
        f"this data has {total_groups} group(s) (a group is one identity or source video; "
        "docs/preprocessing.md, 'Adapters')"
    )
    return SplitError(
        f"the {names.get(split, split)} split of {where} {what} ({why}): "
        f"{describe(counts, names)}. Fix: {'; or '.join(fixes)}"
    )
