"""From a composed ``conf/preprocess.yaml`` to a finished clip store (the pipeline behind
scripts/preprocess.py). ``data`` there is the data config (``data.store``: where the store goes)
merged with its ``conf/preprocess/<name>.yaml`` (``raw_dir``, ``adapter``, ``sampling``)."""

from __future__ import annotations

import logging

from omegaconf import DictConfig, OmegaConf

from dfdetect.preprocess.adapters import AdapterError, scan
from dfdetect.preprocess.runner import RunSummary, run_preprocess
from dfdetect.preprocess.settings import ClipSettings

log = logging.getLogger(__name__)


def settings_from_config(cfg: DictConfig) -> ClipSettings:
    values = {**OmegaConf.to_container(cfg.data.get("sampling") or {}), **OmegaConf.to_container(cfg.face)}
    return ClipSettings.from_mapping(values)


def preprocess_from_config(cfg: DictConfig) -> RunSummary:
    data = cfg.data
    for key in ("raw_dir", "store", "adapter"):
        if data.get(key) is None:
            raise AdapterError(f"data.{key} is not set: this data config cannot be preprocessed without it")
    adapter = OmegaConf.to_container(data.adapter, resolve=True)
    name = adapter.pop("name")
    items = scan(name, str(data.raw_dir), **adapter)
    log.info("adapter %s found %d source files in %s", name, len(items), data.raw_dir)
    return run_preprocess(
        items,
        store_dir=str(data.store),
        settings=settings_from_config(cfg),
        detector=OmegaConf.to_container(cfg.detector, resolve=True),
        workers=int(cfg.workers),
        threads_per_worker=int(cfg.threads_per_worker),
        retry_failed=bool(cfg.retry_failed),
        overwrite=bool(cfg.overwrite),
        progress=bool(cfg.progress),
    )
