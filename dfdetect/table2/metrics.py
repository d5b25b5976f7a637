"""Deepfake-impersonation attack metrics (paper §4.2.6–4.2.7) and their value after a defense (§6).

Input: attack records (``dfdetect.measure.records.ATTACK_COLUMNS``), one row per fake image X_D.
Per row, with names compared after normalisation and the alias table (β = 90, γ = 80):

- NA:  the API names X_D as any celebrity;
- TA:  NA and that name equals the API's name for the target's real image X_T;
- DHF: NA and conf(X_D) > conf(X_T) (an X_T with no answer counts as confidence 0);
- DHC: NA and conf(X_D) > β;
- DHS: not NA and Similarity(X_T, X_D) > γ (no similarity answer: False; NaN for a provider
  without a similarity API);
- SIC: share of distinct target identities with at least one TA success.

Rates are over all rows of a provider × dataset group (``shared/data/README.md``). The paper's
Fig. 4 divides some of them by a sub-population instead; ``fig4_convention`` gives those.

After a defense an attack succeeds only if the API is fooled AND the detector passes the image
as real (P(fake) < threshold). ``after_defense`` reports the paper's ``before × (1 − accuracy)``,
the exact per-image figure (attack records joined to detector predictions by image key) and the
false rejection rate on real images, which the paper does not report.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from dfdetect.data.manifest import store_image_key
from dfdetect.measure.names import AliasTable, default_aliases
from dfdetect.measure.records import AttackDataError, validate_attack_records
from dfdetect.measure.registry import get_provider

RATE_METRICS = ("TA", "NA", "DHF", "DHC", "DHS")
METRICS = (*RATE_METRICS, "SIC")
GROUP = ["provider", "dataset"]


def score_records(
    records: pd.DataFrame, beta: float = 90.0, gamma: float = 80.0, aliases: AliasTable | None = None
) -> pd.DataFrame:
    """The records with ``target_id`` (canonical identity) and one boolean column per rate metric."""
    aliases = aliases or default_aliases()
    df = validate_attack_records(records)
    fake = df["fake_name"].map(aliases.canonical)
    target_answer = df["target_name"].map(aliases.canonical)
    df["target_id"] = df["target"].map(aliases.canonical)
    df["NA"] = fake != ""
    df["TA"] = df["NA"] & (fake == target_answer)
    df["DHF"] = df["NA"] & (df["fake_conf"] > df["target_conf"].fillna(0.0))
    df["DHC"] = df["NA"] & (df["fake_conf"] > beta)
    df["DHS"] = ~df["NA"] & (df["similarity"] > gamma)
    df["sim_answered"] = df["similarity"].notna()
    return df


def _aggregate(scored: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (provider, dataset), g in scored.groupby(GROUP, sort=False):
        row = {
            "provider": provider,
            "dataset": dataset,
            "n_fake": len(g),
            "n_targets": g["target_id"].nunique(),
        }
        for m in RATE_METRICS:
            row[f"n_{m}"] = int(g[m].sum())
            row[m] = row[f"n_{m}"] / len(g)
        row["n_SIC"] = int(g.groupby("target_id")["TA"].any().sum())
        row["SIC"] = row["n_SIC"] / row["n_targets"]
        row["n_not_NA_sim_answered"] = int((~g["NA"] & g["sim_answered"]).sum())
        if not get_provider(provider).has_similarity:
            row["DHS"] = np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def compute_attack_metrics(
    records: pd.DataFrame, beta: float = 90.0, gamma: float = 80.0, aliases: AliasTable | None = None
) -> pd.DataFrame:
    """One row per provider × dataset: ``n_fake, n_targets``, the six metrics as fractions in [0, 1]
    (``TA, NA, DHF, DHC, DHS, SIC``) and the counts behind them (``n_TA`` …)."""
    return _aggregate(score_records(records, beta, gamma, aliases))


def fig4_convention(metrics: pd.DataFrame) -> pd.DataFrame:
    """The denominators the paper's Fig. 4 appears to use (see docs/attack_metrics.md):
    DHF and DHC over the images named as a celebrity (NA), DHS over the images not named whose
    similarity call answered. TA, NA and SIC are unchanged."""
    out = metrics[GROUP + ["TA", "NA", "SIC"]].copy()
    out["DHF"] = metrics["n_DHF"] / metrics["n_NA"].replace(0, np.nan)
    out["DHC"] = metrics["n_DHC"] / metrics["n_NA"].replace(0, np.nan)
    out["DHS"] = metrics["n_DHS"] / metrics["n_not_NA_sim_answered"].replace(0, np.nan)
    out.loc[metrics["DHS"].isna(), "DHS"] = np.nan
    return out[GROUP + list(METRICS)]


def bootstrap_ci(
    records: pd.DataFrame,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    beta: float = 90.0,
    gamma: float = 80.0,
    aliases: AliasTable | None = None,
) -> pd.DataFrame:
    """Percentile confidence intervals clustered by target celebrity: each replicate draws the
    group's target identities with replacement (all images of a drawn identity come along).
    Long format: ``provider, dataset, metric, estimate, lo, hi``."""
    scored = score_records(records, beta, gamma, aliases)
    point = _aggregate(scored).set_index(GROUP)
    rng = np.random.default_rng(seed)
    alpha = (1.0 - level) / 2.0
    rows = []
    for (provider, dataset), g in scored.groupby(GROUP, sort=False):
        per_target = g.groupby("target_id")[list(RATE_METRICS)].sum()
        n_images = g.groupby("target_id").size().to_numpy(float)
        any_ta = g.groupby("target_id")["TA"].any().to_numpy(float)
        n_clusters = len(per_target)
        weights = rng.multinomial(n_clusters, np.full(n_clusters, 1.0 / n_clusters), size=n_boot).astype(
            float
        )
        replicates = {m: weights @ per_target[m].to_numpy(float) / (weights @ n_images) for m in RATE_METRICS}
        replicates["SIC"] = weights @ any_ta / n_clusters
        for m in METRICS:
            estimate = point.loc[(provider, dataset), m]
            lo, hi = (
                (np.nan, np.nan) if np.isnan(estimate) else np.quantile(replicates[m], [alpha, 1 - alpha])
            )
            rows.append(
                {
                    "provider": provider,
                    "dataset": dataset,
                    "metric": m,
                    "estimate": estimate,
                    "lo": lo,
                    "hi": hi,
                }
            )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------- after defense
# attack image keys named in a message or log line; the full list goes to a file (write_keys)
EXAMPLE_KEYS = 3


def example_keys(keys, n: int = EXAMPLE_KEYS) -> str:
    """``'k1', 'k2', 'k3' and 7075 more``: a few keys of a long list, for messages."""
    keys = list(keys)
    shown = ", ".join(repr(k) for k in keys[:n])
    return shown + (f" and {len(keys) - n} more" if len(keys) > n else "")


@dataclass(repr=False)
class JoinReport:
    """How the attack records joined the detector's predictions: counts overall and per
    ``(provider, dataset)`` (``by_group``: records, joined) and every missing key (``missing_keys``,
    kept out of the printed forms: ``summary()`` and ``repr`` show counts and a few examples)."""

    n_records: int
    n_joined: int
    n_unjoined: int
    missing_keys: list[str] = field(default_factory=list)
    by_group: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)

    def summary(self) -> str:
        text = f"{self.n_joined} of {self.n_records} attack images joined to detector predictions"
        if self.n_unjoined:
            text += (
                f"; {self.n_unjoined} without a prediction ({len(self.missing_keys)} distinct keys,"
                f" e.g. {example_keys(self.missing_keys)})"
            )
        if len(self.by_group) > 1 or self.n_unjoined:
            groups = [f"{p}/{d}: {j} of {n}" for (p, d), (n, j) in self.by_group.items()]
            text += " [" + "; ".join(groups) + "]"
        return text

    __str__ = __repr__ = summary


def prediction_keys(predictions: pd.DataFrame) -> pd.DataFrame:
    """One row per image key: ``image_key, label, prob``.

    The key is the ``image_key`` column when there is one, else ``video_id``: a still image is a
    clip store "video" of one clip (T = 1) whose ``video_id`` is the image key. Several clips of one
    key (a video) are averaged, as for video-level metrics. Predictions with ``dataset`` and
    ``clip_id`` columns also give every clip its own key ``<dataset>/<clip_id>`` (the keys of an
    attack run with several images per video).
    """
    key = "image_key" if "image_key" in predictions.columns else "video_id"
    missing = [c for c in (key, "label", "prob") if c not in predictions.columns]
    if missing:
        raise AttackDataError(
            f"predictions: missing columns {missing} (need image_key or video_id, label, prob)"
        )
    grouped = predictions.groupby(predictions[key].astype(str), sort=False)
    mixed = grouped["label"].nunique() > 1
    if mixed.any():
        raise AttackDataError(f"predictions: key {mixed[mixed].index[0]!r} has both real and fake rows")
    out = grouped.agg(label=("label", "first"), prob=("prob", "mean")).reset_index(names="image_key")
    if key == "image_key" and {"dataset", "clip_id"} <= set(predictions.columns):
        clip_keys = store_image_key(predictions["dataset"].astype(str), predictions["clip_id"].astype(str))
        clips = pd.DataFrame(
            {"image_key": clip_keys, "label": predictions["label"], "prob": predictions["prob"]}
        )
        clips = clips[~clips["image_key"].isin(out["image_key"])]
        out = pd.concat([out, clips.drop_duplicates("image_key")], ignore_index=True)
    out["label"] = out["label"].astype(int)
    return out


def join_predictions(
    records: pd.DataFrame, predictions: pd.DataFrame, strict: bool = False
) -> tuple[pd.DataFrame, JoinReport]:
    """Attach the detector's P(fake) to each attack record by image key (inner join).

    ``strict=True`` raises when any attack image has no prediction, naming the keys; otherwise the
    unjoined rows are left out and counted in the report. A joined image labelled real in the
    predictions is an error (the join key is wrong)."""
    keyed = prediction_keys(predictions)
    joined = records.merge(keyed, on="image_key", how="left", validate="many_to_one")
    missing = joined.loc[joined["prob"].isna(), "image_key"].drop_duplicates().tolist()
    by_group = {}
    if {"provider", "dataset"} <= set(joined.columns):
        counts = joined.groupby(["provider", "dataset"], sort=False)["prob"].agg(["size", "count"])
        by_group = {group: (int(n), int(j)) for group, (n, j) in counts.iterrows()}
    report = JoinReport(
        len(records), int(joined["prob"].notna().sum()), int(joined["prob"].isna().sum()), missing, by_group
    )
    if strict and missing:
        raise AttackDataError(
            f"{len(missing)} attack image key(s) have no detector prediction: {example_keys(missing, 5)}"
        )
    joined = joined[joined["prob"].notna()]
    real = joined[joined["label"] == 0]
    if len(real):
        raise AttackDataError(
            f"attack image {real['image_key'].iloc[0]!r} is labelled real in the predictions"
        )
    return joined.drop(columns=["label"]), report


def detector_accuracy(predictions: pd.DataFrame, threshold: float = 0.5) -> float:
    keyed = prediction_keys(predictions)
    return float(((keyed["prob"] >= threshold).astype(int) == keyed["label"]).mean())


def false_rejection_rate(predictions: pd.DataFrame, threshold: float = 0.5, keys=None) -> float:
    """Share of real images (label 0) the detector flags as fake, optionally among ``keys`` only."""
    keyed = prediction_keys(predictions)
    real = keyed[keyed["label"] == 0]
    if keys is not None:
        real = real[real["image_key"].isin(set(keys))]
    return float((real["prob"] >= threshold).mean()) if len(real) else float("nan")


def formula_after(before: float, accuracy: float) -> float:
    """The paper's Table 2 figure: ``before × (1 − accuracy)`` (fractions)."""
    return before * (1.0 - accuracy)


