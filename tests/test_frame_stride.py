"""data.frame_stride: every k-th stored frame of a clip, for segments of seconds from long clips."""

from __future__ import annotations

import numpy as np
import pytest

from dfdetect.data.clip_dataset import ClipDataset
from dfdetect.data.datamodule import ClipDataModule
from dfdetect.data.manifest import read_manifest
from tests.clip_store_fakes import write_jpeg_store


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    videos = [(f"v{i}", i % 2, f"g{i}") for i in range(6)]
    return write_jpeg_store(tmp_path_factory.mktemp("stride"), videos, clips_per_video=1, frames_per_clip=9)


def test_stride_keeps_every_kth_frame_then_num_frames_caps(store):
    frame = read_manifest(store)
    plain = ClipDataset(frame, store, image_size=None)
    every_fourth = ClipDataset(frame, store, image_size=None, frame_stride=4)
    full, strided = plain[0]["clip"], every_fourth[0]["clip"]
    assert full.shape[0] == 9 and strided.shape[0] == 3  # frames 0, 4, 8
    assert np.array_equal(strided.numpy(), full[[0, 4, 8]].numpy())
    capped = ClipDataset(frame, store, image_size=None, frame_stride=2, num_frames=2)[0]["clip"]
    assert np.array_equal(capped.numpy(), full[[0, 2]].numpy())
    with pytest.raises(ValueError, match="frame_stride"):
        ClipDataset(frame, store, frame_stride=0)


def test_datamodule_passes_the_stride_to_every_split_and_defaults_to_1(store):
    dm = ClipDataModule(store, image_size=None, frame_stride=2, split_fractions=(0.34, 0.33, 0.33))
    dm.setup()
    assert {d.frame_stride for d in dm.splits.values()} == {2}
    assert dm.splits["train"][0]["clip"].shape[0] == 5
    assert ClipDataModule(store).frame_stride == 1
    with pytest.raises(ValueError, match="data.frame_stride"):
        ClipDataModule(store, frame_stride=0)
