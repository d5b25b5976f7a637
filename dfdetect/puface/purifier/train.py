"""``scripts/train_purifier.py``: the cloak pairs, the purifier module, callbacks, loggers and
trainer from the config; fit (resumable from ``ckpt_path``, read safely first); the best and last
checkpoints and the final losses."""

from __future__ import annotations

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

from dfdetect.models.lightning.checkpoint import check_resumable, trust_targets
from dfdetect.utils.config import instantiate_group


def build_purifier_module(purifier_cfg: DictConfig):
    module = hydra.utils.instantiate(purifier_cfg)
    module.model_config = OmegaConf.to_container(purifier_cfg, resolve=True)
    return module


def train_purifier(cfg: DictConfig) -> dict:
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True)
    trust_targets(cfg.get("trusted_targets"))
    if cfg.get("ckpt_path"):
        check_resumable(cfg.ckpt_path)
    pool = hydra.utils.instantiate(cfg.pool)
    pool.prepare()  # the defender's cloaks, before any model is built
    module = build_purifier_module(cfg.purifier)
    callbacks = instantiate_group(cfg.get("callbacks"), "callback")
    loggers = instantiate_group(cfg.get("logger"), "logger")
    trainer: pl.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    trainer.fit(module, datamodule=pool, ckpt_path=cfg.get("ckpt_path"), weights_only=True)
    best = next((cb.best_model_path for cb in trainer.checkpoint_callbacks if cb.monitor and cb.best_model_path), None)
    last = next((cb.last_model_path for cb in trainer.checkpoint_callbacks if cb.last_model_path), None)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    return {"best": best, "last": last, "metrics": metrics, "pairs": len(pool.prepare()[0])}
