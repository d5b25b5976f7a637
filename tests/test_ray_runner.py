"""runner=ray (dfdetect/distributed) on a local Ray cluster of 2 CPUs on loopback, started once for
the module: the same store, verdicts and evaluate.py predictions as the local runner, a killed
worker and a killed driver."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from dfdetect.data.frames import BadFrameError
from dfdetect.data.manifest import read_manifest
from dfdetect.distributed.cluster import RayOptions
from dfdetect.distributed.preprocess import ray_dispatch
from dfdetect.run.evaluate import evaluate
from dfdetect.run.predict import predict
from dfdetect.scoring.video import video_scores
from tests.clip_store_fakes import store_overrides, truncate, write_jpeg_store
from tests.conftest import ROOT, compose_config, repo_env
from tests.preprocess_fakes import BlobDetector, write_video
from tests.test_predict import BLOB, PIPELINE, SAMPLING, bad_corpus, checkpoint, labelled_tree, predict_cfg  # noqa: F401
from tests.test_preprocess_store import (
    good_tree,
    messy_tree,  # noqa: F401 - a fixture
    preprocess_cmd,
    records_snapshot,
    run,
)

pytestmark = pytest.mark.integration
ray = pytest.importorskip("ray")
OPTIONS = RayOptions(max_retries=2)


@pytest.fixture(scope="module")
def cluster():
    """A 2-CPU cluster on loopback; its workers import tests.* (the stand-in detectors)."""
    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "RAY_USAGE_STATS_ENABLED")}
    os.environ.update(PYTHONPATH=repo_env()["PYTHONPATH"], RAY_USAGE_STATS_ENABLED="0")
    context = ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
    )
    try:
        yield context.address_info["gcs_address"]
    finally:
        ray.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def status_table(store: Path) -> pd.DataFrame:
    return pd.read_parquet(store / "status.parquet").drop(columns=["seconds"])


def assert_same_store(store: Path, reference: Path) -> None:
    """Same manifest rows (clip ids, frame indices, boxes, paths), statuses and byte-identical crops."""
    pd.testing.assert_frame_equal(read_manifest(store), read_manifest(reference))
    pd.testing.assert_frame_equal(status_table(store), status_table(reference))
    crops = sorted(p.relative_to(store) for p in (store / "frames").rglob("*.jpg"))
    assert crops == sorted(p.relative_to(reference) for p in (reference / "frames").rglob("*.jpg"))
    assert crops and all((store / p).read_bytes() == (reference / p).read_bytes() for p in crops)


def test_preprocess_on_ray_gives_the_local_store_bad_files_included(cluster, messy_tree, tmp_path):  # noqa: F811
    local = run(messy_tree, tmp_path / "local")
    on_ray = run(messy_tree, tmp_path / "ray", dispatch=ray_dispatch(OPTIONS))
    assert_same_store(tmp_path / "ray", tmp_path / "local")
    assert (on_ray.ok, on_ray.skipped, on_ray.failed, on_ray.clips) == (
        local.ok,
        local.skipped,
        local.failed,
        local.clips,
    )
    assert local.failed >= 3 and local.skipped >= 3  # the corpus's bad files are in the comparison
    assert not any((tmp_path / "ray/.tmp").iterdir())


class StallOnceDetector(BlobDetector):
    """On frames ``stall_width`` wide, the first time only: writes its process id to ``<dir>/pid``
    and waits to be killed (the test kills it, after leaving ``<dir>/killed`` for the retry)."""

    def __init__(self, stall_dir: str = "", stall_width: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.stall_dir, self.stall_width = Path(stall_dir), stall_width

    def detect(self, frames, *args, **kwargs):
        if frames and frames[0].shape[1] == self.stall_width and not (self.stall_dir / "killed").exists():
            # written whole, then renamed: the killer must never read a half-written pid
            (self.stall_dir / "pid.tmp").write_text(str(os.getpid()))
            os.replace(self.stall_dir / "pid.tmp", self.stall_dir / "pid")
            time.sleep(120)
        return super().detect(frames, *args, **kwargs)


def test_a_worker_killed_mid_run_costs_nothing(cluster, tmp_path):
    raw = good_tree(tmp_path / "raw", videos=5)
    write_video(raw / "fake/stall.avi", n_frames=20, size=(104, 64))
    stall = tmp_path / "stall"
    stall.mkdir()
    killed: list[int] = []

    finished = threading.Event()

    def killer() -> None:  # waits as long as the run lasts: a loaded machine may take minutes to stall
        while not finished.is_set() and not (stall / "pid").exists():
            time.sleep(0.05)
        if finished.is_set():
            return
        pid = int((stall / "pid").read_text())
        (stall / "killed").write_text("")
        os.kill(pid, signal.SIGKILL)  # a Ray worker process holding a task
        killed.append(pid)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    detector = functools.partial(StallOnceDetector, stall_dir=str(stall), stall_width=104)
    summary = run(raw, tmp_path / "ray", detector=detector, dispatch=ray_dispatch(OPTIONS))
    finished.set()
    thread.join(5)
    assert killed and killed[0] != os.getpid()
    assert (summary.files, summary.ok, summary.failed, summary.processed) == (6, 6, 0, 6)
    assert len(records_snapshot(tmp_path / "ray")) == 6
    run(raw, tmp_path / "local")
    assert_same_store(tmp_path / "ray", tmp_path / "local")


def test_a_file_that_keeps_killing_its_worker_is_recorded_as_failed_and_the_rest_go_on(cluster, tmp_path):
    raw = good_tree(tmp_path / "raw", videos=3)
    write_video(raw / "fake/crash.avi", n_frames=20, size=(104, 64))
    detector = functools.partial(BlobDetector, crash_on_width=104)
    summary = run(raw, tmp_path / "ray", detector=detector, dispatch=ray_dispatch(RayOptions(max_retries=1)))
    status = pd.read_parquet(tmp_path / "ray/status.parquet").set_index("video_id")
    assert status.loc["fake/crash", "status"] == "failed"
    assert "worker process died" in status.loc["fake/crash", "reason"]
    assert (summary.files, summary.ok, summary.failed) == (4, 3, 1)


def test_a_driver_killed_with_kill_9_resumes_on_rerun(cluster, tmp_path):
    raw = good_tree(tmp_path / "raw", videos=6)
    store = tmp_path / "store"
    ray_args = ("runner=ray", f"ray.address={cluster}")
    env = repo_env()
    proc = subprocess.Popen(
        preprocess_cmd(raw, store, *ray_args, delay=0.2),
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 180
        while time.time() < deadline and len(list((store / "records").rglob("*.json"))) < 2:
            time.sleep(0.02)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    time.sleep(3)  # the cluster notices the dead driver and stops its tasks
    before = records_snapshot(store)
    assert 2 <= len(before) < 6 and not (store / "manifest.parquet").exists()

    rerun = subprocess.run(
        preprocess_cmd(raw, store, *ray_args, delay=0.2), cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    after = records_snapshot(store)
    assert f"{len(before)} were already done" in rerun.stdout, rerun.stdout
    assert len(after) == 6
    assert all(after[name] == value for name, value in before.items())  # nothing finished was redone
    run(raw, tmp_path / "clean")  # uninterrupted, local, same clip settings as the command line's
    pd.testing.assert_frame_equal(read_manifest(store), read_manifest(tmp_path / "clean"))
    on_disk = {p.relative_to(store).as_posix() for p in (store / "frames").rglob("*.jpg")}
    assert on_disk == {p for paths in read_manifest(store)["paths"] for p in paths}


def track_layout(tracks: list[dict]) -> list[dict]:
    """A verdict's tracks without their scores: which clips, frames and boxes."""
    return [
        {
            **{k: v for k, v in t.items() if k not in ("p_fake", "clips")},
            "clips": [{k: c[k] for k in ("start", "frame_indices", "boxes")} for c in t["clips"]],
        }
        for t in tracks
    ]


