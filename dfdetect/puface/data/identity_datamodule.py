"""Aligned face chips with identity labels and per-identity train/test splits (PuFace's FR data).

``source="store"`` reads a clip store's real clips (``identity_column`` of its manifest),
``source="folder"`` a folder ``<identity>/<images>``. Each image is cut into dlib's 150x150 chip by
the ``chipper`` (``dfdetect.puface.data.identity_chips.MTCNNChipper`` in the configs; ``null`` takes
the images as chips already, resized) once, and the chips are kept as lossless PNGs under
``chips_dir/<identity>/`` (resumable: chips already there are not made again). Images where no
face is found are left out, named in a warning and in ``chips_dir/no_face.json``.

Labels are the identities' indices in sorted order. Batches are ``(uint8 (B, 3, S, S), label (B,))``;
``chips(split)`` gives a whole split at once (the evaluation holds every chip in memory: 600 chips
of 150x150 are 40 MB).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from dfdetect.data.frames import BadFrameError, read_frame
from dfdetect.facts.dlib import DLIB_INPUT_SIZE
from dfdetect.puface.data.identity_table import (
    folder_faces,
    select_identities,
    split_per_identity,
    store_faces,
)
from dfdetect.utils.errors import UserError
from dfdetect.utils.io import atomic_path, write_json

log = logging.getLogger(__name__)

SOURCES = ("store", "folder")
MAX_IMAGE_BYTES = 64 * 2**20
NO_FACE_FILE = "no_face.json"


def write_png(path: str | os.PathLike, rgb: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"cannot encode {path}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.tobytes())


def read_image(path: str | os.PathLike, size: int | None = None) -> np.ndarray:
    """An RGB uint8 image; files over 64 MB are refused before decoding."""
    try:
        n = os.path.getsize(path)
    except OSError:
        raise BadFrameError(f"{path}: missing file") from None
    if n > MAX_IMAGE_BYTES:
        raise BadFrameError(f"{path}: {n} bytes, over the {MAX_IMAGE_BYTES} byte limit for an image")
    return read_frame(path, size)


class IdentityDataModule(pl.LightningDataModule):
    def __init__(
        self,
        path: str,
        chips_dir: str,
        source: str = "store",
        chipper=None,
        frames_per_clip: int = 2,
        identity_column: str = "identity",
        identities: list[str] | None = None,
        train_fraction: float = 0.7,
        split_seed: int = 0,
        chip_size: int = DLIB_INPUT_SIZE,
        batch_size: int = 32,
        num_workers: int = 0,
        chip_batch: int = 16,
        name: str | None = None,
    ):
        super().__init__()
        if source not in SOURCES:
            raise UserError(f"data.source must be one of {SOURCES}, got {source!r}")
        self.path, self.chips_dir, self.source, self.chipper = Path(path), Path(chips_dir), source, chipper
        self.frames_per_clip, self.identity_column = frames_per_clip, identity_column
        self.wanted = list(identities) if identities else None
        self.train_fraction, self.split_seed, self.chip_size = train_fraction, split_seed, chip_size
        self.batch_size, self.num_workers, self.chip_batch = batch_size, num_workers, chip_batch
        self.name = name or self.chips_dir.name  # names the dataset's cloak folders
        self.table: pd.DataFrame | None = None
        self._chips: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    # --- the table and the chips on disk -------------------------------------------------------
    def _listed(self) -> pd.DataFrame:
        if self.source == "store":
            return store_faces(self.path, self.frames_per_clip, self.identity_column)
        return folder_faces(self.path)

    def chip_path(self, row) -> Path:
        return self.chips_dir / str(row["identity"]) / str(row["name"])

    def _make_chips(self, table: pd.DataFrame) -> set[str]:
        """Cut the chips not on disk yet; the sources without a face."""
        no_face_file = self.chips_dir / NO_FACE_FILE
        no_face = set(json.loads(no_face_file.read_text())) if no_face_file.is_file() else set()
        todo = [
            r for _, r in table.iterrows() if r["source"] not in no_face and not self.chip_path(r).is_file()
        ]
        if todo:
            log.info("cutting %d face chips into %s", len(todo), self.chips_dir)
        for start in range(0, len(todo), self.chip_batch):
            rows = todo[start : start + self.chip_batch]
            images = [read_image(r["source"]) for r in rows]
            if self.chipper is None:
                chips = [cv2.resize(im, (self.chip_size,) * 2, interpolation=cv2.INTER_AREA) for im in images]
            else:
                chips = self.chipper(images)
            for row, chip in zip(rows, chips, strict=True):
                if chip is None:
                    no_face.add(row["source"])
                else:
                    write_png(self.chip_path(row), chip)
            if no_face:
                write_json(no_face_file, sorted(no_face))
        return no_face

    def prepare(self) -> pd.DataFrame:
        """List, chip and split (idempotent); the table with ``split``, ``label`` and ``chip``."""
        if self.table is not None:
            return self.table
        table = select_identities(self._listed(), self.wanted)
        no_face = self._make_chips(table)
        dropped = table["source"].isin(no_face)
        if dropped.any():
            names = table.loc[dropped, "source"].tolist()
            log.warning("%d image(s) without a face left out: %s", len(names), ", ".join(names[:10]))
        table = table[~dropped].reset_index(drop=True)
        if table.empty:
            raise UserError(f"{self.path}: no face found in any image")
        table = split_per_identity(table, self.train_fraction, self.split_seed)
        idents = sorted(table["identity"].unique())
        if len(idents) < 2:
            raise UserError(f"{self.path}: {len(idents)} identity; face recognition needs at least two")
        table["label"] = table["identity"].map({name: i for i, name in enumerate(idents)}).astype("int64")
        table["chip"] = [str(self.chip_path(r)) for _, r in table.iterrows()]
        self.table = table
        return table

    @property
    def identities(self) -> list[str]:
        return sorted(self.prepare()["identity"].unique())

    def rows(self, split: str, identity: str | None = None) -> pd.DataFrame:
        table = self.prepare()
        rows = table[table["split"] == split]
        return rows if identity is None else rows[rows["identity"] == identity]

    def chips(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """All chips of a split: uint8 ``(N, 3, S, S)`` and labels ``(N,)``."""
        if split not in self._chips:
            rows = self.rows(split)
            images = [read_image(p, self.chip_size) for p in rows["chip"]]
            x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
            self._chips[split] = (x, torch.as_tensor(rows["label"].to_numpy().copy()))
        return self._chips[split]

    def identity_chips(self, split: str, identity: str) -> torch.Tensor:
        """One identity's chips of a split (UserError if it has none)."""
        if identity not in self.identities:
            raise UserError(f"unknown identity {identity!r}; known: {self.identities}")
        x, y = self.chips(split)
        mine = x[y == self.identities.index(identity)]
        if len(mine) == 0:
            raise UserError(f"identity {identity!r} has no {split} images")
        return mine

    # --- Lightning -----------------------------------------------------------------------------
    def prepare_data(self) -> None:
        self.prepare()

    def setup(self, stage: str | None = None) -> None:
        self.prepare()

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        return DataLoader(
            TensorDataset(*self.chips(split)), batch_size=self.batch_size, shuffle=shuffle,
            num_workers=self.num_workers,
        )  # fmt: skip

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("test", False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False)
