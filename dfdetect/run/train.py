"""Training: compose -> instantiate data, model, callbacks, loggers, trainer -> fit -> validate and
test the best checkpoint -> metrics.json in the run dir. Detectors train on a clip datamodule; any
other LightningModule with its datamodule (PuFace's purifier, ``experiment=puface``) trains the same
way, without the clip checks, the predictions and the test split."""

from __future__ import annotations

import logging
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

from dfdetect.data.datamodule import ClipDataModule
from dfdetect.ensemble import needs_fitting
from dfdetect.models.lightning.checkpoint import build_detector, build_module, check_resumable, trust_targets
from dfdetect.run.common import (
    PredictionsWriter,
    announce_run_dir,
    apply_process_settings,
    output_dir,
    save_composed_config,
    scalar_metrics,
    write_metrics,
)
from dfdetect.run.data_check import check_data, training_splits
from dfdetect.utils.config import instantiate_group

log = logging.getLogger(__name__)


def best_checkpoint(trainer: pl.Trainer) -> str | None:
    for cb in trainer.checkpoint_callbacks:
        if getattr(cb, "monitor", None) and cb.best_model_path:
            return cb.best_model_path
    return None


def build_model(cfg: DictConfig, datamodule) -> tuple[pl.LightningModule, bool]:
    """The detector (``model=``) or the defense ensemble (``ensemble=``), and whether to fit it.

    An ensemble is fitted on the validation split only (DD3); rule ensembles (DD1, DD2) are not
    fitted at all, only scored.
    """
    model_cfg = cfg.get("ensemble") or cfg.model
    if not isinstance(datamodule, ClipDataModule):
        return build_module(model_cfg), bool(cfg.get("train", True))
    model = build_detector(model_cfg)
    fit = bool(cfg.get("train", True))
    if cfg.get("ensemble"):
        fit = fit and needs_fitting(cfg.ensemble.kind)
        if fit:
            datamodule.fit_on = "val"
    return model, fit


def train(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run one training job; returns (metrics, objects)."""
    run_dir = output_dir(cfg)
    save_composed_config(cfg, run_dir)
    apply_process_settings(cfg)
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True)

    trust_targets(cfg.get("trusted_targets"))
    if cfg.get("ckpt_path"):
        check_resumable(cfg.ckpt_path)
    datamodule = hydra.utils.instantiate(cfg.data)
    clips = isinstance(datamodule, ClipDataModule)
    if clips:
        check_data(cfg, datamodule, training_splits(cfg, datamodule))  # before any model is built
    elif hasattr(datamodule, "prepare"):
        datamodule.prepare()  # e.g. the purifier's cloaks, made before any model is built
    model, fit = build_model(cfg, datamodule)
    callbacks = instantiate_group(cfg.get("callbacks"), "callback")
    if clips:
        callbacks.append(PredictionsWriter(run_dir, datamodule))
    loggers = instantiate_group(cfg.get("logger"), "logger")
    trainer: pl.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    hparams = {k: v for k, v in OmegaConf.to_container(cfg, resolve=False).items() if k != "hydra"}
    for lg in loggers:
        lg.log_hyperparams(OmegaConf.to_container(OmegaConf.create(hparams), resolve=True))

    if fit:
        trainer.fit(model=model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"), weights_only=True)
    # read before validate/test, which reset the callbacks' paths
    last = next((cb.last_model_path for cb in trainer.checkpoint_callbacks if cb.last_model_path), None)

    metrics: dict[str, Any] = {}
    ckpt = best_checkpoint(trainer)
    if fit and ckpt is None and not trainer.fast_dev_run:
        log.warning("no best checkpoint was saved; reporting the final weights")
    eval_ckpt = ckpt if ckpt else None
    trainer.validate(
        model=model, datamodule=datamodule, ckpt_path=eval_ckpt, verbose=False, weights_only=True
    )
    metrics.update(scalar_metrics(trainer, ("val/",)))
    if cfg.get("test", True) and clips:
        trainer.test(
            model=model, datamodule=datamodule, ckpt_path=eval_ckpt, verbose=False, weights_only=True
        )
        metrics.update(scalar_metrics(trainer, ("test/",)))
    metrics["best_checkpoint"] = ckpt
    metrics["global_step"] = int(trainer.global_step)
    metrics["epochs"] = int(trainer.current_epoch)
    if clips:
        metrics["skipped_clips"] = datamodule.skipped_clips()
    if last:
        metrics["last_checkpoint"] = last
    if trainer.is_global_zero:
        path = write_metrics(run_dir, metrics)
        log.info("metrics written to %s", path)
        announce_run_dir(run_dir)
    objects = {"cfg": cfg, "datamodule": datamodule, "model": model, "trainer": trainer, "run_dir": run_dir}
    return metrics, objects
