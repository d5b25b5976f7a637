"""The clip store end to end, with synthetic media and a stand-in detector: per-file statuses for
bad input, manifest and crops, resume, kill -9 and resume, the Hydra entry point, training on it."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from dfdetect.data.manifest import read_manifest
from dfdetect.preprocess import media
from dfdetect.preprocess.adapters import scan
from dfdetect.preprocess.runner import run_preprocess
from dfdetect.preprocess.settings import ClipSettings
from dfdetect.preprocess.store import StoreSettingsError
from dfdetect.run.preprocess import settings_from_config
from tests.conftest import CONF_DIR, ROOT, compose_config, repo_env
from tests.preprocess_fakes import BlobDetector, synthetic_frame, write_image, write_video

SETTINGS = ClipSettings(clips_per_video=3, size=48)
# the data configs that scripts/preprocess.py accepts (each has a dfdetect/conf/preprocess/<name>.yaml)
RAW_DATA_CONFIGS = "ffpp_mini ffpp celebdf voxcelebth celebfom celebblend fcelebdf folder".split()
TWO_FACES = ((0.3, 0.5, 0.2), (0.75, 0.5, 0.12))


def good_tree(root: Path, videos: int = 3) -> Path:
    for i in range(videos):
        write_video(root / ("real" if i % 2 == 0 else "fake") / f"v{i}.avi", n_frames=30, seed=i)
    return root


@pytest.fixture
def messy_tree(tmp_path) -> Path:
    root = good_tree(tmp_path / "raw")
    write_video(root / "fake/ok.mp4", n_frames=25)
    write_video(root / "fake/two_faces.avi", n_frames=25, discs=TWO_FACES)
    write_video(root / "real/no_face.avi", n_frames=25, discs=())
    write_video(root / "fake/short.avi", n_frames=3)
    full = write_video(tmp_path / "full.avi", n_frames=60).read_bytes()
    (root / "fake/truncated.avi").write_bytes(full[: len(full) // 2])
    (root / "fake/empty.mp4").write_bytes(b"")
    (root / "real/not_a_video.mp4").write_text("this is text, not a video\n" * 50)
    frame = synthetic_frame(96, 80, ((0.5, 0.5, 0.3),))
    cv2.imwrite(str(root / "real/gray.png"), cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(root / "fake/rgba.png"), np.dstack([frame, np.full(frame.shape[:2], 200, np.uint8)]))
    cv2.imwrite(str(root / "real/deep.png"), frame.astype(np.uint16) * 257)
    write_image(root / "fake/large.jpg", size=(640, 480))
    write_image(root / "real/no_face.jpg", discs=())
    (root / "fake/broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    return root


def run(raw: Path, store: Path, **kwargs):
    items = scan("folder", str(raw))
    detector = kwargs.pop("detector", BlobDetector)
    settings = kwargs.pop("settings", SETTINGS)
    return run_preprocess(
        items, store, settings, detector, progress=False, workers=kwargs.pop("workers", 0), **kwargs
    )


def status_of(store: Path) -> dict[str, tuple[str, str]]:
    df = pd.read_parquet(store / "status.parquet")
    return {v: (s, r) for v, s, r in zip(df["video_id"], df["status"], df["reason"], strict=True)}


def test_bad_input_gets_a_status_and_the_rest_is_processed(messy_tree, tmp_path, monkeypatch):
    monkeypatch.setattr(media, "REDUCE_ABOVE_PIXELS", 100_000)
    store = tmp_path / "store"
    summary = run(messy_tree, store)
    status = status_of(store)
    ok = [
        "real/v0",
        "fake/v1",
        "real/v2",
        "fake/ok",
        "fake/two_faces",
        "real/gray",
        "fake/rgba",
        "real/deep",
        "fake/large",
    ]
    for vid in ok:
        assert status[vid][0] == "ok", (vid, status[vid])
    assert "several faces" in status["fake/two_faces"][1]
    assert "1/2 resolution" in status["fake/large"][1]
    assert status["real/no_face.avi"] == ("skipped", "no face in 3 of 3 sampled clips")
    assert status["real/no_face.jpg"] == ("skipped", "no face found")
    assert status["fake/short"][0] == "skipped" and "shorter than one clip" in status["fake/short"][1]
    assert status["fake/empty"] == ("failed", f"{messy_tree / 'fake/empty.mp4'}: empty file (0 bytes)")
    assert status["real/not_a_video"][0] == "failed" and "cannot open" in status["real/not_a_video"][1]
    assert status["fake/broken"][0] == "failed" and "broken.png" in status["fake/broken"][1]
    assert status["fake/truncated"][0] == "ok" and "stream ends at frame" in status["fake/truncated"][1]
    assert (summary.ok, summary.skipped, summary.failed) == (
        sum(s == "ok" for s, _ in status.values()),
        sum(s == "skipped" for s, _ in status.values()),
        sum(s == "failed" for s, _ in status.values()),
    )
    assert summary.failed >= 3 and summary.skipped >= 3 and summary.files == len(status)

    manifest = read_manifest(store)
    per_video = manifest.groupby("video_id").size()
    stills = ("real/gray", "fake/rgba", "real/deep", "fake/large")
    assert all(per_video[v] == 3 for v in ok if v not in stills)
    assert all(per_video[v] == 1 for v in stills)
    video_rows = manifest[manifest["video_id"] == "real/v0"]
    assert all(len(p) == 5 for p in video_rows["paths"])
    assert all(len(b) == 5 for b in video_rows["face_boxes"])
    first = list(video_rows["frame_indices"].iloc[0])
    assert first == list(range(first[0], first[0] + 5))
    for paths in manifest["paths"]:
        for p in paths:
            img = cv2.imread(str(store / p))
            assert img is not None and img.shape == (48, 48, 3)
    large = manifest[manifest["video_id"] == "fake/large"].iloc[0]
    x1, y1, x2, y2 = large["face_boxes"][0]
    assert 0.5 * 640 - 10 < (x1 + x2) / 2 < 0.5 * 640 + 10 and x2 - x1 > 200  # source pixels, not reduced
    on_disk = {p.relative_to(store).as_posix() for p in (store / "frames").rglob("*.jpg")}
    assert on_disk == {p for paths in manifest["paths"] for p in paths}
    assert json.loads((store / "summary.json").read_text())["clips"] == len(manifest)


def test_rerun_skips_finished_files_and_redoes_changed_ones(tmp_path):
    raw, store = good_tree(tmp_path / "raw", videos=3), tmp_path / "store"
    first = run(raw, store)
    manifest = read_manifest(store)
    records = {p: p.stat().st_mtime_ns for p in (store / "records").rglob("*.json")}
    again = run(raw, store)
    assert (again.processed, again.already_done) == (0, first.files)
    pd.testing.assert_frame_equal(read_manifest(store), manifest)
    assert {p: p.stat().st_mtime_ns for p in records} == records

    write_video(raw / "real/v0.avi", n_frames=40, seed=7)  # the source changed: redo it alone
    changed = run(raw, store)
    assert changed.processed == 1
    assert read_manifest(store)["clip_id"].tolist() != manifest["clip_id"].tolist()

    with pytest.raises(StoreSettingsError, match="other preprocessing settings"):
        run(raw, store, settings=ClipSettings(clips_per_video=2, size=48))
    fresh = run(raw, store, settings=ClipSettings(clips_per_video=2, size=48), overwrite=True)
    assert fresh.processed == 3 and fresh.clips == 6


def test_a_crashing_worker_costs_only_its_file(tmp_path):
    raw = good_tree(tmp_path / "raw", videos=5)
    write_video(raw / "fake/crash.avi", n_frames=20, size=(104, 64))
    detector = functools.partial(BlobDetector, crash_on_width=104)
    summary = run(raw, tmp_path / "store", detector=detector, workers=2)
    status = status_of(tmp_path / "store")
    assert status["fake/crash"][0] == "failed" and "worker process died" in status["fake/crash"][1]
    assert all(s == "ok" for v, (s, _) in status.items() if v != "fake/crash")
    assert (summary.ok, summary.failed, summary.clips) == (5, 1, 15)


def preprocess_cmd(raw: Path, store: Path, *extra: str, delay: float = 0.0) -> list[str]:
    return [
        sys.executable,
        str(ROOT / "scripts/preprocess.py"),
        "data=folder",
        f"data.raw_dir={raw}",
        f"data.store={store}",
        "data.sampling.clips_per_video=3",
        "face.size=48",
        "detector._target_=tests.preprocess_fakes.BlobDetector",
        f"+detector.delay={delay}",
        "progress=false",
        f"hydra.run.dir={store.parent / 'hydra'}",
        *extra,
    ]


# the stand-in detector lives in tests/, importable from the repository root
SCRIPT_ENV = repo_env()


def records_snapshot(store: Path) -> dict[str, tuple[int, str]]:
    return {p.name: (p.stat().st_mtime_ns, p.read_text()) for p in (store / "records").rglob("*.json")}


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.integration
@pytest.mark.parametrize("workers", [2, pytest.param(0, marks=pytest.mark.slow)])
def test_kill_9_then_rerun_gives_the_uninterrupted_manifest(tmp_path, workers):
    raw = good_tree(tmp_path / "raw", videos=6)
    store = tmp_path / "store"
    # 6 detector calls per video at 0.1 s: about 0.6 s per video
    cmd = preprocess_cmd(raw, store, f"workers={workers}", delay=0.1)
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=SCRIPT_ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 120
        while time.time() < deadline and len(list((store / "records").rglob("*.json"))) < 2:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)  # the run only: its workers must notice and stop
        proc.wait()
        deadline = time.time() + 10
        while time.time() < deadline and group_alive(proc.pid):
            time.sleep(0.2)
        assert not group_alive(proc.pid), "worker processes outlived the killed run"
    finally:
        if group_alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
    before = records_snapshot(store)
    assert 2 <= len(before) < 6 and not (store / "manifest.parquet").exists()

    rerun = subprocess.run(
        preprocess_cmd(raw, store, "workers=1", delay=0.1),
        cwd=ROOT,
        env=SCRIPT_ENV,
        capture_output=True,
        text=True,
    )
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"{len(before)} were already done" in rerun.stdout
    after = records_snapshot(store)
    assert len(after) == 6
    assert all(after[name] == value for name, value in before.items())  # nothing finished was redone
    assert not any((store / ".tmp").iterdir())

    run(raw, tmp_path / "clean")  # uninterrupted, same clip settings as the command line's
    pd.testing.assert_frame_equal(read_manifest(store), read_manifest(tmp_path / "clean"))
    manifest = read_manifest(store)
    on_disk = {p.relative_to(store).as_posix() for p in (store / "frames").rglob("*.jpg")}
    assert on_disk == {p for paths in manifest["paths"] for p in paths}
    for p in on_disk:
        assert cv2.imread(str(store / p)).shape == (48, 48, 3)


@pytest.mark.integration
def test_script_exits_nonzero_only_when_nothing_was_processed(tmp_path):
    raw = tmp_path / "raw"
    (raw / "fake").mkdir(parents=True)
    (raw / "fake/empty.mp4").write_bytes(b"")
    write_video(raw / "real/no_face.avi", n_frames=10, discs=())
    result = subprocess.run(
        preprocess_cmd(raw, tmp_path / "store", "workers=1"),
        cwd=ROOT,
        env=SCRIPT_ENV,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "no source file gave a clip" in result.stderr
    assert "failed   " in result.stdout and "empty file" in result.stdout
    status = pd.read_parquet(tmp_path / "store/status.parquet")
    assert sorted(status["status"]) == ["failed", "skipped"]


@pytest.mark.parametrize("name", RAW_DATA_CONFIGS)
def test_data_configs_compose_for_training(tmp_path, name):
    import hydra

    cfg = compose_config("train.yaml", [f"data={name}", f"data.store={tmp_path / 'store'}"], tmp_path)
    assert not {"raw_dir", "adapter", "sampling"} & set(cfg.data)  # preprocessing keys stay apart
    datamodule = hydra.utils.instantiate(cfg.data)
    assert datamodule.store_dir == tmp_path / "store"
    with pytest.raises(hydra.errors.InstantiationException, match="unexpected keyword argument 'stor_dir'"):
        hydra.utils.instantiate(cfg.data, stor_dir="typo")


def test_each_preprocess_option_belongs_to_a_data_config():
    options = {p.stem for p in (CONF_DIR / "preprocess").glob("*.yaml")} - {"default"}
    assert options == set(RAW_DATA_CONFIGS)
    assert all((CONF_DIR / "data" / f"{name}.yaml").is_file() for name in options)


def preprocess_config(*overrides: str) -> DictConfig:
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        return compose(config_name="preprocess.yaml", overrides=list(overrides))


@pytest.mark.parametrize("name", RAW_DATA_CONFIGS)
def test_data_configs_compose_for_preprocessing(tmp_path, name):
    cfg = preprocess_config(f"data={name}", f"paths.root_dir={tmp_path}")
    train = compose_config("train.yaml", [f"data={name}"], tmp_path)
    assert cfg.data.adapter.name == name
    assert cfg.data.store == train.data.store  # preprocessing writes the store that train.py reads
    assert settings_from_config(cfg).clips_per_video == 16
    moved = preprocess_config(f"data={name}", "data.raw_dir=raw", f"data.store={tmp_path}")
    assert (moved.data.raw_dir, moved.data.store) == ("raw", str(tmp_path))


@pytest.mark.parametrize("name", ["demo", "store"])
def test_data_configs_without_raw_files_cannot_be_preprocessed(name):
    import hydra

    with pytest.raises(hydra.errors.MissingConfigException, match=f"Could not find 'preprocess/{name}'"):
        preprocess_config(f"data={name}")


def test_training_datamodule_reads_a_preprocessed_store(tmp_path):
    import hydra

    raw = good_tree(tmp_path / "raw", videos=6)
    store = tmp_path / "store"
    run(raw, store)
    cfg = compose_config(
        "train.yaml",
        ["data=folder", f"data.store={store}", "data.image_size=48", "data.num_workers=0"],
        tmp_path,
    )
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.setup("fit")
    item = datamodule.splits["train"][0]
    assert item["clip"].shape == (5, 3, 48, 48)
    assert sum(len(d) for d in datamodule.splits.values()) == 18
