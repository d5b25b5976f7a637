"""From a composed ``dfdetect/conf/preprocess.yaml`` to a finished clip store (the pipeline behind
scripts/preprocess.py). ``data`` there is the data config (``data.store``: where the store goes)
merged with its ``dfdetect/conf/preprocess/<name>.yaml`` (``raw_dir``, ``adapter``, ``sampling``)."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from dfdetect.distributed.cluster import runner_options
from dfdetect.preprocess.adapters import AdapterError, scan
from dfdetect.preprocess.runner import RunSummary, run_preprocess
from dfdetect.preprocess.settings import ClipSettings
from dfdetect.utils.errors import UserError

log = logging.getLogger(__name__)


class RawDataError(UserError):
    """The raw data cannot be listed: a key not set, a folder that does not exist, a layout the
    adapter does not recognise (reported as one line by scripts/preprocess.py)."""


def settings_from_config(cfg: DictConfig) -> ClipSettings:
    values = {**OmegaConf.to_container(cfg.data.get("sampling") or {}), **OmegaConf.to_container(cfg.face)}
    return ClipSettings.from_mapping(values)


def _required(data: DictConfig, key: str):
    value = None if OmegaConf.is_missing(data, key) else data.get(key)
    if value is None:
        hint = f"data.{key}=<{'raw dataset folder' if key == 'raw_dir' else key}>"
        raise RawDataError(
            f"data.{key} is not set: this data config cannot be preprocessed without it ({hint})"
        )
    return value


def preprocess_from_config(cfg: DictConfig) -> RunSummary:
    data = cfg.data
    for key in ("raw_dir", "store", "adapter"):
        _required(data, key)
    raw_dir = str(data.raw_dir)
    if not Path(raw_dir).expanduser().exists():
        raise RawDataError(
            f"data.raw_dir: {raw_dir} does not exist; give the raw dataset's folder with data.raw_dir=<folder>"
        )
    adapter = OmegaConf.to_container(data.adapter, resolve=True)
    name = adapter.pop("name")
    try:
        items = scan(name, raw_dir, **adapter)
    except AdapterError as exc:  # the raw data is not what the adapter expects: the user's to mend
        raise RawDataError(str(exc)) from exc
    log.info("adapter %s found %d source files in %s", name, len(items), raw_dir)
    cap = cfg.get("max_image_pixels")
    ray_options = runner_options(cfg)
    dispatch = None
    if ray_options is not None:
        from dfdetect.distributed.preprocess import ray_dispatch

        dispatch = ray_dispatch(ray_options)
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
        max_image_pixels=None if cap is None else int(cap),
        dispatch=dispatch,
    )