def after_defense(
    records: pd.DataFrame,
    predictions: pd.DataFrame | None = None,
    accuracy: float | None = None,
    threshold: float = 0.5,
    strict: bool = False,
    beta: float = 90.0,
    gamma: float = 80.0,
    aliases: AliasTable | None = None,
) -> tuple[pd.DataFrame, JoinReport | None]:
    """Per provider × dataset: ``<metric>_before``, ``<metric>_after_formula`` and, when
    ``predictions`` are given, ``<metric>_after_per_image`` for the six metrics (SIC has no formula
    figure), plus ``accuracy``, ``frr``, ``threshold``, ``n_fake``, ``n_joined``, ``n_passed``.

    ``accuracy`` (a fraction) defaults to the detector's accuracy over all ``predictions``.
    Per-image rates are over the joined images; with ``strict=False`` images without a
    prediction are left out and counted in the returned ``JoinReport``."""
    if predictions is None and accuracy is None:
        raise ValueError("after_defense needs detector predictions, an accuracy, or both")
    if accuracy is None:
        accuracy = detector_accuracy(predictions, threshold)
    if not 0.0 <= accuracy <= 1.0:
        raise ValueError(f"accuracy must be a fraction in [0, 1], got {accuracy} (a percentage?)")
    scored = score_records(records, beta, gamma, aliases)
    before = _aggregate(scored)
    out = before[GROUP + ["n_fake"]].copy()
    out["accuracy"] = accuracy
    out["threshold"] = threshold
    for m in METRICS:
        out[f"{m}_before"] = before[m]
        out[f"{m}_after_formula"] = formula_after(before[m], accuracy) if m != "SIC" else np.nan
    if predictions is None:
        return out, None

    joined, report = join_predictions(scored, predictions, strict=strict)
    passed = joined["prob"] < threshold
    defended = joined.assign(**{m: joined[m] & passed for m in RATE_METRICS})
    after = _aggregate(defended).set_index(GROUP) if len(defended) else pd.DataFrame()
    passed_by_group = passed.groupby([joined["provider"], joined["dataset"]]).sum()
    for i, row in out.iterrows():
        group = (row["provider"], row["dataset"])
        present = group in after.index
        for m in METRICS:
            out.loc[i, f"{m}_after_per_image"] = after.loc[group, m] if present else np.nan
        out.loc[i, "n_joined"] = after.loc[group, "n_fake"] if present else 0
        out.loc[i, "n_passed"] = passed_by_group.get(group, 0)
    out["frr"] = false_rejection_rate(predictions, threshold)
    out[["n_joined", "n_passed"]] = out[["n_joined", "n_passed"]].astype(int)
    return out, report
