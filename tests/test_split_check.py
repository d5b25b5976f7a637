"""Issue 20, case 2: a small folder dataset (6 videos, each its own group) gave a validation split
with no fakes; training ran on with val/auc=nan and exit 0. Now a split a run needs that is empty or
one-class stops it before training, naming the split, its counts and the fix; the folder adapter
groups files by their person folder."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from dfdetect.data import ClipDataModule, write_manifest
from dfdetect.data.split_check import SplitError
from dfdetect.preprocess.adapters import scan
from tests.clip_store_fakes import run_entry, store_overrides, write_jpeg_store

# what was seen: data=folder, 6 videos, every file its own identity and group
SIX_VIDEOS = [(f"{'real' if i < 3 else 'fake'}/v{i}", int(i >= 3), f"id:v{i}") for i in range(6)]


@pytest.mark.integration
def test_one_class_validation_split_stops_the_cli_before_training_and_names_a_fix_that_works(tmp_path):
    store = write_jpeg_store(tmp_path / "store", SIX_VIDEOS)
    proc = run_entry("train.py", *store_overrides(store, "trainer.max_epochs=3"), log_dir=tmp_path / "logs")
    assert proc.returncode == 1, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert "Traceback" not in proc.stderr
    assert re.match(r"train: error: the val split of .*store has no fake clips", last), last
    # every split's counts, and the fixes
    assert "train 8 clips (2 real, 6 fake, 4 groups); val 2 clips (2 real, 0 fake, 1 group)" in last, last
    assert "data.split_fractions=[0.7,0.15,0.15] now" in last and "6 group(s)" in last
    # stopped before training: no epoch ran, no checkpoint, no metrics
    assert "Sanity Checking" not in proc.stdout + proc.stderr
    assert not list((tmp_path / "logs").rglob("*.ckpt")) and not list(
        (tmp_path / "logs").rglob("metrics.json")
    )

    fix = re.search(
        r"Fix: ((?:data\.split_fractions=\[[\d.,]+\] )?data\.split_seed=\d+) gives every split", last
    )
    assert fix, last
    again = run_entry(
        "train.py",
        *store_overrides(store, *fix.group(1).split(), "trainer.fast_dev_run=true"),
        log_dir=tmp_path / "again",
    )
    assert again.returncode == 0, again.stderr[-2000:]
    run_dir = Path(again.stdout.strip().splitlines()[-1].removeprefix("run dir: "))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["val/auc"] is not None and metrics["test/auc"] is not None


def test_each_entry_point_needs_only_the_splits_it_reads(tmp_path):
    # preset splits: the test split holds fakes only
    videos = [("r0", 0, "a"), ("f0", 1, "a"), ("r1", 0, "b"), ("f1", 1, "b"), ("r2", 0, "c"), ("f2", 1, "c")]
    store = write_jpeg_store(tmp_path / "store", [*videos, ("f3", 1, "d")])
    manifest = pd.read_parquet(store / "manifest.parquet")
    manifest["split"] = manifest["group"].map({"a": "train", "b": "train", "c": "val", "d": "test"})
    write_manifest(manifest, store)
    dm = ClipDataModule(store)
    with pytest.raises(
        SplitError, match=r"the test split of .* has no real clips .*test 2 clips \(0 real, 2 fake"
    ):
        dm.check_splits(["train", "val", "test"])  # train.py (test=true)
    dm.check_splits(["train", "val"])  # train.py test=false
    # evaluate.py split=test: accuracy on fakes still means something
    dm.check_splits(["test"], both_classes=False)
    unsplit = write_jpeg_store(tmp_path / "unsplit", videos)
    with pytest.raises(SplitError, match="the test split of .* is empty"):
        ClipDataModule(unsplit, split_fractions=(1.0, 0.0, 0.0)).check_splits(["test"], both_classes=False)


def test_ensemble_fitting_checks_its_parts_of_validation(tmp_path):
    videos = [(f"v{i}", i % 2, f"g{i}") for i in range(8)]
    store = write_jpeg_store(tmp_path / "store", videos)
    dm = ClipDataModule(store, split_fractions=(0.5, 0.25, 0.25), fit_on="val")
    with pytest.raises(SplitError, match=r"(fitting|selecting) part of val"):
        dm.check_splits(["train", "val"])  # val has 2 videos: its fitting part has one


def test_folder_adapter_groups_files_by_their_person_folder(tmp_path):
    for name in ("real/alice/x.mp4", "fake/alice/y.mp4", "real/bob/z.mp4", "fake/bob/w.png", "real/flat.mp4"):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    items = {it.key: it for it in scan("folder", str(tmp_path))}
    assert items["real/alice/x.mp4"].group == items["fake/alice/y.mp4"].group
    assert items["real/bob/z.mp4"].group == items["fake/bob/w.png"].group != items["real/alice/x.mp4"].group
    assert items["real/flat.mp4"].group not in {items[k].group for k in items if k != "real/flat.mp4"}
    assert items["real/alice/x.mp4"].identity == "alice"
    separate = {it.key: it for it in scan("folder", str(tmp_path), identity_from="none")}
    assert len({it.group for it in separate.values()}) == 5
    # a CSV list links rows by its identity column
    (tmp_path / "list.csv").write_text("path,label,identity\nreal/alice/x.mp4,0,al\nfake/bob/w.png,1,al\n")
    listed = {it.key: it for it in scan("folder", str(tmp_path / "list.csv"))}
    assert listed["real/alice/x.mp4"].group == listed["fake/bob/w.png"].group
