"""Issue 20, case 3: one unreadable JPEG in a clip store killed training with a 215-line traceback,
with no skip policy and no way to check a store; a JPEG truncated to 40 % trained silently on a
grey-filled frame. Now truncated frames are errors, ``scripts/check_store.py`` lists every bad frame,
and ``data.on_bad_frame=fail|skip`` applies to the store and LitData readers alike."""

from __future__ import annotations

import csv
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from dfdetect.data import ClipDataModule
from dfdetect.data.frames import BadFrameError, read_frame
from dfdetect.utils.errors import UserError
from tests.clip_store_fakes import run_entry, store_overrides, truncate, write_jpeg_store
from tests.conftest import ROOT

VIDEOS = [(f"v{i}", i % 2, f"g{i}") for i in range(12)]


@pytest.fixture
def damaged(tmp_path) -> tuple[Path, dict[str, str]]:
    """A store with one JPEG truncated to 40 %, one not an image and one missing: path -> reason."""
    store = write_jpeg_store(tmp_path / "store", VIDEOS)
    truncate(store / "v0/0_1.jpg", 0.4)
    (store / "v3/1_0.jpg").write_bytes(b"not an image")
    (store / "v6/0_0.jpg").unlink()
    return store, {
        "v0/0_1.jpg": "truncated JPEG",
        "v3/1_0.jpg": "cannot decode",
        "v6/0_0.jpg": "missing file",
    }


def test_a_truncated_jpeg_is_an_error_never_a_grey_frame(damaged):
    store, _ = damaged
    with pytest.raises(BadFrameError, match=r"v0/0_1\.jpg: truncated JPEG \(no end-of-image marker"):
        read_frame(store / "v0/0_1.jpg", 32)
    assert isinstance(BadFrameError("x"), UserError)  # reported by the entry points as one line
    assert read_frame(store / "v0/0_0.jpg", 32).shape == (32, 32, 3)


@pytest.mark.integration
def test_check_store_lists_every_bad_frame_and_exits_non_zero(damaged, tmp_path):
    store, bad = damaged
    report = tmp_path / "report.csv"
    proc = subprocess.run(
        [sys.executable, "scripts/check_store.py", str(store), "--workers", "2", "--report", str(report)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "48 frames of 24 clips" in proc.stdout and "3 bad frame(s) in 3 clip(s)" in proc.stdout
    for rel, reason in bad.items():
        assert f"{store / rel}: {reason}" in proc.stdout
    rows = list(csv.DictReader(report.open()))
    assert {r["path"] for r in rows} == set(bad)
    assert all(r["reason"].startswith(bad[r["path"]]) and r["clip_ids"] for r in rows)
    assert "check_store" in proc.stderr  # the progress bar

    clean = write_jpeg_store(tmp_path / "clean", VIDEOS[:4])
    ok = subprocess.run(
        [sys.executable, "scripts/check_store.py", str(clean), "--no-progress"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0 and "0 bad frame(s)" in ok.stdout
    missing = subprocess.run(
        [sys.executable, "scripts/check_store.py", str(tmp_path / "nope")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2 and "no clip store at" in missing.stderr


@pytest.mark.parametrize("workers", [0, 2])
def test_skip_leaves_bad_clips_out_counts_and_logs_them(damaged, workers, caplog):
    store, bad = damaged
    dm = ClipDataModule(
        store,
        batch_size=4,
        image_size=32,
        num_workers=workers,
        split_fractions=(1, 0, 0),
        on_bad_frame="skip",
    )
    dm.setup()
    with caplog.at_level(logging.WARNING, logger="dfdetect.data.frames"):
        for _ in range(2):  # a second epoch neither re-reads nor recounts them
            seen = [c for batch in dm.dataloader("train") for c in batch["clip_id"]]
            assert sorted(seen) == sorted(set(dm.manifest["clip_id"]) - {"v0/0", "v3/1", "v6/0"})
    assert dm.skipped_clips() == {"train": 3}
    if workers == 0:  # worker processes log to their own stderr
        logged = [r.getMessage() for r in caplog.records]
        assert len(logged) == 3 and all(any(rel in m for m in logged) for rel in bad)
    with pytest.raises(BadFrameError, match="v0/0_1.jpg"):
        fail = ClipDataModule(store, image_size=32, num_workers=workers, split_fractions=(1, 0, 0))
        fail.setup()
        list(fail.dataloader("train"))


@pytest.mark.integration
def test_training_cli_fails_with_one_line_or_skips(damaged, tmp_path):
    store, _ = damaged
    # every clip read once (no balanced sampling with replacement), in a DataLoader worker
    run = (
        "trainer.max_epochs=1",
        "data.split_fractions=[0.5,0.25,0.25]",
        "data.balance=false",
        "data.num_workers=1",
    )
    failed = run_entry("train.py", *store_overrides(store, *run), log_dir=tmp_path / "fail")
    assert failed.returncode == 1
    assert "Traceback" not in failed.stderr
    last = failed.stderr.strip().splitlines()[-1]
    assert last.startswith(f"train: error: {store}/v") and "data.on_bad_frame=skip" in last, last
    assert any(reason in last for reason in ("truncated JPEG", "cannot decode", "missing file")), last

    skipped = run_entry(
        "train.py", *store_overrides(store, *run, "data.on_bad_frame=skip"), log_dir=tmp_path / "skip"
    )
    assert skipped.returncode == 0, skipped.stderr[-2000:]
    run_dir = Path(skipped.stdout.strip().splitlines()[-1].removeprefix("run dir: "))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert sum(metrics["skipped_clips"].values()) == 3
    log_text = (run_dir / "train.log").read_text()
    assert "v0/0_1.jpg: truncated JPEG" in log_text and "3 clip(s) with a bad frame left out" in log_text


def test_the_litdata_stream_follows_the_same_policy(damaged, tmp_path):
    pytest.importorskip("litdata")
    from dfdetect.data.litdata_export import export_litdata

    store, _ = damaged
    (store / "v6/0_0.jpg").write_bytes((store / "v6/0_1.jpg").read_bytes())  # an export needs every file
    out = export_litdata(store, tmp_path / "lit", split_fractions=(1, 0, 0), progress=False)
    dm = ClipDataModule(
        None,
        image_size=32,
        format="litdata",
        litdata_uri=str(out),
        split_fractions=(1, 0, 0),
        on_bad_frame="skip",
    )
    dm.setup()
    seen = [c for batch in dm.dataloader("train") for c in batch["clip_id"]]
    assert sorted(seen) == sorted(set(dm.manifest["clip_id"]) - {"v0/0", "v3/1"})
    assert dm.skipped_clips() == {"train": 2}
    fail = ClipDataModule(
        None, image_size=32, format="litdata", litdata_uri=str(out), split_fractions=(1, 0, 0)
    )
    fail.setup()
    with pytest.raises(BadFrameError, match=r"clip v(0/0|3/1) in .*: (truncated JPEG|cannot decode)"):
        list(fail.dataloader("train"))


def test_an_unknown_policy_is_refused_at_once(tmp_path):
    with pytest.raises(UserError, match=r"data.on_bad_frame must be one of \('fail', 'skip'\)"):
        ClipDataModule(tmp_path, on_bad_frame="maybe")