@pytest.mark.parametrize("where", [[], ["ray.actors=1"]], ids=["model_on_driver", "model_in_actor"])
def test_predict_on_ray_gives_the_local_verdicts_bad_files_included(cluster, tmp_path, checkpoint, where):  # noqa: F811
    raw = labelled_tree(tmp_path / "raw")
    bad_corpus(raw / "bad")
    common = (f"input={raw}", f"ckpt_path={checkpoint}", "predict.cache=null")
    _, here, local_dir = predict(predict_cfg(tmp_path, *common))
    _, on_ray, ray_dir = predict(predict_cfg(tmp_path, *common, "runner=ray", *where))
    assert len(here) == 17 and sum(v.verdict == "unknown" for v in here) == 8
    assert [(v.path, v.verdict, v.reason, v.n_clips) for v in on_ray] == [
        (v.path, v.verdict, v.reason, v.n_clips) for v in here
    ]
    for a, b in zip(on_ray, here, strict=True):
        assert (a.p_fake is None) == (b.p_fake is None)
        assert a.p_fake is None or abs(a.p_fake - b.p_fake) <= 1e-6
        # an actor's torch runs on other threads than the driver's, which changes a pass's results
        # in the last float bits (2e-8 here): the tracks' scores get the same tolerance as p_fake
        assert track_layout(a.tracks) == track_layout(b.tracks)
        for ta, tb in zip(a.tracks, b.tracks, strict=True):
            assert (ta["p_fake"] is None) == (tb["p_fake"] is None)
            assert ta["p_fake"] is None or abs(ta["p_fake"] - tb["p_fake"]) <= 1e-6
    assert (
        pd.read_csv(ray_dir / "predictions.csv")
        .drop(columns=["p_fake"])
        .equals(pd.read_csv(local_dir / "predictions.csv").drop(columns=["p_fake"]))
    )


