"""Decode every frame of a clip store, as training reads it (``frames.read_frame``), and list the
bad ones: missing, empty, truncated or undecodable files, with the clips that use them.

Decoding runs in threads (OpenCV releases the GIL while it decodes), in chunks of frames.
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from dfdetect.data.frames import BadFrameError, read_frame
from dfdetect.data.manifest import read_manifest

CHUNK = 64


@dataclass
class BadFrame:
    path: str  # relative to the store
    reason: str
    clips: list[str]


@dataclass
class StoreCheck:
    store: Path
    frames: int
    clips: int
    seconds: float
    bad: list[BadFrame] = field(default_factory=list)

    @property
    def bad_clips(self) -> int:
        return len({c for b in self.bad for c in b.clips})

    def lines(self, limit: int = 200) -> list[str]:
        out = [
            f"check_store: {self.store}: {self.frames} frames of {self.clips} clips decoded in "
            f"{self.seconds:.1f} s: {len(self.bad)} bad frame(s) in {self.bad_clips} clip(s)"
        ]
        out += [f"  {self.store / b.path}: {b.reason}" for b in self.bad[:limit]]
        if len(self.bad) > limit:
            out.append(f"  ... and {len(self.bad) - limit} more (--report FILE lists them all)")
        if self.bad:
            out.append(
                "  train without those clips with data.on_bad_frame=skip, or preprocess their source "
                "files again (delete their records/<key>.json in the store and rerun scripts/preprocess.py)"
            )
        return out

    def write_report(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["path", "reason", "n_clips", "clip_ids"])
            for b in self.bad:
                writer.writerow([b.path, b.reason, len(b.clips), " ".join(b.clips)])
        return path


def _check_chunk(store: Path, paths: list[str]) -> list[tuple[str, str]]:
    bad = []
    for rel in paths:
        try:
            read_frame(store / rel, None)
        except BadFrameError as err:
            bad.append((rel, str(err).removeprefix(f"{store / rel}: ")))
    return bad


def check_store(
    store: str | os.PathLike, workers: int | None = None, progress: bool = True, chunk: int = CHUNK
) -> StoreCheck:
    """Decode every frame the manifest of ``store`` names; ``workers`` threads (default: CPUs)."""
    store = Path(store)
    manifest = read_manifest(store)
    users: dict[str, list[str]] = {}
    for clip_id, paths in zip(manifest["clip_id"], manifest["paths"], strict=True):
        for rel in paths:
            users.setdefault(str(rel), []).append(clip_id)
    frames = list(users)
    chunks = [frames[i : i + chunk] for i in range(0, len(frames), chunk)]
    started = time.perf_counter()
    bad: list[tuple[str, str]] = []
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        results: Iterable = pool.map(lambda part: _check_chunk(store, part), chunks)
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(frames), unit="frame", desc="check_store", dynamic_ncols=True)
            for part, found in zip(chunks, results, strict=True):
                bad += found
                bar.update(len(part))
                bar.set_postfix(bad=len(bad), refresh=False)
            bar.close()
        else:
            for found in results:
                bad += found
    return StoreCheck(
        store=store,
        frames=len(frames),
        clips=len(manifest),
        seconds=time.perf_counter() - started,
        bad=[BadFrame(rel, reason, users[rel]) for rel, reason in sorted(bad)],
    )
