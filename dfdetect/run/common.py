"""Shared by the train and evaluate entry points: seeding, run dir outputs, metric export."""

from __future__ import annotations

import logging
import math
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytorch_lightning as pl
import torch
import torch.distributed as dist
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from pytorch_lightning.utilities.rank_zero import rank_zero_only

from dfdetect.data.datamodule import ClipDataModule
from dfdetect.data.manifest import store_image_key
from dfdetect.models.lightning.breakdown import metrics_by_dataset_and_method
from dfdetect.utils.host_memory import retain_freed_host_memory
from dfdetect.utils.io import atomic_path, write_json

log = logging.getLogger(__name__)


def output_dir(cfg: DictConfig) -> Path:
    path = Path(cfg.paths.output_dir)
    path.mkdir(parents=True, exist_ok=True)
    return path


def apply_process_settings(cfg: DictConfig) -> None:
    """Process-wide settings from ``extras``, made before any data or model is built."""
    if cfg.get("extras", {}).get("retain_freed_host_memory"):
        retain_freed_host_memory()


def save_composed_config(cfg: DictConfig, run_dir: Path) -> None:
    if rank_zero_only.rank != 0:  # every DDP process composes the same config; rank 0 writes it
        return
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


def as_logged(values: dict[str, float]) -> dict[str, float | None]:
    """Metrics computed outside a trainer, as :func:`scalar_metrics` reads them back from one
    (Lightning logs a Python float as a float32 tensor; NaN becomes null)."""
    out = {}
    for key, value in values.items():
        v = float(torch.tensor(value, dtype=torch.float32))
        out[key] = None if math.isnan(v) else v
    return out


def write_metrics(run_dir: Path, metrics: dict) -> Path:
    path = run_dir / "metrics.json"
    write_json(path, metrics)
    return path


def write_predictions(
    run_dir: Path,
    predictions: pd.DataFrame,
    datamodule: ClipDataModule,
    split: str,
    name: str = "predictions.parquet",
    by_method: bool = True,
) -> Path:
    """``name``: clip_id, video_id, dataset, method, image_key, label, prob (one row per clip).
    ``image_key`` = ``<dataset>/<video_id>`` joins cached API results (a still image is a one-clip
    video). With ``by_method``, beside it ``metrics_by_method.csv``: detection metrics per dataset
    and per manipulation method, clip and video level."""
    frame = datamodule.split_frame(split)
    rows = frame.iloc[predictions["clip_index"].to_numpy()].reset_index(drop=True)
    out = pd.DataFrame(
        {
            "clip_id": rows["clip_id"],
            "video_id": rows["video_id"],
            "dataset": rows["dataset"],
            "method": rows["method"],
            "image_key": store_image_key(rows["dataset"], rows["video_id"]),
            "label": predictions["label"].to_numpy(),
            "prob": predictions["prob"].to_numpy(),
        }
    )
    if (out["label"].to_numpy() != rows["label"].to_numpy()).any():
        raise RuntimeError("prediction labels disagree with the manifest; clip indices are misaligned")
    path = run_dir / name
    with atomic_path(path) as tmp:
        out.to_parquet(tmp, index=False)
    if not by_method:
        return path
    with atomic_path(run_dir / "metrics_by_method.csv") as tmp:
        metrics_by_dataset_and_method(out).to_csv(tmp, index=False)
    return path


VAL_PREDICTIONS = "val_predictions.parquet"


class PredictionsWriter(pl.Callback):
    """Writes ``predictions.parquet`` at the end of the test loop, on global rank 0, from the
    predictions the module gathered over all ranks. Run as a callback it works wherever the test loop
    runs, including the worker processes of ``ddp_spawn``, whose state never reaches the launcher.
    A ``trainer.validate`` call (not the validation inside ``fit``) also writes the validation
    split's as ``val_predictions.parquet``: what a defense fitted on validation reads
    (``scripts/zoo_table.py``)."""

    def __init__(self, run_dir: Path, datamodule: ClipDataModule, split: str = "test"):
        self.run_dir = run_dir
        self.datamodule = datamodule
        self.split = split
        self.path: Path | None = None

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        predictions = getattr(pl_module, "predictions", {}).get("test")
        if trainer.is_global_zero and predictions is not None:
            datamodule = trainer.datamodule or self.datamodule
            self.path = write_predictions(self.run_dir, predictions, datamodule, self.split)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        predictions = getattr(pl_module, "predictions", {}).get("val")
        if trainer.state.fn != "validate" or trainer.sanity_checking or predictions is None:
            return
        if trainer.is_global_zero:
            datamodule = trainer.datamodule or self.datamodule
            write_predictions(self.run_dir, predictions, datamodule, "val", VAL_PREDICTIONS, by_method=False)


# set by Lightning's ddp launcher in the launching process; a later sweep job must start clean
DDP_ENV_VARS = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


@contextmanager
def hydra_job_ddp_scope() -> Iterator[None]:
    """One Hydra job = one DDP world. Under ``-m`` the ranks Lightning relaunches rerun only this
    job (:func:`relaunch_this_sweep_job_only`); afterwards the process group is destroyed and the
    launcher's environment restored, so the next job of the sweep starts new ranks on a new port."""
    env = {key: os.environ.get(key) for key in DDP_ENV_VARS}
    relaunch_this_sweep_job_only()
    try:
        yield
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
        for key, value in env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def relaunch_this_sweep_job_only() -> None:
    """Under ``-m``, make Lightning's DDP relaunch rerun this one sweep job, in this job's run dir.

    Lightning's ``ddp`` starts local ranks 1..N-1 as ``python train.py <sys.argv[1:]>
    hydra.run.dir=<hydra.run.dir>``. In a multirun, ``sys.argv`` holds ``-m`` and every sweep value
    and ``hydra.run.dir`` is not the job's dir, so each rank would replay the whole sweep elsewhere.
    Here ``sys.argv`` becomes this job's own overrides and ``hydra.run.dir`` its output dir.
    """
    if not HydraConfig.initialized() or "LOCAL_RANK" in os.environ:
        return
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return
    sys.argv = [sys.argv[0], *hydra_cfg.overrides.task]
    with read_write(hydra_cfg), open_dict(hydra_cfg):
        hydra_cfg.run.dir = hydra_cfg.runtime.output_dir


def announce_run_dir(run_dir: Path) -> None:
    print(f"run dir: {run_dir}", flush=True)
