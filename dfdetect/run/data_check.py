"""The data of a run, checked before any model is built: the store (or export) exists, and the
splits the run reads are usable. Fails in seconds, with the command or setting that mends it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from dfdetect.data.datamodule import ClipDataModule
from dfdetect.data.manifest import StoreNotFoundError
from dfdetect.ensemble import needs_fitting
from dfdetect.models.lightning.checkpoint import CheckpointNotFoundError
from dfdetect.utils.paths import CONF_DIR

log = logging.getLogger(__name__)


def training_splits(cfg: DictConfig, datamodule: ClipDataModule) -> list[str]:
    """The splits ``train.py`` reads: train (when it fits), val (selection, final validation) and
    test (``test=true``). A fitted ensemble (DD3) fits and selects on parts of val, as
    ``run.train.build_model`` sets up; the splits are made once, so that is set here first."""
    ensemble = cfg.get("ensemble")
    fit = bool(cfg.get("train", True)) and (not ensemble or needs_fitting(ensemble.kind))
    if ensemble and fit:
        datamodule.fit_on = "val"
    return [*(["train"] if fit else []), "val", *(["test"] if cfg.get("test", True) else [])]


def check_data(
    cfg: DictConfig, datamodule: ClipDataModule, splits: Sequence[str], both_classes: bool = True
) -> None:
    """Read the manifest and make the splits (as the trainer would, once), then stop with a
    ``UserError`` if the store is missing or one of ``splits`` is unusable. A ``ckpt_path`` that
    does not exist is named first: that costs nothing, while making a demo store takes seconds."""
    if cfg.get("ckpt_path") and not Path(cfg.ckpt_path).is_file():
        raise CheckpointNotFoundError(f"checkpoint not found: {cfg.ckpt_path}")
    try:
        datamodule.prepare_data()
        datamodule.setup()
    except StoreNotFoundError as err:
        if datamodule.format != "store":
            raise
        raise StoreNotFoundError(f"{err}: {preprocess_hint(cfg)}") from None
    datamodule.check_splits(splits, both_classes=both_classes)


def preprocess_hint(cfg: DictConfig) -> str:
    """The command that makes the configured store."""
    choice = config_choice("data")
    recipe = CONF_DIR / "preprocess" / f"{choice}.yaml" if choice else None
    if recipe is None or not recipe.is_file():
        return (
            "make one with python scripts/preprocess.py data=<name> (docs/preprocessing.md) "
            "and point data.store at it"
        )
    words = ["python scripts/preprocess.py", f"data={choice}"]
    raw_dir, note = default_raw_dir(cfg, recipe), ""
    if raw_dir is None or not Path(raw_dir).exists():
        words.append("data.raw_dir=<raw data>")
        note = f" (the default raw folder {raw_dir} does not exist)" if raw_dir else ""
    words += [o for o in task_overrides() if o.startswith("data.store=")]
    return "preprocess it first: " + " ".join(words) + note


def default_raw_dir(cfg: DictConfig, recipe: Path) -> str | None:
    """``raw_dir`` of a preprocessing config, resolved against this run's paths, or None."""
    try:
        node = OmegaConf.create(
            {"paths": OmegaConf.to_container(cfg.paths), "recipe": OmegaConf.load(recipe)}
        )
        value = node.recipe.get("raw_dir")
    except Exception:  # an interpolation this run cannot resolve: leave the folder unnamed
        return None
    return None if value is None else str(value)


def config_choice(group: str) -> str | None:
    if not HydraConfig.initialized():
        return None
    return HydraConfig.get().runtime.choices.get(group)


def task_overrides() -> list[str]:
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
