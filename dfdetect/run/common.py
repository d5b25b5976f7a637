"""Shared by the train and evaluate entry points: seeding, run dir outputs, metric export."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pandas as pd
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf

from dfdetect.data.datamodule import ClipDataModule
from dfdetect.evaluation.breakdown import metrics_by_dataset_and_method
from dfdetect.utils.io import atomic_path, write_json

log = logging.getLogger(__name__)


def output_dir(cfg: DictConfig) -> Path:
    path = Path(cfg.paths.output_dir)
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_composed_config(cfg: DictConfig, run_dir: Path) -> None:
    with atomic_path(run_dir / "config.yaml") as tmp:
        OmegaConf.save(cfg, tmp, resolve=False)
    if cfg.get("extras", {}).get("print_config"):
        print(OmegaConf.to_yaml(cfg))


def scalar_metrics(
    trainer: pl.Trainer, prefixes: tuple[str, ...] = ("val/", "test/")
) -> dict[str, float | None]:
    """Final logged metrics as JSON-able floats (NaN becomes null)."""
    out = {}
    for key, value in trainer.callback_metrics.items():
        if key.startswith(prefixes):
            v = float(value)
            out[key] = None if math.isnan(v) else v
    return out


def write_metrics(run_dir: Path, metrics: dict) -> Path:
    path = run_dir / "metrics.json"
    write_json(path, metrics)
    return path


def write_predictions(
    run_dir: Path, predictions: pd.DataFrame, datamodule: ClipDataModule, split: str
) -> Path:
    """``predictions.parquet``: clip_id, video_id, dataset, method, image_key, label, prob (one row
    per clip). ``image_key`` = ``<dataset>/<video_id>`` joins cached API results (a still image is a
    one-clip video). Beside it, ``metrics_by_method.csv``: detection metrics per dataset and
    per manipulation method, clip and video level."""
    frame = datamodule.split_frame(split)
    rows = frame.iloc[predictions["clip_index"].to_numpy()].reset_index(drop=True)
    out = pd.DataFrame(
        {
            "clip_id": rows["clip_id"],
            "video_id": rows["video_id"],
            "dataset": rows["dataset"],
            "method": rows["method"],
            "image_key": rows["dataset"] + "/" + rows["video_id"],
            "label": predictions["label"].to_numpy(),
            "prob": predictions["prob"].to_numpy(),
        }
    )
    if (out["label"].to_numpy() != rows["label"].to_numpy()).any():
        raise RuntimeError("prediction labels disagree with the manifest; clip indices are misaligned")
    path = run_dir / "predictions.parquet"
    with atomic_path(path) as tmp:
        out.to_parquet(tmp, index=False)
    with atomic_path(run_dir / "metrics_by_method.csv") as tmp:
        metrics_by_dataset_and_method(out).to_csv(tmp, index=False)
    return path


def announce_run_dir(run_dir: Path) -> None:
    print(f"run dir: {run_dir}", flush=True)
