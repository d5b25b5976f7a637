from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from dfdetect.data.manifest import MANIFEST_COLUMNS, MANIFEST_NAME, read_manifest
from dfdetect.data.splits import assign_grouped_splits
from dfdetect.demo import render as demo
from dfdetect.demo.baselines import baseline_test_auc, clip_features
from dfdetect.demo.render import DemoConfig, build_demo_store

SMALL = DemoConfig(n_groups=6, clips_per_video=2, image_size=96)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return build_demo_store(tmp_path_factory.mktemp("demo"), SMALL, progress=False)


@pytest.fixture(scope="module")
def manifest(store):
    return read_manifest(store)


def _store_files(store: Path) -> dict[str, bytes]:
    return {str(p.relative_to(store)): p.read_bytes() for p in sorted(store.rglob("*")) if p.is_file()}


def test_manifest_columns_and_types(manifest):
    assert list(manifest.columns) == MANIFEST_COLUMNS
    assert set(manifest["dataset"]) == {"demo"}
    assert set(manifest["split"]) == {""}
    assert set(zip(manifest["method"], manifest["label"], strict=True)) == {("real", 0), ("demo_swap", 1)}
    for row in manifest.itertuples():
        assert row.clip_id == f"{row.video_id}/{row.frame_indices[0]}"
        assert all(isinstance(v, str) for v in (row.identity, row.source_identity, row.group))
        assert list(row.frame_indices) == list(range(row.frame_indices[0], row.frame_indices[0] + 5))
        assert list(row.paths) == [f"{row.video_id}/{t:05d}.jpg" for t in row.frame_indices]
        assert list(row.det_prob) == [1.0] * 5
        boxes = np.array([list(b) for b in row.face_boxes], dtype=float)
        assert boxes.shape == (5, 4)
        assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
        assert (boxes > -0.1 * SMALL.image_size).all() and (boxes < 1.1 * SMALL.image_size).all()


def test_counts_and_images(store, manifest):
    n_identities = SMALL.n_groups * SMALL.identities_per_group
    n_real_videos = n_identities * SMALL.videos_per_identity
    assert (
        (manifest["label"] == 0).sum()
        == (manifest["label"] == 1).sum()
        == n_real_videos * SMALL.clips_per_video
    )
    assert (manifest.groupby("video_id").size() == SMALL.clips_per_video).all()
    assert manifest["video_id"].nunique() == 2 * n_real_videos
    assert (manifest["paths"].map(len) == SMALL.frames_per_clip).all()
    paths = [p for clip_paths in manifest["paths"] for p in clip_paths]
    assert len(set(paths)) == len(paths)
    for path in paths[:: len(paths) // 20]:
        image = cv2.imread(str(store / path))
        assert image is not None and image.shape == (SMALL.image_size, SMALL.image_size, 3)


def test_clips_are_consecutive_frames_of_one_longer_video(manifest):
    starts = manifest.groupby("video_id")["frame_indices"].apply(lambda f: sorted(int(i[0]) for i in f))
    expected = [0, SMALL.video_length - SMALL.frames_per_clip]
    assert all(s == expected for s in starts)


def test_fakes_swap_within_a_group(manifest):
    reals, fakes = manifest[manifest["label"] == 0], manifest[manifest["label"] == 1]
    assert (reals["identity"] == reals["source_identity"]).all()
    assert (fakes["identity"] != fakes["source_identity"]).all()
    group_of = dict(zip(reals["identity"], reals["group"], strict=True))
    assert fakes["identity"].map(group_of).eq(fakes["group"]).all()
    assert fakes["source_identity"].map(group_of).eq(fakes["group"]).all()
    identities_per_group = manifest.groupby("group")[["identity", "source_identity"]].agg(
        lambda col: set(col)
    )
    for ids in identities_per_group.itertuples():
        assert ids.identity == ids.source_identity
        assert len(ids.identity) == SMALL.identities_per_group
    # every fake video is the face-swapped twin of a real video of its source identity
    real_videos = set(reals["video_id"])
    for row in fakes.drop_duplicates("video_id").itertuples():
        driving_video, swapped_in = row.video_id.rsplit("_", 1)
        assert driving_video in real_videos and swapped_in == row.identity
        assert driving_video.startswith(row.source_identity)


def test_same_config_gives_identical_store(store, tmp_path):
    again = build_demo_store(tmp_path, SMALL, progress=False, num_workers=1)
    assert again.name == store.name
    assert _store_files(again) == _store_files(store)


def test_second_call_hits_the_cache(store):
    manifest_path = store / MANIFEST_NAME
    mtime = manifest_path.stat().st_mtime_ns
    assert build_demo_store(store.parent, SMALL) == store
    assert manifest_path.stat().st_mtime_ns == mtime
    assert [p.name for p in store.parent.iterdir()] == [store.name]  # no temporary dirs left behind


def test_failed_build_leaves_no_store(tmp_path, monkeypatch):
    def crash(*args, **kwargs):
        raise RuntimeError("killed")

    monkeypatch.setattr(demo, "_render_identity", crash)
    with pytest.raises(RuntimeError):
        build_demo_store(tmp_path, SMALL, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_artifact_strength_changes_fakes_only(store, manifest, tmp_path):
    clean = build_demo_store(tmp_path, SMALL, artifact_strength=0.0, progress=False)
    assert clean != store
    assert read_manifest(clean).equals(manifest)
    for row in manifest.iloc[:: len(manifest) // 12].itertuples():
        path = row.paths[0]
        same = (clean / path).read_bytes() == (store / path).read_bytes()
        assert same == (row.label == 0), path


def test_overrides_and_config_hash():
    assert demo.demo_store_dir("x", DemoConfig(seed=1)) != demo.demo_store_dir("x", DemoConfig(seed=2))
    with pytest.raises(ValueError):
        DemoConfig(identities_per_group=1)


@pytest.mark.slow
def test_baselines_default_config(tmp_path_factory):
    """The acceptance criteria of the demo data (about a minute: run with ``-m slow``)."""
    root = tmp_path_factory.mktemp("demo_default")
    aucs = {}
    for strength in (1.0, 0.0):
        store = build_demo_store(root, artifact_strength=strength, progress=False)
        manifest = read_manifest(store)
        splits = assign_grouped_splits(manifest, seed=0)
        colour, highfreq = clip_features(store, manifest)
        aucs[strength] = (
            baseline_test_auc(colour, manifest["label"], splits),
            baseline_test_auc(highfreq, manifest["label"], splits),
        )
    assert aucs[1.0][0] <= 0.6 and aucs[0.0][0] <= 0.6
    assert aucs[1.0][1] > 0.9
    assert abs(aucs[0.0][1] - 0.5) < 0.15
