"""Random access to the clips of a clip store, as ``uint8 (T, C, H, W)`` tensors.

A clip with an unusable frame (``frames.py``) raises :class:`BadFrameError` when indexed; a
DataLoader fetches whole batches through ``__getitems__``, where ``on_bad_frame="skip"`` leaves
such clips out of the batch (a batch whose clips are all bad gets the next good clip instead).
"""

from __future__ import annotations

import os
from pathlib import Path

import albumentations as A
import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from dfdetect.data.augment import augment_clip
from dfdetect.data.frames import (
    BadFrameError,
    ClipReadError,
    SkipCounter,
    check_policy,
    fail_hint,
    read_frame,
)

__all__ = ["BadFrameError", "ClipDataset", "ClipReadError", "read_frame"]


class ClipDataset(Dataset):
    """Rows of a manifest split. Items are dicts:
    ``clip`` uint8 (T, C, H, W), ``label`` int64, ``clip_id``, ``video_id`` (str),
    ``clip_index``/``video_index`` (int64 positions in this dataset, for metrics).

    ``frame_stride`` k keeps every k-th stored frame of a clip (first, k+1-th, ...), then
    ``num_frames`` caps (or pads, repeating the last) the count: a store of 64-frame clips read with
    ``frame_stride=4`` gives 16 frames spanning 61 source frames (about 2 s at 30 fps)."""

    def __init__(
        self,
        frame: pd.DataFrame,
        store_dir: str | os.PathLike,
        image_size: int | None = 240,
        transform: A.Compose | None = None,
        num_frames: int | None = None,
        frame_stride: int = 1,
        on_bad_frame: str = "fail",
        name: str = "",
        skipped: SkipCounter | None = None,
    ):
        self.frame = frame.reset_index(drop=True)
        self.store_dir = Path(store_dir)
        self.image_size = image_size
        self.transform = transform
        self.num_frames = num_frames
        if frame_stride < 1:
            raise ValueError(f"frame_stride must be at least 1, got {frame_stride}")
        self.frame_stride = frame_stride
        self.labels = self.frame["label"].to_numpy(dtype=np.int64, copy=True)
        self.video_codes, self.video_ids = pd.factorize(self.frame["video_id"], sort=False)
        self._paths = self.frame["paths"].tolist()
        self.on_bad_frame = check_policy(on_bad_frame)
        self.skipped = skipped or SkipCounter(len(self.frame), f"{name or 'a split'} of {self.store_dir}")

    def __len__(self) -> int:
        return len(self.frame)

    def frames(self, index: int) -> np.ndarray:
        paths = list(self._paths[index])[:: self.frame_stride]
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

    def __getitems__(self, indices: list[int]) -> list[dict]:
        """A batch's items (the DataLoader's path): with ``on_bad_frame="skip"`` without the clips
        that have a bad frame."""
        if self.on_bad_frame == "fail":
            try:
                return [self[i] for i in indices]
            except BadFrameError as err:
                raise BadFrameError(f"{err}{fail_hint(self.store_dir)}") from None
        items = [item for i in indices if (item := self._item_or_skip(i)) is not None]
        start = indices[-1] if indices else 0
        for k in range(1, len(self) + 1):  # never an empty batch
            if items:
                break
            item = self._item_or_skip((start + k) % len(self))
            items += [item] if item is not None else []
        if not items:
            raise BadFrameError(f"every clip of {self.skipped.where} has a bad frame")
        return items

    def _item_or_skip(self, index: int) -> dict | None:
        if self.skipped.known(index):
            return None
        try:
            return self[index]
        except BadFrameError as err:
            self.skipped.record(index, self.frame.at[index, "clip_id"], err)
            return None
