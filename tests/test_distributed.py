"""Data-parallel training: ddp_sim (2 CPU processes) through the real CLI, exact test metrics under
DDP (padded duplicates dropped, every clip once), the ddp/bf16/multi-node trainer configs."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf

from dfdetect.data.manifest import read_manifest, write_manifest
from dfdetect.run.evaluate import evaluate
from dfdetect.run.train import train
from tests.conftest import ROOT, compose_config, tiny_data_overrides

CLI_TIMEOUT = 600


def run_cli(script: str, *overrides: str, root: Path) -> Path:
    """``python <script> <overrides>`` with every output under root; returns the printed run dir."""
    proc = subprocess.run(
        [sys.executable, script, f"paths.root_dir={root}", "extras.print_config=false", *overrides],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("run dir: ")]
    assert len(lines) == 1, proc.stdout[-2000:]
    return Path(lines[0].removeprefix("run dir: "))


@pytest.mark.integration
def test_ddp_sim_fast_dev_run_gathers_both_ranks(tmp_path, demo_root):
    run_dir = run_cli(
        "train.py",
        "trainer=ddp_sim",
        "trainer.fast_dev_run=true",
        *tiny_data_overrides(demo_root),
        root=tmp_path,
    )
    assert run_dir.is_relative_to(tmp_path)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["global_step"] == 1
    assert 0.0 <= metrics["test/auc"] <= 1.0 and 0.0 <= metrics["val/auc"] <= 1.0
    preds = pd.read_parquet(run_dir / "predictions.parquet")
    # fast_dev_run scores one batch of 8 per rank: 16 distinct clips prove both ranks were gathered
    assert len(preds) == 16 and preds["clip_id"].is_unique
    assert (run_dir / "config.yaml").is_file()


def odd_sized_store(demo_store: Path, drop_clip_id: str, out: Path) -> Path:
    """The demo store minus one clip (frames linked, not copied)."""
    out.mkdir(parents=True)
    for video_dir in demo_store.iterdir():
        if video_dir.is_dir():
            (out / video_dir.name).symlink_to(video_dir)
    manifest = read_manifest(demo_store)
    write_manifest(manifest[manifest["clip_id"] != drop_clip_id].reset_index(drop=True), out)
    return out


def store_overrides(store: Path) -> list[str]:
    return [
        "data=store",
        f"data.store={store}",
        "data.image_size=64",
        "data.num_workers=0",
        "data.eval_batch_size=3",
    ]


def quick_checkpoint(demo_root: Path, tmp_path: Path) -> tuple[dict, Path]:
    """A few training steps on the tiny demo: (train's objects, its last.ckpt)."""
    cfg = compose_config(
        "train.yaml",
        [
            *tiny_data_overrides(demo_root),
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=3",
            "trainer.limit_val_batches=1",
            "test=false",
        ],
        tmp_path / "fit",
    )
    _, fitted = train(cfg)
    return fitted, fitted["run_dir"].parent / "checkpoints" / "run" / "last.ckpt"


@pytest.mark.integration
def test_ddp_test_metrics_equal_single_process_on_an_odd_split(tmp_path, demo_root):
    fitted, ckpt = quick_checkpoint(demo_root, tmp_path)
    # one test clip fewer: an odd test split, so a 2-process DistributedSampler pads one rank
    datamodule = fitted["datamodule"]
    drop = datamodule.split_frame("test")["clip_id"].iloc[0]
    store = odd_sized_store(datamodule.store_dir, drop, tmp_path / "odd_store")

    single_cfg = compose_config("eval.yaml", [*store_overrides(store), f"ckpt_path={ckpt}"], tmp_path / "one")
    single, objects = evaluate(single_cfg)
    n_test = len(objects["datamodule"].split_frame("test"))
    assert n_test % 2 == 1, "the test split must be odd for the sampler to pad"

    ddp_dir = run_cli(
        "evaluate.py", *store_overrides(store), f"ckpt_path={ckpt}", "trainer=ddp_sim", root=tmp_path
    )
    ddp = json.loads((ddp_dir / "metrics.json").read_text())
    keys = ("test/auc", "test/acc", "test/f1", "test/ap", "test/eer", "test/video_auc", "test/video_acc")
    for key in (*keys, "test/loss"):
        assert ddp[key] == pytest.approx(single[key], abs=1e-6), key
    assert not math.isnan(single["test/auc"])

    one_preds = pd.read_parquet(objects["run_dir"] / "predictions.parquet").set_index("clip_id")
    ddp_preds = pd.read_parquet(ddp_dir / "predictions.parquet").set_index("clip_id")
    assert ddp_preds.index.is_unique and len(ddp_preds) == n_test
    assert set(ddp_preds.index) == set(objects["datamodule"].split_frame("test")["clip_id"])
    assert (ddp_preds.loc[one_preds.index, "prob"] - one_preds["prob"]).abs().max() < 1e-6


def test_ddp_config_syncs_batchnorm_and_takes_nodes_and_bf16(tmp_path):
    cfg = compose_config(
        "train.yaml", ["trainer=ddp", "trainer.num_nodes=4", "trainer.precision=bf16-mixed"], tmp_path
    )
    assert cfg.trainer.strategy == "ddp" and cfg.trainer.accelerator == "gpu"
    assert cfg.trainer.sync_batchnorm is True
    assert cfg.trainer.num_nodes == 4 and cfg.trainer.precision == "bf16-mixed"
    sim = compose_config("train.yaml", ["trainer=ddp_sim"], tmp_path)
    assert (sim.trainer.strategy, sim.trainer.accelerator, sim.trainer.devices) == ("ddp", "cpu", 2)


def test_bf16_mixed_fast_dev_run_on_cpu(train_cfg):
    metrics, objects = train(train_cfg("trainer.fast_dev_run=true", "trainer.precision=bf16-mixed"))
    assert objects["trainer"].precision == "bf16-mixed"
    assert metrics["global_step"] == 1 and math.isfinite(metrics["test/loss"])
    preds = pd.read_parquet(objects["run_dir"] / "predictions.parquet")
    assert preds["prob"].between(0, 1).all()


@pytest.mark.integration
@pytest.mark.slow
def test_ddp_multirun_runs_each_job_once_in_its_own_dir(tmp_path, demo_root):
    """``-m`` with ddp: the relaunched rank reruns only its job, and the next job gets new ranks."""
    proc = subprocess.run(
        [
            sys.executable,
            "train.py",
            "-m",
            "trainer=ddp_sim",
            "model=meso4,mesoinception4",
            "trainer.fast_dev_run=true",
            f"paths.root_dir={tmp_path}",
            "extras.print_config=false",
            *tiny_data_overrides(demo_root),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dirs = [
        Path(line.removeprefix("run dir: ")) for line in proc.stdout.splitlines() if "run dir: " in line
    ]
    assert [d.name for d in run_dirs] == ["0", "1"]
    for run_dir, model in zip(run_dirs, ("meso4", "mesoinception4"), strict=True):
        assert OmegaConf.load(run_dir / "config.yaml").model.net.name == model
        assert len(pd.read_parquet(run_dir / "predictions.parquet")) == 16
    assert not list((tmp_path / "logs" / "train").glob("runs/*")), "a relaunched rank made its own run dir"


@pytest.mark.integration
def test_ddp_on_a_litdata_stream_scores_every_clip_once(tmp_path, demo_root):
    pytest.importorskip("litdata")
    from dfdetect.data.litdata_export import export_litdata

    data = tiny_data_overrides(demo_root)
    fitted, ckpt = quick_checkpoint(demo_root, tmp_path)
    export = export_litdata(
        fitted["datamodule"].store_dir, tmp_path / "lit", chunk_bytes="256KB", progress=False
    )

    single, objects = evaluate(compose_config("eval.yaml", [*data, f"ckpt_path={ckpt}"], tmp_path / "one"))
    stream = ["data.format=litdata", f"data.litdata_uri={export}", "data.eval_batch_size=3"]
    ddp_dir = run_cli("evaluate.py", *data, *stream, f"ckpt_path={ckpt}", "trainer=ddp_sim", root=tmp_path)
    ddp = json.loads((ddp_dir / "metrics.json").read_text())
    for key in ("test/auc", "test/acc", "test/ap", "test/video_auc"):
        assert ddp[key] == pytest.approx(single[key], abs=1e-6), key
    ddp_preds = pd.read_parquet(ddp_dir / "predictions.parquet")
    assert ddp_preds["clip_id"].is_unique
    assert set(ddp_preds["clip_id"]) == set(objects["datamodule"].split_frame("test")["clip_id"])
