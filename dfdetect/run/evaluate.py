"""Evaluation: score a checkpoint on one split of a dataset -> metrics.json, predictions.parquet."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import hydra
import pandas as pd
import pytorch_lightning as pl
from omegaconf import DictConfig

from dfdetect.data.manifest import ALL, SPLITS
from dfdetect.distributed.cluster import ray_session, runner_options
from dfdetect.models.lightning import DetectorModule
from dfdetect.models.lightning.checkpoint import trust_targets
from dfdetect.predict.model import DetectorRequest, model_identity, scored_model
from dfdetect.run.common import (
    announce_run_dir,
    apply_process_settings,
    as_logged,
    output_dir,
    save_composed_config,
    scalar_metrics,
    write_metrics,
    write_predictions,
)
from dfdetect.run.data_check import check_data
from dfdetect.scoring.calibration import CALIBRATION_NAME, Calibration, CalibrationError, calibrate
from dfdetect.table2.report import write_rescore_report
from dfdetect.utils.config import instantiate_group

log = logging.getLogger(__name__)


def defense_name(cfg: DictConfig) -> str:
    if cfg.get("ensemble"):
        return cfg.ensemble.kind.upper()
    return Path(cfg.ckpt_path).stem if cfg.get("ckpt_path") else "detector"


def calibrate_on_split(
    cfg: DictConfig, score: Callable[[str], object], model: DetectorModule, datamodule
) -> Calibration | None:
    """Score the calibration split (``calibration.split``, the validation split by default) with
    ``score`` and fit the temperature and thresholds of ``calibration.json``; None, with a warning,
    when it cannot."""
    settings = cfg.get("calibration")
    if not settings or not settings.get("enabled", True):
        return None
    split = settings.get("split") or "val"
    if len(datamodule.split_frame(split)) == 0:
        log.warning("no calibration.json: the %s split is empty", split)
        return None
    if split != cfg.split:
        score(split)
    clips = model.predictions["test"]
    rows = datamodule.split_frame(split).iloc[clips["clip_index"].to_numpy()]
    clips = clips.assign(video_id=rows["video_id"].to_numpy())
    datasets = sorted(set(rows["dataset"]))
    try:
        return calibrate(clips, float(settings.get("target_frr", 0.01)), split, ", ".join(datasets))
    except CalibrationError as e:
        log.warning("no calibration.json: %s", e)
        return None


def trainer_scorer(
    trainer: pl.Trainer, model: DetectorModule, datamodule, logged: bool
) -> Callable[[str], dict]:
    """``score(split)`` through the trainer's test loop (its metrics are test/*, sent to the
    trainer's loggers when ``logged``): ``model.predictions["test"]`` and the metrics."""

    def score(split: str) -> dict:
        loggers = trainer.loggers
        if not logged:
            trainer.loggers = []
        try:
            trainer.test(model=model, dataloaders=datamodule.dataloader(split), verbose=False)
        finally:
            trainer.loggers = loggers
        return scalar_metrics(trainer, ("test/",))

    return score


def evaluate(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    if cfg.split not in (*SPLITS, ALL):
        raise ValueError(f"split must be one of {(*SPLITS, ALL)}, got {cfg.split!r}")
    run_dir = output_dir(cfg)
    save_composed_config(cfg, run_dir)
    apply_process_settings(cfg)
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True)
    trust_targets(cfg.get("trusted_targets"))
    datamodule = hydra.utils.instantiate(cfg.data)
    # before any model is built; split=all reads every clip, whatever the store's split fractions
    check_data(cfg, datamodule, [] if cfg.split == ALL else [cfg.split], both_classes=False)
    request = DetectorRequest.from_config(cfg)
    model = scored_model(request)
    loggers = instantiate_group(cfg.get("logger"), "logger")
    trainer: pl.Trainer = hydra.utils.instantiate(cfg.trainer, logger=loggers or False, callbacks=[])

    datamodule.prepare_data()
    datamodule.setup("test")
    ray_options = runner_options(cfg)
    with ExitStack() as stack:
        if ray_options is None:  # the test loop, so that the split's metrics are logged as test/*
            metrics: dict[str, Any] = trainer_scorer(trainer, model, datamodule, logged=True)(cfg.split)
            score_other = trainer_scorer(trainer, model, datamodule, logged=False)
        else:
            from dfdetect.distributed.evaluate import detector_config, ray_scorer

            ray = stack.enter_context(ray_session(ray_options))
            score_other = ray_scorer(ray, model, datamodule, ray_options, detector_config(cfg, ray_options))
            metrics = as_logged(score_other(cfg.split))
            for logger in trainer.loggers:
                logger.log_metrics({k: v for k, v in metrics.items() if v is not None})
                logger.finalize("success")
        scored = model.predictions["test"]
        calibration = calibrate_on_split(cfg, score_other, model, datamodule)
    if calibration is not None:  # predict.py refuses it for another model
        calibration = calibration.for_model(model_identity(request, model).as_dict())
    metrics["split"] = cfg.split
    metrics["skipped_clips"] = datamodule.skipped_clips()
    metrics["ckpt_path"] = str(cfg.ckpt_path) if cfg.get("ckpt_path") else None
    if cfg.get("ensemble"):
        metrics["ensemble"] = {"kind": cfg.ensemble.kind, "members": list(cfg.ensemble.members)}
    if trainer.is_global_zero:
        predictions_path = write_predictions(run_dir, scored, datamodule, cfg.split)
        if calibration is not None:
            calibration.write(run_dir / CALIBRATION_NAME)
            metrics["calibration"] = {
                k: calibration[k] for k in ("split", "threshold", "eer_threshold", "temperature")
            }
        if cfg.get("rescore") and cfg.rescore.get("sources"):
            defense = cfg.rescore.get("defense_name") or defense_name(cfg)
            accuracy = metrics.get("test/acc")
            predictions = pd.read_parquet(predictions_path)
            write_rescore_report(cfg, predictions, accuracy, defense, run_dir, split=cfg.split)
        write_metrics(run_dir, metrics)
        announce_run_dir(run_dir)
    return metrics, {"model": model, "datamodule": datamodule, "trainer": trainer, "run_dir": run_dir}
