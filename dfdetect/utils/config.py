"""Hydra helpers: resolvers, instantiation of callback/logger groups, config printing."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("dfdetect.relpath"):
        OmegaConf.register_new_resolver("dfdetect.relpath", lambda path, base: os.path.relpath(path, base))


def instantiate_group(cfg: DictConfig | None, kind: str) -> list:
    """Instantiate every ``_target_`` entry of a callbacks/logger group config."""
    if not cfg:
        return []
    if not isinstance(cfg, DictConfig):
        raise TypeError(f"{kind} config must be a mapping of name -> {{_target_: ...}}")
    objects = []
    for name, conf in cfg.items():
        if isinstance(conf, DictConfig) and "_target_" in conf:
            log.info("instantiating %s %s <%s>", kind, name, conf._target_)
            objects.append(hydra.utils.instantiate(conf))
    return objects


def print_config(cfg: DictConfig, save_to: Path | None = None) -> None:
    """Print the composed config as YAML (resolved where possible) and save it."""
    text = OmegaConf.to_yaml(cfg, resolve=False)
    print(text)
    if save_to is not None:
        save_to.write_text(text)
