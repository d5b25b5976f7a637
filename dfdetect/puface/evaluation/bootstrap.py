"""Means over protected users with percentile bootstrap intervals over users (issue #26): the user
is the unit of resampling, so the interval says how much the mean would move with other users."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def bootstrap_ci(
    values: Sequence[float], level: float = 0.95, n_boot: int = 10_000, seed: int = 0
) -> tuple[float, float, float]:
    """(mean, low, high): the mean of ``values`` and the percentile bootstrap interval of the mean."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        raise ValueError("no values to average")
    if v.size == 1:
        return float(v[0]), float(v[0]), float(v[0])
    idx = np.random.default_rng(seed).integers(0, v.size, size=(n_boot, v.size))
    means = v[idx].mean(1)
    tail = (1 - level) / 2
    return float(v.mean()), float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def summarise(results: pd.DataFrame, by: Sequence[str], metrics: Sequence[str] = ("asr", "normal_accuracy"),
              level: float = 0.95, n_boot: int = 10_000, seed: int = 0) -> pd.DataFrame:  # fmt: skip
    """One row per ``by`` group: ``users`` and per metric ``<m>``, ``<m>_low``, ``<m>_high``."""
    rows = []
    for key, part in results.groupby(list(by), sort=False):
        row = dict(zip(by, key if isinstance(key, tuple) else (key,), strict=True))
        row["users"] = int(part["user"].nunique()) if "user" in part else len(part)
        for m in metrics:
            row[m], row[f"{m}_low"], row[f"{m}_high"] = bootstrap_ci(part[m].to_numpy(), level, n_boot, seed)
        rows.append(row)
    return pd.DataFrame(rows)


def cell(row, metric: str) -> str:
    """``mean [low, high]`` in percent."""
    return f"{100 * row[metric]:.1f} [{100 * row[f'{metric}_low']:.1f}, {100 * row[f'{metric}_high']:.1f}]"
