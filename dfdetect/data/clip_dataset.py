"""Random access to the clips of a clip store, as ``uint8 (T, C, H, W)`` tensors."""

from __future__ import annotations

import os
from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from dfdetect.data.augment import augment_clip


class ClipReadError(RuntimeError):
    pass


def read_frame(path: Path, size: int | None) -> np.ndarray:
    """One RGB ``(H, W, 3)`` uint8 frame; grayscale, RGBA and 16-bit images are converted."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ClipReadError(f"cannot read frame {path}")
    if size is not None and img.shape[:2] != (size, size):
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


class ClipDataset(Dataset):
    """Rows of a manifest split. Items are dicts:
    ``clip`` uint8 (T, C, H, W), ``label`` int64, ``clip_id``, ``video_id`` (str),
    ``clip_index``/``video_index`` (int64 positions in this dataset, for metrics)."""

    def __init__(
        self,
        frame: pd.DataFrame,
        store_dir: str | os.PathLike,
        image_size: int | None = 240,
        transform: A.Compose | None = None,
        num_frames: int | None = None,
    ):
        self.frame = frame.reset_index(drop=True)
        self.store_dir = Path(store_dir)
        self.image_size = image_size
        self.transform = transform
        self.num_frames = num_frames
        self.labels = self.frame["label"].to_numpy(dtype=np.int64, copy=True)
        self.video_codes, self.video_ids = pd.factorize(self.frame["video_id"], sort=False)
        self._paths = self.frame["paths"].tolist()

    def __len__(self) -> int:
        return len(self.frame)

    def frames(self, index: int) -> np.ndarray:
        paths = list(self._paths[index])
        if self.num_frames is not None:
            if len(paths) < self.num_frames:
                paths += [paths[-1]] * (self.num_frames - len(paths))
            paths = paths[: self.num_frames]
        return np.stack([read_frame(self.store_dir / p, self.image_size) for p in paths])

    def __getitem__(self, index: int) -> dict:
        clip = self.frames(index)
        if self.transform is not None:
            clip = augment_clip(self.transform, clip, seed=int(torch.randint(0, 2**31 - 1, ()).item()))
        row = self.frame.iloc[index]
        return {
            "clip": torch.from_numpy(clip).permute(0, 3, 1, 2).contiguous(),
            "label": torch.tensor(self.labels[index]),
            "clip_id": row["clip_id"],
            "video_id": row["video_id"],
            "clip_index": torch.tensor(index),
            "video_index": torch.tensor(int(self.video_codes[index])),
        }
