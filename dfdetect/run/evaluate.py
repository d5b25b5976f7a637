"""Evaluation: score a checkpoint on one split of a dataset -> metrics.json, predictions.parquet."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import pandas as pd
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

from dfdetect.attack.scoring.report import write_rescore_report
from dfdetect.data.manifest import SPLITS
from dfdetect.models.detector_module import DetectorModule
from dfdetect.run.common import (
    announce_run_dir,
    apply_process_settings,
    output_dir,
    save_composed_config,
    scalar_metrics,
    write_metrics,
    write_predictions,
)
from dfdetect.utils.config import instantiate_group

log = logging.getLogger(__name__)


def load_detector(ckpt_path: str | Path, model_cfg: DictConfig | None = None) -> DetectorModule:
    """Rebuild a detector from a checkpoint, using the model config stored in it unless given."""
    ckpt_path = Path(ckpt_path)
    if not ckpt_path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {ckpt_path}")
    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    if model_cfg is None:
        stored = checkpoint.get("dfdetect_model_config")
        if stored is None:
            raise ValueError(f"{ckpt_path} holds no model config; pass model=<name> matching the checkpoint")
        model_cfg = OmegaConf.create(stored)
    model: DetectorModule = hydra.utils.instantiate(model_cfg)
    model.load_state_dict(checkpoint["state_dict"])
    model.model_config = OmegaConf.to_container(model_cfg, resolve=True)
    return model


def scored_model(cfg: DictConfig) -> DetectorModule:
    """A checkpoint (``ckpt_path=``), or a defense ensemble (``ensemble=``) built from members."""
    ensemble = cfg.get("ensemble")
    if ensemble is not None:
        from dfdetect.ensemble import needs_fitting

        if cfg.get("ckpt_path"):
            return load_detector(cfg.ckpt_path, ensemble)
        if needs_fitting(ensemble.kind):
            raise ValueError(
                f"{ensemble.kind} must be fitted first (python train.py ensemble={ensemble.kind} ...); "
                "then pass its checkpoint as ckpt_path"
            )
        model = hydra.utils.instantiate(ensemble)
        model.model_config = OmegaConf.to_container(ensemble, resolve=True)
        return model
    if cfg.get("ckpt_path"):
        return load_detector(cfg.ckpt_path, cfg.get("model"))
    if cfg.get("model") is not None:
        # a model as configured, e.g. with published weights: model.net.weights=<file>
        model = hydra.utils.instantiate(cfg.model)
        model.model_config = OmegaConf.to_container(cfg.model, resolve=True)
        return model
    raise ValueError(
        "nothing to evaluate: pass ckpt_path=<checkpoint>, model=<name> (with its weights) "
        "or ensemble=<dd1|dd2|dd3>"
    )


def defense_name(cfg: DictConfig) -> str:
    if cfg.get("ensemble"):
        return cfg.ensemble.kind.upper()
    return Path(cfg.ckpt_path).stem if cfg.get("ckpt_path") else "detector"


def evaluate(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    if cfg.split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {cfg.split!r}")
    run_dir = output_dir(cfg)
    save_composed_config(cfg, run_dir)
    apply_process_settings(cfg)
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True)
    model = scored_model(cfg)
    datamodule = hydra.utils.instantiate(cfg.data)
    loggers = instantiate_group(cfg.get("logger"), "logger")
    trainer: pl.Trainer = hydra.utils.instantiate(cfg.trainer, logger=loggers or False, callbacks=[])

    datamodule.prepare_data()
    datamodule.setup("test")
    # score the requested split through the test loop, so its metrics are logged as test/*
    loader = datamodule.dataloader(cfg.split)
    trainer.test(model=model, dataloaders=loader, verbose=False)
    metrics: dict[str, Any] = scalar_metrics(trainer, ("test/",))
    metrics["split"] = cfg.split
    metrics["ckpt_path"] = str(cfg.ckpt_path) if cfg.get("ckpt_path") else None
    if cfg.get("ensemble"):
        metrics["ensemble"] = {"kind": cfg.ensemble.kind, "members": list(cfg.ensemble.members)}
    if trainer.is_global_zero:
        predictions_path = write_predictions(run_dir, model.predictions["test"], datamodule, cfg.split)
        if cfg.get("rescore") and cfg.rescore.get("sources"):
            defense = cfg.rescore.get("defense_name") or defense_name(cfg)
            accuracy = metrics.get("test/acc")
            write_rescore_report(cfg, pd.read_parquet(predictions_path), accuracy, defense, run_dir)
        write_metrics(run_dir, metrics)
        announce_run_dir(run_dir)
    return metrics, {"model": model, "datamodule": datamodule, "trainer": trainer, "run_dir": run_dir}
