"""End-to-end: fast_dev_run, metrics.json, resume from last.ckpt, evaluate.py, wandb offline."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from dfdetect.run.evaluate import evaluate
from dfdetect.run.train import train
from dfdetect.scoring.roc import auc as roc_auc
from tests.conftest import ROOT, compose_config, tiny_data_overrides


def test_fast_dev_run_trains_and_writes_metrics(train_cfg):
    cfg = train_cfg("trainer.fast_dev_run=true")
    metrics, objects = train(cfg)
    assert metrics["global_step"] == 1
    written = json.loads((objects["run_dir"] / "metrics.json").read_text())
    for key in (
        "val/auc",
        "val/acc",
        "val/f1",
        "val/ap",
        "val/eer",
        "test/auc",
        "test/video_auc",
        "test/loss",
    ):
        assert key in written, key
    assert (objects["run_dir"] / "config.yaml").is_file()


def test_training_writes_checkpoints_and_predictions(train_cfg):
    cfg = train_cfg("trainer.max_epochs=2")
    metrics, objects = train(cfg)
    ckpt_dir = objects["run_dir"].parent / "checkpoints" / "run"
    assert (ckpt_dir / "last.ckpt").is_file()
    assert metrics["best_checkpoint"] and "best-epoch" in metrics["best_checkpoint"]
    preds = pd.read_parquet(objects["run_dir"] / "predictions.parquet")
    assert list(preds.columns[:2]) == ["clip_id", "video_id"] and {"label", "prob"} <= set(preds.columns)
    assert preds["prob"].between(0, 1).all()
    assert preds["clip_id"].is_unique
    test_clip_ids = set(objects["datamodule"].split_frame("test")["clip_id"])
    assert set(preds["clip_id"]) <= test_clip_ids
    # the best checkpoint's validation scores, from the validate call after fitting
    val = pd.read_parquet(objects["run_dir"] / "val_predictions.parquet")
    val_clip_ids = set(objects["datamodule"].split_frame("val")["clip_id"])
    assert set(val["clip_id"]) == val_clip_ids and val["clip_id"].is_unique
    assert val.groupby("video_id")["label"].nunique().max() == 1
    assert metrics["val/auc"] == pytest.approx(roc_auc(val["prob"], val["label"]), abs=1e-6)


def test_resume_from_last_checkpoint_reaches_the_same_step(train_cfg, tmp_path):
    full, _ = train(train_cfg("trainer.max_epochs=3", "test=false"))

    first_cfg = compose_config_like(train_cfg, tmp_path / "a", "trainer.max_epochs=2", "test=false")
    _, first = train(first_cfg)
    last = first["run_dir"].parent / "checkpoints" / "run" / "last.ckpt"
    assert last.is_file()
    resumed_cfg = compose_config_like(
        train_cfg, tmp_path / "b", "trainer.max_epochs=3", "test=false", f"ckpt_path={last}"
    )
    resumed, _ = train(resumed_cfg)
    assert resumed["global_step"] == full["global_step"] == 3 * 2
    assert resumed["epochs"] == full["epochs"]


def compose_config_like(train_cfg, run_dir, *overrides):
    base = train_cfg()
    data_root = base.data.store.root
    run_dir.mkdir(parents=True)
    return compose_config(
        "train.yaml",
        [
            *tiny_data_overrides(data_root),
            "trainer.limit_train_batches=2",
            "trainer.limit_val_batches=2",
            "trainer.limit_test_batches=2",
            *overrides,
        ],
        run_dir,
    )


def test_evaluate_scores_a_saved_checkpoint(train_cfg, tmp_path):
    _, objects = train(train_cfg("trainer.max_epochs=1"))
    ckpt = objects["run_dir"].parent / "checkpoints" / "run" / "last.ckpt"
    data_root = objects["cfg"].data.store.root
    eval_dir = tmp_path / "eval"
    eval_dir.mkdir()
    cfg = compose_config(
        "eval.yaml", [*tiny_data_overrides(data_root), f"ckpt_path={ckpt}", "split=val"], eval_dir
    )
    metrics, out = evaluate(cfg)
    assert metrics["split"] == "val" and 0.0 <= metrics["test/auc"] <= 1.0
    preds = pd.read_parquet(out["run_dir"] / "predictions.parquet")
    assert len(preds) == len(out["datamodule"].split_frame("val"))
    assert json.loads((out["run_dir"] / "metrics.json").read_text())["test/auc"] == metrics["test/auc"]


@pytest.mark.integration
def test_evaluate_cli_writes_predictions_for_a_checkpoint(train_cfg, tmp_path):
    _, objects = train(train_cfg("trainer.max_epochs=1"))
    ckpt = objects["run_dir"].parent / "checkpoints" / "run" / "last.ckpt"
    data_root = objects["cfg"].data.store.root
    proc = subprocess.run(
        [
            sys.executable,
            "evaluate.py",
            f"ckpt_path={ckpt}",
            f"paths.log_dir={tmp_path}",
            "extras.print_config=false",
            *tiny_data_overrides(data_root),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    run_dir = Path(proc.stdout.strip().splitlines()[-1].removeprefix("run dir: "))
    assert run_dir.is_relative_to(tmp_path)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["split"] == "test" and "test/video_auc" in metrics
    preds = pd.read_parquet(run_dir / "predictions.parquet")
    assert list(preds.columns) == ["clip_id", "video_id", "dataset", "method", "image_key", "label", "prob"]
    assert (preds["image_key"] == "demo/" + preds["video_id"]).all()
    by_method = pd.read_csv(run_dir / "metrics_by_method.csv")
    assert set(by_method["method"]) == {"all", "demo_swap"} and by_method["n_clips"].max() == len(preds)


@pytest.mark.integration
def test_evaluate_cli_on_missing_checkpoint_fails_clearly(tmp_path):
    proc = subprocess.run(
        [sys.executable, "evaluate.py", f"ckpt_path={tmp_path}/nope.ckpt", f"paths.log_dir={tmp_path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode != 0
    assert "checkpoint not found" in proc.stderr


def test_wandb_logger_works_offline(train_cfg, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = train_cfg("logger=wandb", "trainer.max_epochs=1")
    metrics, objects = train(cfg)
    import wandb

    wandb.finish()
    runs = list((objects["run_dir"] / "wandb").glob("offline-run-*"))
    assert runs, "no offline wandb run was written"
    assert metrics["test/auc"] is not None or metrics["test/acc"] is not None


@pytest.mark.integration
@pytest.mark.slow
def test_default_demo_run_reaches_auc_090(tmp_path):
    """The README's main job, as a user runs it (about 8 minutes on 2 cores)."""
    proc = subprocess.run(
        [sys.executable, "train.py", f"paths.log_dir={tmp_path}", f"paths.data_dir={tmp_path}/data"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = proc.stdout.strip().splitlines()[-1].removeprefix("run dir: ")
    metrics = json.loads((ROOT / run_dir / "metrics.json").read_text())
    assert metrics["test/auc"] >= 0.90
