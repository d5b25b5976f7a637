"""After-defense rescoring inside ``evaluate.py``: cached API attack results + this run's
predictions -> attack_after_defense.csv, table2.{md,csv,tex} and a Fig. 4-style chart in the run dir.

What the figures rest on is said in the log and in table2.md: how many attack images joined a
detector score (counts and a few example keys; every unjoined key in ``rescore_unjoined_keys.txt``),
which per-image figures have no detector score at all, and the dataset the formula's accuracy was
measured on, with a warning when it is not the attacked dataset."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig

from dfdetect.measure.cache import ApiCache
from dfdetect.table2.from_cache import attack_records_from_cache
from dfdetect.table2.metrics import JoinReport, after_defense, compute_attack_metrics
from dfdetect.table2.plots import plot_attack_metrics
from dfdetect.table2.table2 import NO_SCORES, accuracy_elsewhere, table2_row, write_table2
from dfdetect.table2.tariq2022 import read_tariq2022
from dfdetect.utils.io import atomic_path

log = logging.getLogger(__name__)


def load_attack_records(source: DictConfig) -> pd.DataFrame:
    """One ``rescore.sources`` entry: ``{tariq2022: csv, provider, dataset}`` or ``{cache: sqlite, provider, dataset}``."""
    if source.get("tariq2022"):
        records, report = read_tariq2022(source.tariq2022, source.provider, source.dataset)
    elif source.get("cache"):
        records, report = attack_records_from_cache(ApiCache(source.cache), source.provider, source.dataset)
    else:
        raise ValueError(f"rescore source needs 'tariq2022' or 'cache': {dict(source)}")
    log.info("attack records from %s: %s", source.get("tariq2022") or source.get("cache"), report.summary())
    return records


UNJOINED_KEYS = "rescore_unjoined_keys.txt"


def scored_datasets(predictions: pd.DataFrame, fallback: str | None = None) -> str:
    """The dataset(s) the detector was scored on (its accuracy's data), comma-separated."""
    if "dataset" in predictions.columns and len(predictions):
        return ", ".join(str(d) for d in dict.fromkeys(predictions["dataset"]))
    return fallback or "the scored data"


def _report_join(report: JoinReport, run_dir: Path, outputs: dict, notes: list[str]) -> None:
    """Counts and a few keys in the log; every unjoined key in a file of the run dir."""
    if not report.missing_keys:
        log.info("joined attack records to predictions: %s", report.summary())
        return
    path = run_dir / UNJOINED_KEYS
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(report.missing_keys) + "\n", encoding="utf-8")
    outputs["unjoined_keys"] = path
    log.warning("joined attack records to predictions: %s; all unjoined keys: %s", report.summary(), path)
    notes.append(
        f"{report.n_unjoined} of {report.n_records} attack images have no detector prediction"
        f" (keys in {UNJOINED_KEYS}); per-image figures are over the joined images only."
    )


def _warn_unscored_and_elsewhere(after: pd.DataFrame, scored_on: str, split: str | None) -> None:
    where = f"{scored_on} ({split} split)" if split else scored_on
    if len(after):
        log.info("formula figures before x (1 - acc) use the accuracy measured on %s", where)
    for _, row in after.iterrows():
        name = f"{row['provider']}/{row['dataset']}"
        if int(row["n_joined"]) == 0:
            log.warning(
                "%s: per-image figures: %s (0 of %d joined; the detector scored %s)",
                name,
                NO_SCORES,
                row["n_fake"],
                where,
            )
        if accuracy_elsewhere(row["dataset"], scored_on):
            log.warning(
                "%s: the formula figure before x (1 - acc) uses the accuracy %.1f %% measured on %s, not on"
                " %s: it does not measure this defense on %s",
                name,
                100 * row["accuracy"],
                where,
                row["dataset"],
                row["dataset"],
            )


def write_rescore_report(
    cfg: DictConfig,
    predictions: pd.DataFrame,
    accuracy: float,
    defense: str,
    run_dir: Path,
    scored_on: str | None = None,
    split: str | None = None,
) -> dict[str, Path]:
    """``scored_on``: the dataset(s) the detector was scored on (default: the predictions'
    ``dataset`` column), ``split`` its split; both are named with the accuracy."""
    opts = cfg.rescore
    records = pd.concat([load_attack_records(s) for s in opts.sources], ignore_index=True)
    after, report = after_defense(
        records,
        predictions=predictions,
        accuracy=accuracy,
        threshold=opts.threshold,
        strict=opts.strict_join,
        beta=opts.beta,
        gamma=opts.gamma,
    )
    scored_on = scored_on or scored_datasets(predictions)
    outputs, notes = {}, []
    if report is not None:
        _report_join(report, run_dir, outputs, notes)
    _warn_unscored_and_elsewhere(after, scored_on, split)
    after.insert(after.columns.get_loc("accuracy") + 1, "accuracy_on", scored_on)
    with atomic_path(run_dir / "attack_after_defense.csv") as tmp:
        after.to_csv(tmp, index=False)
    outputs["after"] = run_dir / "attack_after_defense.csv"
    rows = []
    for dataset in dict.fromkeys(after["dataset"]):
        for label, mode in (("per image", "per_image"), ("before x (1-acc)", "formula")):
            rows.append(table2_row(dataset, f"{defense} ({label})", after, mode=mode, accuracy_on=scored_on))
    outputs.update(write_table2(rows, run_dir, notes))
    metrics = compute_attack_metrics(records, beta=opts.beta, gamma=opts.gamma)
    outputs["fig4"] = plot_attack_metrics(metrics, run_dir / "fig4_attack_metrics.png")
    return outputs
