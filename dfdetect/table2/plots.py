"""Fig. 4-style grouped bar charts: the six attack metrics, one panel each, datasets on the x axis,
one bar per provider (in registry order, with its label and colour), values in percent rounded to
the nearest integer as in the paper."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from dfdetect.measure.registry import get_provider, provider_names
from dfdetect.table2.metrics import METRICS
from dfdetect.utils.io import atomic_path

PANEL_TITLES = {
    "TA": "(a) Targeted attack",
    "NA": "(b) Non-targeted attack",
    "DHF": "(c) DHF",
    "DHC": "(d) DHC",
    "DHS": "(e) DHS",
    "SIC": "(f) SIC",
}


def plot_attack_metrics(
    metrics: pd.DataFrame,
    out_path: str | os.PathLike,
    ci: pd.DataFrame | None = None,
    title: str | None = None,
) -> Path:
    """Write a PNG of ``metrics`` (``compute_attack_metrics`` output, fractions). ``ci`` (the long
    output of ``bootstrap_ci``) adds error bars. Missing provider × dataset cells stay empty; a
    metric that is unavailable (NaN, e.g. DHS for Naver) is marked "n/a"."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(metrics["dataset"]))
    providers = [p for p in provider_names() if p in set(metrics["provider"])]
    width = 0.8 / max(len(providers), 1)
    x = np.arange(len(datasets))
    fig, axes = plt.subplots(2, 3, figsize=(4.2 * 3, 3.4 * 2), sharey=True)
    indexed = metrics.set_index(["provider", "dataset"])
    bounds = ci.set_index(["provider", "dataset", "metric"]) if ci is not None else None
    for ax, metric in zip(axes.flat, METRICS, strict=True):
        for j, provider in enumerate(providers):
            pos = x - 0.4 + width * (j + 0.5)
            values = np.array([indexed[metric].get((provider, d), np.nan) * 100 for d in datasets])
            yerr, tops = None, np.nan_to_num(values)
            if bounds is not None:
                lo = np.array([bounds["lo"].get((provider, d, metric), np.nan) * 100 for d in datasets])
                hi = np.array([bounds["hi"].get((provider, d, metric), np.nan) * 100 for d in datasets])
                yerr = np.nan_to_num(np.vstack([values - lo, hi - values]))
                tops = np.fmax(tops, np.nan_to_num(hi))
            bars = ax.bar(
                pos,
                np.nan_to_num(values),
                width,
                yerr=yerr,
                capsize=2,
                label=get_provider(provider).label,
                color=get_provider(provider).colour,
            )
            for bar, v, top, d in zip(bars, values, tops, datasets, strict=True):
                present = (provider, d) in indexed.index
                text = f"{v:.0f}" if not np.isnan(v) else ("n/a" if present else "")
                ax.annotate(
                    text,
                    (bar.get_x() + bar.get_width() / 2, top),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                )
        ax.set_title(PANEL_TITLES[metric])
        ax.set_xticks(x, datasets, rotation=20, fontsize=8)
        ax.set_ylim(0, 110)
        ax.set_ylabel("%")
    axes.flat[0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return out_path
