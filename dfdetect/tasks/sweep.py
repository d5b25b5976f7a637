"""Hyperparameter search with Optuna, one training run per trial, in this process:

    python scripts/sweep_optuna.py hparams_search=lr_wd model=meso4 data=celebdf trainer=gpu
    python scripts/sweep_optuna.py hparams_search=lr_wd optuna.n_trials=50 optuna.storage=sqlite:///s.db

Takes every train.py override; ``hparams_search=<name>`` (dfdetect/conf/hparams_search/) supplies the search
space (``optuna.params``), the metric (``optimized_metric``) and its direction. Each trial composes
the train config with its sampled overrides and calls ``train()``; its run dir is
``<study dir>/trial_<n>``. The study lives in SQLite in the study dir, so a rerun resumes until
``optuna.n_trials`` trials have finished; several drivers on one storage share the study (e.g. one
per GPU with CUDA_VISIBLE_DEVICES). ``trials.csv`` and ``best.json`` are rewritten after each
trial. A trial runs in this process, so it may use one device or ``trainer.strategy=ddp_spawn``,
not ``ddp`` (which relaunches the entry script). See docs/scaling.md.
"""

import logging
import math
from pathlib import Path

import hydra
from omegaconf import DictConfig, open_dict

from dfdetect.utils.config import register_resolvers
from dfdetect.utils.optional import require

register_resolvers()
log = logging.getLogger("sweep_optuna")


def suggest_overrides(trial, params: DictConfig) -> list[str]:
    """Hydra overrides ``key=value`` for one trial, from ``{key: {type, low, high, log | choices}}``."""
    overrides = []
    for key, spec in params.items():
        kind = spec.get("type", "float")
        if kind == "float":
            value = trial.suggest_float(key, spec.low, spec.high, log=spec.get("log", False))
        elif kind == "int":
            value = trial.suggest_int(key, spec.low, spec.high, log=spec.get("log", False))
        elif kind == "categorical":
            value = trial.suggest_categorical(key, list(spec.choices))
        else:
            raise ValueError(f"optuna.params.{key}: unknown type {kind!r} (float, int or categorical)")
        overrides.append(f"{key}={value!r}" if isinstance(value, float) else f"{key}={value}")
    return overrides


def compose_trial(overrides: list[str], run_dir: Path) -> DictConfig:
    """The train config for these overrides, with ``paths.output_dir`` = run_dir."""
    from hydra.core.hydra_config import HydraConfig

    cfg = hydra.compose(config_name="train.yaml", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(run_dir)
        cfg.hydra.job.name = run_dir.name
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def write_results(study, study_dir: Path, direction: str) -> None:
    optuna = require("optuna", "sweep", "the Optuna search")

    from dfdetect.utils.io import atomic_path, write_json

    frame = study.trials_dataframe()
    with atomic_path(study_dir / "trials.csv") as tmp:
        frame.to_csv(tmp, index=False)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if done:
        best = study.best_trial
        write_json(
            study_dir / "best.json",
            {
                "value": best.value,
                "direction": direction,
                "params": best.params,
                "trial": best.number,
                "run_dir": best.user_attrs.get("run_dir"),
                "n_complete": len(done),
            },
        )


def check_in_process(cfg: DictConfig) -> None:
    if str(cfg.trainer.get("strategy", "auto")) == "ddp":
        raise ValueError(
            "trials run inside this process, but strategy ddp relaunches the entry script; use "
            "trainer.strategy=ddp_spawn, one device per trial, or a launcher sweep (docs/scaling.md)"
        )


@hydra.main(version_base="1.3", config_path="pkg://dfdetect.conf", config_name="train.yaml")
def main(cfg: DictConfig) -> None:
    optuna = require("optuna", "sweep", "the Optuna search")
    from hydra.core.hydra_config import HydraConfig

    from dfdetect.run.train import train

    if "optuna" not in cfg:
        raise ValueError("no search space: pass hparams_search=<name> (see dfdetect/conf/hparams_search/)")
    check_in_process(cfg)
    settings = cfg.optuna
    study_dir = Path(HydraConfig.get().runtime.output_dir)
    base_overrides = list(HydraConfig.get().overrides.task)
    storage = settings.storage or f"sqlite:///{study_dir / 'optuna.db'}"
    study = optuna.create_study(
        study_name=settings.study_name,
        storage=optuna.storages.RDBStorage(storage, heartbeat_interval=60, grace_period=180),
        direction=settings.direction,
        sampler=optuna.samplers.TPESampler(seed=settings.seed),
        load_if_exists=True,
    )
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)

    def objective(trial) -> float:
        overrides = suggest_overrides(trial, settings.params)
        run_dir = study_dir / f"trial_{trial.number:03d}"
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("overrides", overrides)
        log.info("trial %d: %s", trial.number, " ".join(overrides))
        trial_cfg = compose_trial([*base_overrides, *overrides], run_dir)
        metrics, _ = train(trial_cfg)
        value = metrics.get(trial_cfg.optimized_metric)
        if value is None or math.isnan(value):
            raise ValueError(f"trial {trial.number}: {trial_cfg.optimized_metric} is missing or NaN")
        return float(value)

    already = len(study.get_trials(states=finished))
    log.info("study %s in %s: %d of %d trials done", settings.study_name, storage, already, settings.n_trials)
    study.optimize(
        objective,
        n_trials=max(settings.n_trials - already, 0),
        callbacks=[
            optuna.study.MaxTrialsCallback(settings.n_trials, states=finished),
            lambda study, _: write_results(study, study_dir, settings.direction),
        ],
        catch=(Exception,),
        show_progress_bar=True,
        gc_after_trial=True,
    )
    write_results(study, study_dir, settings.direction)
    print(f"study dir: {study_dir}", flush=True)


if __name__ == "__main__":
    main()
