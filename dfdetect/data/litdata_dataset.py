"""Clips streamed from a LitData export (see ``litdata_export``), as the same items as ``ClipDataset``.

Iterating streams the chunks (LitData shards them over DataLoader workers and, for training,
shuffles chunks and the items within them); indexing reads one clip by random access. Clips that
are not in ``frame`` (filtered out, or moved to another split by ``fit_on=val``) are skipped.
With ``balance`` each streamed clip is repeated a random number of times with mean
``len(frame) / (2 * clips of its label)``, so real and fake clips come equally often, as with the
store path's balanced sampler; a shuffle buffer keeps the repeats apart, and every repeat is
augmented anew.

A clip with an unusable frame raises ``BadFrameError`` (``on_bad_frame="fail"``) or is left out
of the stream, counted and logged (``"skip"``), as in ``ClipDataset``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping

import albumentations as A
import numpy as np
import pandas as pd
import torch
from torch.utils.data import IterableDataset, get_worker_info

from dfdetect.data.augment import augment_clip
from dfdetect.data.frames import (
    BadFrameError,
    ClipReadError,
    SkipCounter,
    check_policy,
    decode_frame,
    fail_hint,
)
from dfdetect.data.manifest import SPLITS

SHUFFLE_BUFFER = 64


def join_uri(root: str, *parts: str) -> str:
    return "/".join([root.rstrip("/"), *parts]) if "://" in root else os.path.join(root, *parts)


class StreamingClipDataset(IterableDataset):
    """Rows of a split of an exported manifest; items as ``ClipDataset``'s:
    ``clip`` uint8 (T, C, H, W), ``label``, ``clip_id``, ``video_id``, ``clip_index``, ``video_index``."""

    def __init__(
        self,
        frame: pd.DataFrame,
        uri: str,
        image_size: int | None = 240,
        transform: A.Compose | None = None,
        num_frames: int | None = None,
        frame_stride: int = 1,
        shuffle: bool = False,
        balance: bool = False,
        seed: int = 0,
        storage_options: Mapping | None = None,
        on_bad_frame: str = "fail",
        name: str = "",
        skipped: SkipCounter | None = None,
    ):
        from litdata import StreamingDataset

        missing = {"litdata_split", "litdata_index"} - set(frame.columns)
        if missing:
            raise ValueError(f"the manifest of {uri} lacks {sorted(missing)}: not a dfdetect LitData export")
        self.frame = frame.reset_index(drop=True)
        self.uri = uri
        self.image_size = image_size
        self.transform = transform
        self.num_frames = num_frames
        self.frame_stride = frame_stride
        self.balance = balance
        self.labels = self.frame["label"].to_numpy(dtype=np.int64, copy=True)
        self.video_codes, self.video_ids = pd.factorize(self.frame["video_id"], sort=False)
        self.position = {clip_id: i for i, clip_id in enumerate(self.frame["clip_id"])}
        sources = [s for s in SPLITS if s in set(self.frame["litdata_split"])]
        self.streams = {
            s: StreamingDataset(
                join_uri(uri, s), shuffle=shuffle, seed=seed, storage_options=dict(storage_options or {})
            )
            for s in sources
        }
        counts = np.bincount(self.labels, minlength=2).clip(min=1)
        self.repeats = len(self.labels) / (2.0 * counts)
        self.on_bad_frame = check_policy(on_bad_frame)
        self.skipped = skipped or SkipCounter(len(self.frame), f"{name or 'a split'} of {uri}")
        self._epoch = 0

    def __len__(self) -> int:
        return len(self.frame)

    def item(self, index: int, sample: Mapping) -> dict:
        """The dataset item at ``index`` (a position in ``frame``) from its LitData sample."""
        clip_id = self.frame.at[index, "clip_id"]
        if sample["clip_id"] != clip_id:
            raise ClipReadError(f"{self.uri}: expected clip {clip_id!r}, found {sample['clip_id']!r}")
        data, ends = memoryview(sample["frames"]), np.cumsum(sample["frame_sizes"]).tolist()
        starts = [0, *ends[:-1]]
        starts, ends = starts[:: self.frame_stride], ends[:: self.frame_stride]
        if self.num_frames is not None:
            if len(ends) < self.num_frames:
                starts += [starts[-1]] * (self.num_frames - len(ends))
                ends += [ends[-1]] * (self.num_frames - len(ends))
            starts, ends = starts[: self.num_frames], ends[: self.num_frames]
        clip = np.stack(
            [
                decode_frame(data[a:b], self.image_size, f"frame {k} of clip {clip_id} in {self.uri}")
                for k, (a, b) in enumerate(zip(starts, ends, strict=True))
            ]
        )
        if self.transform is not None:
            clip = augment_clip(self.transform, clip, seed=int(torch.randint(0, 2**31 - 1, ()).item()))
        return {
            "clip": torch.from_numpy(clip).permute(0, 3, 1, 2).contiguous(),
            "label": torch.tensor(self.labels[index]),
            "clip_id": clip_id,
            "video_id": self.frame.at[index, "video_id"],
            "clip_index": torch.tensor(index),
            "video_index": torch.tensor(int(self.video_codes[index])),
        }

    def __getitem__(self, index: int) -> dict:
        row = self.frame.iloc[index]
        return self.item(index, self.streams[row["litdata_split"]][int(row["litdata_index"])])

    def _positions(self) -> Iterator[tuple[int, dict]]:
        for stream in self.streams.values():
            for sample in stream:
                index = self.position.get(sample["clip_id"])
                if index is not None:  # copied: a sample may point into a chunk that is let go later
                    yield index, {**sample, "frames": bytes(sample["frames"])}

    def _balanced(self, rng: np.random.Generator, limit: int) -> Iterator[tuple[int, dict]]:
        buffer: list[tuple[int, dict]] = []
        yielded = 0
        for index, sample in self._positions():
            mean = self.repeats[self.labels[index]]
            buffer += [(index, sample)] * (int(mean) + int(rng.random() < mean - int(mean)))
            while len(buffer) > SHUFFLE_BUFFER and yielded < limit:
                yield buffer.pop(int(rng.integers(len(buffer))))
                yielded += 1
        rng.shuffle(buffer)
        yield from buffer[: max(0, limit - yielded)]

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        # every worker of one DataLoader iteration must agree on the epoch (LitData's shuffle order);
        # their shared base seed changes with each iteration
        self._epoch += 1
        epoch = (info.seed - info.id) % 2**31 + 1 if info is not None else self._epoch
        for stream in self.streams.values():
            stream.set_epoch(epoch)
        pairs = self._positions()
        if self.balance:
            workers, rank = (info.num_workers, info.id) if info is not None else (1, 0)
            limit = len(self) // workers + (rank < len(self) % workers)
            pairs = self._balanced(np.random.default_rng(int(torch.randint(0, 2**62, ()).item())), limit)
        for index, sample in pairs:
            if self.on_bad_frame == "fail":
                try:
                    item = self.item(index, sample)
                except BadFrameError as err:
                    raise BadFrameError(f"{err}{fail_hint()}") from None
                yield item
            elif not self.skipped.known(index):
                try:
                    item = self.item(index, sample)
                except BadFrameError as err:
                    self.skipped.record(index, sample["clip_id"], err)
                    continue
                yield item
