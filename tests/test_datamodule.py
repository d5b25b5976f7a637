"""The shared clip datamodule on the built-in demo data and on a hand-made still-image store."""

from __future__ import annotations

import cv2
import hydra
import numpy as np
import pandas as pd
import pytest
import torch

from dfdetect.data import ClipDataModule, write_manifest
from dfdetect.data.clip_dataset import ClipReadError
from dfdetect.data.manifest import ManifestError


@pytest.fixture
def demo_dm(train_cfg):
    def make(**kw):
        cfg = train_cfg(*[f"data.{k}={v}" for k, v in kw.items()])
        dm = hydra.utils.instantiate(cfg.data)
        dm.prepare_data()
        dm.setup("fit")
        return dm

    return make


def test_batch_contract(demo_dm):
    dm = demo_dm()
    batch = next(iter(dm.train_dataloader()))
    clip = batch["clip"]
    assert clip.dtype == torch.uint8 and clip.ndim == 5
    assert clip.shape[1:] == (5, 3, 64, 64)
    assert batch["label"].dtype == torch.int64 and set(batch["label"].tolist()) <= {0, 1}
    assert isinstance(batch["clip_id"][0], str) and isinstance(batch["video_id"][0], str)


def test_no_group_or_identity_crosses_splits(demo_dm):
    dm = demo_dm()
    df = dm.manifest
    assert df.groupby("group")["split"].nunique().max() == 1
    for column in ("identity", "source_identity", "video_id"):
        assert df.groupby(column)["split"].nunique().max() == 1, column
    assert {len(dm.splits[s]) > 0 for s in ("train", "val", "test")} == {True}


def test_augmentation_only_on_train_and_reproducible(demo_dm):
    dm = demo_dm()
    assert dm.splits["train"].transform is not None
    assert dm.splits["val"].transform is None and dm.splits["test"].transform is None
    v1, v2 = dm.splits["val"][0]["clip"], dm.splits["val"][0]["clip"]
    assert torch.equal(v1, v2)
    torch.manual_seed(0)
    a = dm.splits["train"][0]["clip"]
    torch.manual_seed(0)
    b = dm.splits["train"][0]["clip"]
    assert torch.equal(a, b)
    assert not torch.equal(a, dm.splits["train"][0]["clip"])


def test_scoring_the_train_split_is_not_augmented(demo_dm):
    dm = demo_dm()
    assert dm.dataloader("train", train=True).dataset.transform is not None
    plain = dm.dataloader("train")
    assert plain.dataset.transform is None and type(plain.sampler).__name__ == "SequentialSampler"
    with pytest.raises(ValueError, match="unknown split"):
        dm.dataset("holdout")


def test_train_loader_is_seeded(demo_dm):
    dm = demo_dm()
    torch.manual_seed(3)
    first = next(iter(dm.train_dataloader()))
    torch.manual_seed(3)
    again = next(iter(dm.train_dataloader()))
    assert first["clip_id"] == again["clip_id"]
    assert torch.equal(first["clip"], again["clip"])


def test_balancing_on_and_off(demo_dm):
    on = demo_dm(balance=True).train_dataloader()
    off = demo_dm(balance=False).train_dataloader()
    assert type(on.sampler).__name__ == "WeightedRandomSampler"
    assert type(off.sampler).__name__ == "RandomSampler"


def write_still_store(root, n_real=6, n_fake=6, mode="rgb"):
    """A store of single still images (T = 1), in several pixel formats."""
    rows = []
    for i in range(n_real + n_fake):
        label = int(i >= n_real)
        vid = f"img{i:02d}"
        (root / vid).mkdir(parents=True)
        img = np.full((50, 40, 3), 40 + 15 * i, np.uint8)
        if mode == "gray":
            img = img[..., 0]
        cv2.imwrite(str(root / vid / "0.png"), img)
        rows.append(
            dict(
                clip_id=f"{vid}/0",
                video_id=vid,
                dataset="stills",
                method="fake" if label else "real",
                label=label,
                identity=f"id{i}",
                source_identity=f"id{i}",
                group=f"g{i}",
                split="",
                frame_indices=[0],
                face_boxes=[[0.0, 0.0, 40.0, 50.0]],
                det_prob=[1.0],
                paths=[f"{vid}/0.png"],
            )
        )
    write_manifest(pd.DataFrame(rows), root)


@pytest.mark.parametrize("mode", ["rgb", "gray"])
def test_stills_are_clips_of_one_frame(tmp_path, mode):
    write_still_store(tmp_path, mode=mode)
    dm = ClipDataModule(tmp_path, batch_size=4, image_size=32, split_fractions=(0.5, 0.25, 0.25))
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["clip"].shape[1:] == (1, 3, 32, 32)


def test_clip_model_can_ask_for_repeated_frames(tmp_path):
    write_still_store(tmp_path)
    dm = ClipDataModule(tmp_path, image_size=32, num_frames=5, split_fractions=(0.5, 0.25, 0.25))
    dm.setup("fit")
    clip = dm.splits["train"][0]["clip"]
    assert clip.shape == (5, 3, 32, 32) and all(torch.equal(clip[0], clip[i]) for i in range(5))


def test_missing_frame_names_the_file(tmp_path):
    write_still_store(tmp_path)
    dm = ClipDataModule(tmp_path, image_size=32, split_fractions=(1.0, 0.0, 0.0))
    dm.setup("fit")
    path = tmp_path / dm.splits["train"].frame.iloc[0]["paths"][0]
    path.write_bytes(b"not an image")
    with pytest.raises(ClipReadError, match=path.name):
        dm.splits["train"][0]


def test_bad_manifest_is_rejected(tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest"):
        ClipDataModule(tmp_path).setup("fit")
    write_still_store(tmp_path)
    df = pd.read_parquet(tmp_path / "manifest.parquet")
    df.loc[0, "label"] = 3
    with pytest.raises(ManifestError, match="labels"):
        write_manifest(df, tmp_path)
