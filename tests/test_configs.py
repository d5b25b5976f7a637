"""Every config group option composes and instantiates; bad options and keys fail clearly."""

from __future__ import annotations

import subprocess
import sys

import hydra
import pytest
import pytorch_lightning as pl
import torch
from hydra.errors import ConfigCompositionException
from omegaconf import open_dict

from dfdetect.data import ClipDataModule
from dfdetect.models.lightning import DetectorModule
from dfdetect.utils.config import instantiate_group
from tests.conftest import CONF_DIR, ROOT


def options(group: str) -> list[str]:
    """A group's options; files starting with ``_`` hold defaults the options share."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml") if not p.stem.startswith("_"))


GPU_ONLY = {"gpu", "ddp"}


def test_every_group_has_options():
    for group in (
        "data",
        "model",
        "trainer",
        "logger",
        "callbacks",
        "paths",
        "experiment",
        "debug",
        "hydra",
        "ensemble",
        "preprocess",
    ):
        assert options(group), f"dfdetect/conf/{group}/ is empty"
    assert {"default", "cpu", "gpu", "ddp", "ddp_sim"} <= set(options("trainer"))
    assert {"csv", "wandb", "tensorboard"} <= set(options("logger"))
    assert {"fdr", "limit", "overfit"} <= set(options("debug"))


# face-identity datasets (PuFace): dlib chips with identity labels, not clips
FACE_DATA = {"ffpp_mini_faces", "faces_folder", "lfw"}


@pytest.mark.parametrize("option", options("data"))
def test_data_option_instantiates(option, train_cfg, tmp_path):
    if option in FACE_DATA:
        from dfdetect.puface.data.identity_datamodule import IdentityDataModule

        cfg = train_cfg(f"data={option}", f"data.path={tmp_path}", demo=False)
        assert isinstance(hydra.utils.instantiate(cfg.data), IdentityDataModule)
        return
    if option == "demo":
        cfg = train_cfg("data=demo")
    else:
        cfg = train_cfg(f"data={option}", f"data.store={tmp_path}", demo=False)
    dm = hydra.utils.instantiate(cfg.data)
    assert isinstance(dm, ClipDataModule)


@pytest.mark.parametrize("option", options("model"))
def test_model_option_instantiates(option, train_cfg):
    cfg = train_cfg(f"model={option}")
    model = hydra.utils.instantiate(cfg.model)
    assert isinstance(model, DetectorModule)
    clips = torch.randint(0, 256, (2, 5, 3, 64, 64), dtype=torch.uint8)
    assert model(clips).shape == (2,)


@pytest.mark.parametrize("option", options("trainer"))
def test_trainer_option_instantiates(option, train_cfg):
    cfg = train_cfg(f"trainer={option}")
    if option in GPU_ONLY and not torch.cuda.is_available():
        # no GPU here: check everything else in the config by swapping only the device keys
        with open_dict(cfg):
            cfg.trainer.accelerator, cfg.trainer.devices, cfg.trainer.precision = "cpu", 1, "32-true"
    trainer = hydra.utils.instantiate(cfg.trainer, logger=False, enable_progress_bar=False)
    assert isinstance(trainer, pl.Trainer)
    if option == "ddp_sim":
        assert trainer.num_devices == 2


@pytest.mark.parametrize("option", options("logger"))
def test_logger_option_instantiates(option, train_cfg):
    cfg = train_cfg(f"logger={option}")
    loggers = instantiate_group(cfg.logger, "logger")
    assert loggers and all(isinstance(lg, pl.loggers.Logger) for lg in loggers)


@pytest.mark.parametrize("option", options("callbacks"))
def test_callbacks_option_instantiates(option, train_cfg):
    cfg = train_cfg(f"callbacks={option}")
    callbacks = instantiate_group(cfg.callbacks, "callback")
    assert all(isinstance(cb, pl.Callback) for cb in callbacks)
    if option == "default":
        kinds = {type(cb).__name__ for cb in callbacks}
        assert {"FiniteModelCheckpoint", "EarlyStopping", "LearningRateMonitor"} <= kinds
        assert all(
            isinstance(cb, pl.callbacks.ModelCheckpoint)
            for cb in callbacks
            if "Checkpoint" in type(cb).__name__
        )
        monitors = {cb.monitor for cb in callbacks if isinstance(cb, pl.callbacks.ModelCheckpoint)}
        assert monitors == {"val/auc", None}


# experiments of the purifier (PuFace), trained by the same train task on its own datamodule
PURIFIER_EXPERIMENTS = {"puface", "puface_lowkey", "puface_lfw"}


@pytest.mark.parametrize("group", ["experiment", "debug"])
def test_global_options_compose_and_instantiate(group, train_cfg):
    for option in options(group):
        if option == "default" and group == "debug":
            continue
        if group == "experiment" and option in PURIFIER_EXPERIMENTS:
            continue
        cfg = train_cfg(f"{group}={option}")
        assert isinstance(hydra.utils.instantiate(cfg.data), ClipDataModule)
        assert isinstance(hydra.utils.instantiate(cfg.model), DetectorModule)
        hydra.utils.instantiate(cfg.trainer, logger=False)


@pytest.mark.parametrize("option", sorted(PURIFIER_EXPERIMENTS))
def test_purifier_experiments_compose_and_instantiate(option, tmp_path):
    from dfdetect.models.lightning.checkpoint import build_module
    from dfdetect.puface.data.identity_datamodule import IdentityDataModule
    from dfdetect.puface.purifier.module import PurifierModule
    from dfdetect.puface.purifier.pairs import CloakPairDataModule
    from tests.conftest import compose_config

    cfg = compose_config("train.yaml", [f"experiment={option}"], tmp_path)
    assert isinstance(build_module(cfg.model), PurifierModule)
    assert cfg.model == cfg.purifier and cfg.test is False
    assert isinstance(hydra.utils.instantiate(cfg.data.faces), IdentityDataModule)
    assert cfg.data.exclude or cfg.data.get("roles_file")  # the users an evaluation protects are kept out
    pool = hydra.utils.instantiate(cfg.data)
    assert isinstance(pool, CloakPairDataModule)
    expected = {
        "puface": ["fawkes_low"],
        "puface_lowkey": ["fawkes_low", "lowkey"],
        "puface_lfw": ["fawkes_low"],
    }[option]
    assert list(pool.cloaks) == expected and all(callable(a) for a in pool.cloaks.values())
    hydra.utils.instantiate(cfg.trainer, logger=False)


def test_debug_overfit_switches_augmentation_off(train_cfg):
    cfg = train_cfg("debug=overfit")
    assert not any(spec.enabled for spec in cfg.data.augment.values())
    assert cfg.trainer.overfit_batches == 3


def test_eval_config_composes(train_cfg, tmp_path):
    from tests.conftest import compose_config

    cfg = compose_config("eval.yaml", ["ckpt_path=x.ckpt"], tmp_path)
    assert cfg.split == "test" and cfg.get("model") is None


@pytest.mark.parametrize(
    "override, message",
    [
        ("model=nope", "nope"),
        ("trainer.max_epoch=3", "max_epoch"),
        ("data.batchsize=3", "batchsize"),
    ],
)
def test_bad_override_fails_naming_the_key(override, message, train_cfg):
    with pytest.raises(ConfigCompositionException, match=message):
        train_cfg(override)


@pytest.mark.integration
def test_bad_key_on_command_line_fails_at_once():
    proc = subprocess.run(
        [sys.executable, "train.py", "trainer.max_epoch=3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "max_epoch" in proc.stderr
    assert "run dir" not in proc.stdout


def test_two_runs_started_together_get_two_run_dirs():
    # two processes resolve the run dir at once, as two only_users= splits started together do
    script = (
        "from hydra import compose, initialize_config_dir\n"
        "from omegaconf import OmegaConf\n"
        f"with initialize_config_dir(version_base='1.3', config_dir={str(CONF_DIR)!r}):\n"
        "    cfg = compose('train', return_hydra_config=True)\n"
        "    print(OmegaConf.select(cfg, 'hydra.run.dir'))\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    dirs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert all(d.startswith(str(ROOT / "logs" / "train" / "runs")) for d in dirs), dirs
    assert dirs[0] != dirs[1]
