"""Sweeps: the submitit launcher configs, a 2-job local multirun, the Optuna driver."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf

from tests.conftest import ROOT, compose_config, tiny_data_overrides

pytest.importorskip(
    "hydra_plugins.hydra_submitit_launcher", reason="hydra-submitit-launcher is not installed"
)
optuna = pytest.importorskip("optuna", reason="optuna is not installed")

TIMEOUT = 600
SHORT_TRAINING = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
]


def load_sweep_optuna():
    return importlib.import_module("dfdetect.tasks.sweep")


def test_slurm_launcher_runs_one_task_per_device_on_each_node(tmp_path):
    cfg = compose_config(
        "train.yaml",
        ["hydra/launcher=slurm", "trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2"],
        tmp_path,
    )
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert launcher["_target_"].endswith("submitit_launcher.SlurmLauncher")
    assert (launcher["nodes"], launcher["tasks_per_node"], launcher["gpus_per_node"]) == (2, 4, 4)
    local = compose_config("train.yaml", ["hydra/launcher=local"], tmp_path)
    assert local.hydra.launcher._target_.endswith("submitit_launcher.LocalLauncher")
    assert local.hydra.launcher.tasks_per_node == 1


def test_search_space_names_existing_config_keys(tmp_path):
    cfg = compose_config("train.yaml", ["hparams_search=lr_wd", "model=meso4"], tmp_path)
    assert cfg.optimized_metric == "val/auc" and cfg.optuna.direction == "maximize"
    for key in cfg.optuna.params:
        assert OmegaConf.select(cfg, key) is not None, f"optuna.params.{key} is not a config key"


def test_suggested_overrides_are_hydra_overrides(tmp_path):
    params = OmegaConf.create(
        {
            "model.optimizer.lr": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True},
            "data.batch_size": {"type": "categorical", "choices": [16, 32]},
            "trainer.max_epochs": {"type": "int", "low": 1, "high": 3},
        }
    )
    trial = optuna.trial.FixedTrial(
        {"model.optimizer.lr": 3e-4, "data.batch_size": 32, "trainer.max_epochs": 2}
    )
    overrides = load_sweep_optuna().suggest_overrides(trial, params)
    assert overrides == ["model.optimizer.lr=0.0003", "data.batch_size=32", "trainer.max_epochs=2"]
    cfg = compose_config("train.yaml", overrides, tmp_path)
    assert (cfg.model.optimizer.lr, cfg.data.batch_size, cfg.trainer.max_epochs) == (3e-4, 32, 2)
    bad = OmegaConf.create({"x": {"type": "uniform", "low": 0, "high": 1}})
    with pytest.raises(ValueError, match="unknown type 'uniform'"):
        load_sweep_optuna().suggest_overrides(optuna.trial.FixedTrial({"x": 0.5}), bad)


@pytest.mark.integration
def test_submitit_local_multirun_trains_two_jobs(tmp_path, demo_root):
    proc = subprocess.run(
        [
            sys.executable,
            "train.py",
            "-m",
            "hydra/launcher=local",
            "model=meso4,mesoinception4",
            f"paths.root_dir={tmp_path}",
            "extras.print_config=false",
            *tiny_data_overrides(demo_root),
            *SHORT_TRAINING,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (sweep_dir,) = (tmp_path / "logs" / "train" / "multiruns").iterdir()
    for job, model in enumerate(("meso4", "mesoinception4")):
        run_dir = sweep_dir / str(job)
        assert OmegaConf.load(run_dir / "config.yaml").model.net.name == model
        assert 0.0 <= json.loads((run_dir / "metrics.json").read_text())["val/auc"] <= 1.0
        assert pd.read_parquet(run_dir / "predictions.parquet")["clip_id"].is_unique
    assert len(list((sweep_dir / ".submitit").glob("*/*_result.pkl"))) == 2


@pytest.mark.integration
def test_optuna_search_of_two_trials_records_the_best(tmp_path, demo_root):
    command = [
        sys.executable,
        "scripts/sweep_optuna.py",
        "hparams_search=lr_wd",
        "optuna.n_trials=2",
        f"paths.root_dir={tmp_path}",
        "extras.print_config=false",
        *tiny_data_overrides(demo_root),
        *SHORT_TRAINING,
    ]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    study_dir = Path(proc.stdout.strip().splitlines()[-1].removeprefix("study dir: "))
    assert study_dir == tmp_path / "logs" / "optuna" / "mesoinception4-demo-lr_wd"
    trials = pd.read_csv(study_dir / "trials.csv")
    assert list(trials["state"]) == ["COMPLETE", "COMPLETE"]
    best = json.loads((study_dir / "best.json").read_text())
    assert best["value"] == trials["value"].max() and best["n_complete"] == 2
    assert set(best["params"]) == {"model.optimizer.lr", "model.optimizer.weight_decay", "data.batch_size"}
    for n in (0, 1):
        metrics = json.loads((study_dir / f"trial_{n:03d}" / "metrics.json").read_text())
        assert metrics["val/auc"] == trials.loc[n, "value"]
    assert (tmp_path / "checkpoints" / "optuna" / study_dir.name / "trial_000").is_dir()

    # a rerun with the same study resumes it: nothing left to do at 2 trials, one more at 3
    rerun = subprocess.run(
        [*command[:3], "optuna.n_trials=3", *command[4:]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert len(pd.read_csv(study_dir / "trials.csv")) == 3
