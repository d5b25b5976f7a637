"""Identity data for PuFace: chips with identity labels from a folder or a clip store's real clips,
split per identity; bad input (an identity with one image, a non-face image) named clearly."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest
import torch

from dfdetect.puface.data.identity_datamodule import IdentityDataModule
from dfdetect.puface.data.identity_table import split_per_identity, store_faces
from dfdetect.utils.errors import UserError
from tests.clip_store_fakes import write_jpeg_store
from tests.conftest import SHARED


def write_folder(root, counts: dict[str, int], size: int = 40):
    rng = np.random.default_rng(1)
    for ident, n in counts.items():
        (root / ident).mkdir(parents=True)
        for i in range(n):
            cv2.imwrite(str(root / ident / f"{i}.png"), rng.integers(0, 255, (size, size, 3), dtype=np.uint8))
    return root


def test_folder_source_chips_labels_and_split(tmp_path):
    write_folder(tmp_path / "raw", {"bob": 10, "alice": 5, "carol": 2})
    dm = IdentityDataModule(str(tmp_path / "raw"), str(tmp_path / "chips"), source="folder", chip_size=24)
    table = dm.prepare()
    assert dm.identities == ["alice", "bob", "carol"]
    counts = table.groupby(["identity", "split"]).size().to_dict()
    assert counts == {("alice", "train"): 4, ("alice", "test"): 1, ("bob", "train"): 7, ("bob", "test"): 3,
                      ("carol", "train"): 1, ("carol", "test"): 1}  # fmt: skip
    x, y = dm.chips("train")
    assert x.dtype == torch.uint8 and tuple(x.shape) == (12, 3, 24, 24)
    assert sorted(y.tolist()) == [0] * 4 + [1] * 7 + [2]
    assert len(list((tmp_path / "chips" / "bob").glob("*.png"))) == 10
    xb, yb = next(iter(dm.train_dataloader()))
    assert xb.shape[1:] == (3, 24, 24) and yb.dtype == torch.int64
    # the same seed gives the same split; another seed another one
    again = IdentityDataModule(str(tmp_path / "raw"), str(tmp_path / "chips"), source="folder", chip_size=24)
    assert again.prepare()["split"].tolist() == table["split"].tolist()
    other = split_per_identity(table.drop(columns="split"), 0.7, seed=5)
    assert other["split"].tolist() != table["split"].tolist()


def test_store_source_reads_real_clips_only_and_keeps_clips_together(tmp_path):
    videos = [(f"v{i}", 0, f"id{i % 3}") for i in range(6)] + [("fake0", 1, "id0")]
    store = write_jpeg_store(tmp_path / "store", videos, clips_per_video=2, frames_per_clip=5)
    table = store_faces(store, frames_per_clip=2)
    assert len(table) == 6 * 2 * 2 and not table["source"].str.contains("fake0").any()
    assert sorted(table["identity"].unique()) == ["id0", "id1", "id2"]
    split = split_per_identity(table, 0.5, seed=0)
    assert (split.groupby("group")["split"].nunique() == 1).all()
    dm = IdentityDataModule(str(store), str(tmp_path / "chips"), frames_per_clip=2, chip_size=16)
    assert len(dm.chips("train")[0]) + len(dm.chips("test")[0]) == 24


def test_identity_with_one_image_is_a_clear_error(tmp_path):
    write_folder(tmp_path / "raw", {"bob": 4, "solo": 1})
    dm = IdentityDataModule(str(tmp_path / "raw"), str(tmp_path / "chips"), source="folder", chip_size=16)
    with pytest.raises(UserError, match="identity 'solo' has one image"):
        dm.prepare()


def test_missing_folder_and_unknown_identity_are_clear_errors(tmp_path):
    with pytest.raises(UserError, match="no face folder"):
        IdentityDataModule(str(tmp_path / "nope"), str(tmp_path / "c"), source="folder").prepare()
    write_folder(tmp_path / "raw", {"a": 2, "b": 2})
    with pytest.raises(UserError, match=r"unknown identities \['zed'\]"):
        IdentityDataModule(
            str(tmp_path / "raw"), str(tmp_path / "c"), source="folder", identities=["zed"]
        ).prepare()


@pytest.mark.skipif(not (SHARED / "data/samples/celebfom").is_dir(), reason="needs ../shared/data/samples")
def test_image_without_a_face_is_left_out_and_named(tmp_path, caplog):
    from dfdetect.puface.data.identity_chips import MTCNNChipper

    raw = tmp_path / "raw"
    for ident, files in {"emma": ["Emma Stone_real.png", "Emma Stone_fake.png"],
                         "will": ["Will Smith_real.png", "Kate Winslet_real.png"]}.items():  # fmt: skip
        (raw / ident).mkdir(parents=True)
        for f in files:
            shutil.copy(SHARED / "data/samples/celebfom" / f, raw / ident / f)
    cv2.imwrite(str(raw / "will" / "wall.png"), np.full((120, 120, 3), 128, np.uint8))
    dm = IdentityDataModule(str(raw), str(tmp_path / "chips"), source="folder", chipper=MTCNNChipper())
    with caplog.at_level("WARNING"):
        table = dm.prepare()
    assert len(table) == 4 and "wall.png" in caplog.text
    assert json.loads((tmp_path / "chips" / "no_face.json").read_text()) == [str(raw / "will" / "wall.png")]
    assert dm.chips("train")[0].shape[1:] == (3, 150, 150)
