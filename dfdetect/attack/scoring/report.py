"""After-defense rescoring inside ``evaluate.py``: cached API attack results + this run's
predictions -> attack_metrics.csv, table2.{md,csv,tex} and a Fig. 4-style chart in the run dir."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig

from dfdetect.attack.cache import ApiCache
from dfdetect.attack.from_cache import attack_records_from_cache
from dfdetect.attack.scoring.metrics import after_defense, compute_attack_metrics
from dfdetect.attack.scoring.plots import plot_attack_metrics
from dfdetect.attack.scoring.table2 import table2_row, write_table2
from dfdetect.attack.tariq2022 import read_tariq2022
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
    log.info("attack records from %s: %s", source.get("tariq2022") or source.get("cache"), report)
    return records


def write_rescore_report(
    cfg: DictConfig, predictions: pd.DataFrame, accuracy: float, defense: str, run_dir: Path
) -> dict[str, Path]:
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
    if report is not None:
        log.info("joined attack records to predictions: %s", report)
    outputs = {}
    with atomic_path(run_dir / "attack_after_defense.csv") as tmp:
        after.to_csv(tmp, index=False)
    outputs["after"] = run_dir / "attack_after_defense.csv"
    rows = []
    for dataset in dict.fromkeys(after["dataset"]):
        rows.append(table2_row(dataset, f"{defense} (per image)", after, mode="per_image"))
        rows.append(table2_row(dataset, f"{defense} (before x (1-acc))", after, mode="formula"))
    outputs.update(write_table2(rows, run_dir))
    metrics = compute_attack_metrics(records, beta=opts.beta, gamma=opts.gamma)
    outputs["fig4"] = plot_attack_metrics(metrics, run_dir / "fig4_attack_metrics.png")
    return outputs
