"""Hydra helpers: resolvers, instantiation of callback/logger groups."""

from __future__ import annotations

import logging
import os

import hydra
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("dfdetect.relpath"):
        OmegaConf.register_new_resolver("dfdetect.relpath", lambda path, base: os.path.relpath(path, base))
    if not OmegaConf.has_resolver("dfdetect.or"):
        # the first value that is not null: ${dfdetect.or:${oc.select:data.net_input_size,null},240}
        OmegaConf.register_new_resolver(
            "dfdetect.or", lambda value, default: default if value is None else value
        )


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