def cached_lines(cache: Path) -> list[str]:
    return [line for p in sorted(cache.glob("*.jsonl")) for line in p.read_text().splitlines()]


def test_predict_driver_killed_with_kill_9_resumes_on_rerun(cluster, tmp_path, checkpoint):  # noqa: F811
    raw = tmp_path / "raw"
    for i in range(8):
        write_video(raw / f"v{i}.avi", n_frames=24, seed=i)
    cache = tmp_path / "cache"
    overrides = [
        f"input={raw}",
        f"ckpt_path={checkpoint}",
        BLOB,
        "+detector.delay=0.2",
        *PIPELINE,
        *(f"sampling.{s}" for s in SAMPLING),
        "predict.image_size=64",
        "predict.batch_size=1",
        "predict.progress=false",
        f"predict.cache={cache}",
        "runner=ray",
        f"ray.address={cluster}",
    ]

    def command(run: str) -> list[str]:
        return [sys.executable, "predict.py", *overrides, f"hydra.run.dir={tmp_path / run}"]

    proc = subprocess.Popen(
        command("first"), cwd=ROOT, env=repo_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.time() + 180
        while time.time() < deadline and len(cached_lines(cache)) < 2:
            time.sleep(0.02)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    time.sleep(3)  # the cluster notices the dead driver and stops its tasks
    before = cached_lines(cache)
    assert 2 <= len(before) < 8

    rerun = subprocess.run(command("second"), cwd=ROOT, env=repo_env(), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    after = cached_lines(cache)
    assert after[: len(before)] == before and len(after) == 8  # nothing scored twice, nothing lost
    assert len({json.loads(line)["key"] for line in after}) == 8
    table = pd.read_csv(tmp_path / "second/predictions.csv")
    _, local, _ = predict(
        predict_cfg(tmp_path, f"input={raw}", f"ckpt_path={checkpoint}", "predict.cache=null")
    )
    assert list(table["path"]) == [v.path for v in local]
    assert all(abs(a - v.p_fake) <= 1e-6 for a, v in zip(table["p_fake"], local, strict=True))


# 20 videos of 2 clips of 3 frames, one group each; batches of 4 clips: 10 tasks
STORE_VIDEOS = [(f"v{i:02d}", i % 2, f"g{i:02d}") for i in range(20)]


def evaluate_store(tmp_path, store: Path, ckpt: Path, name: str, *overrides: str) -> tuple[dict, Path]:
    cfg = compose_config(
        "eval",
        [
            *store_overrides(store, "data.image_size=64", "data.net_input_size=64"),
            f"ckpt_path={ckpt}",
            "split=all",
            *overrides,
        ],
        tmp_path / name,
    )
    metrics, _ = evaluate(cfg)
    return metrics, tmp_path / name / "run"


def assert_same_scores(ray_dir: Path, local_dir: Path) -> pd.DataFrame:
    """The same clip rows in the same order, the same columns, P(fake) within 1e-6 per clip and per
    video (the scoring package's clip -> video rule)."""
    local = pd.read_parquet(local_dir / "predictions.parquet")
    on_ray = pd.read_parquet(ray_dir / "predictions.parquet")
    assert list(on_ray.columns) == list(local.columns)
    pd.testing.assert_frame_equal(on_ray.drop(columns="prob"), local.drop(columns="prob"))
    assert (on_ray["prob"] - local["prob"]).abs().max() <= 1e-6
    videos, local_videos = video_scores(on_ray), video_scores(local)
    assert list(videos.index) == list(local_videos.index)
    assert (videos["prob"] - local_videos["prob"]).abs().max() <= 1e-6
    by_method = pd.read_csv(ray_dir / "metrics_by_method.csv")
    pd.testing.assert_frame_equal(by_method, pd.read_csv(local_dir / "metrics_by_method.csv"), atol=1e-6)
    return local


@pytest.mark.parametrize("where", [[], ["ray.actors=1"]], ids=["model_on_driver", "model_in_actor"])
def test_evaluate_all_on_ray_gives_the_local_predictions(cluster, tmp_path, checkpoint, where):  # noqa: F811
    store = write_jpeg_store(tmp_path / "store", STORE_VIDEOS, frames_per_clip=3, size=64)
    seed = "data.split_seed=2"  # a val split with both classes: calibration.json is fitted on it
    local, local_dir = evaluate_store(tmp_path, store, checkpoint, "local", seed)
    on_ray, ray_dir = evaluate_store(tmp_path, store, checkpoint, "ray", seed, "runner=ray", *where)
    clips = assert_same_scores(ray_dir, local_dir)
    assert len(clips) == 40 and clips["prob"].std() > 1e-4  # every clip, and scores that differ
    assert set(on_ray) == set(local)
    for key, value in local.items():
        if key.startswith("test/") and value is not None:
            assert on_ray[key] == pytest.approx(value, abs=1e-6), key
        elif key not in ("calibration",):
            assert on_ray[key] == value, key
    calibration = json.loads((ray_dir / "calibration.json").read_text())
    reference = json.loads((local_dir / "calibration.json").read_text())
    for key in ("threshold", "eer_threshold", "temperature"):
        assert calibration[key] == pytest.approx(reference[key], abs=1e-6), key
    assert calibration["model"] == reference["model"] and calibration["split"] == "val"


def test_evaluate_on_ray_leaves_out_or_fails_on_a_bad_frame_as_the_local_run(cluster, tmp_path, checkpoint):  # noqa: F811
    store = write_jpeg_store(tmp_path / "store", STORE_VIDEOS, frames_per_clip=3, size=64)
    truncate(store / "v03/1_2.jpg", 0.4)
    (store / "v10/0_0.jpg").unlink()
    skip = ("data.on_bad_frame=skip", "calibration.enabled=false")
    local, local_dir = evaluate_store(tmp_path, store, checkpoint, "local", *skip)
    on_ray, ray_dir = evaluate_store(tmp_path, store, checkpoint, "ray", *skip, "runner=ray", "ray.actors=1")
    clips = assert_same_scores(ray_dir, local_dir)
    assert len(clips) == 38 and not {"v03/1", "v10/0"} & set(clips["clip_id"])
    assert on_ray["skipped_clips"] == local["skipped_clips"] == {"all": 2}
    assert on_ray["test/auc"] == pytest.approx(local["test/auc"], abs=1e-6)

    fail = ("calibration.enabled=false",)
    with pytest.raises(BadFrameError) as here:
        evaluate_store(tmp_path, store, checkpoint, "local_fail", *fail)
    with pytest.raises(BadFrameError) as there:
        evaluate_store(tmp_path, store, checkpoint, "ray_fail", *fail, "runner=ray", "ray.actors=1")
    assert str(there.value) == str(here.value)
    assert "v03/1_2.jpg: truncated JPEG" in str(here.value) and "data.on_bad_frame=skip" in str(here.value)
    assert not (tmp_path / "ray_fail/run/predictions.parquet").exists()
