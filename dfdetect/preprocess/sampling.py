"""Where clips start: spread evenly over (the central ``spread`` fraction of) a video."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _start_range(n_frames: int, length: int, spread: float) -> tuple[int, int] | None:
    """Inclusive range of clip starts inside the central ``spread`` fraction of the video."""
    if n_frames < length or length < 1:
        return None
    if not 0.0 < spread <= 1.0:
        raise ValueError(f"spread must be in (0, 1], got {spread}")
    region = min(n_frames, max(length, round(n_frames * spread)))
    lo = (n_frames - region) // 2
    return lo, lo + region - length


def plan_clip_starts(n_frames: int, count: int, length: int, spread: float = 1.0) -> list[int]:
    """``count`` distinct clip starts, one centred in each of ``count`` equal segments of the region
    (fewer where the video has fewer possible starts; none where it is shorter than one clip)."""
    bounds = _start_range(n_frames, length, spread)
    if bounds is None or count < 1:
        return []
    lo, hi = bounds
    region = hi - lo + length
    centres = lo + (np.arange(count) + 0.5) * region / count
    starts = np.clip(np.floor(centres - length / 2).astype(int), lo, hi)
    return sorted(set(starts.tolist()))


def top_up_starts(
    n_frames: int,
    count: int,
    length: int,
    kept: Sequence[int],
    failed: Sequence[int] = (),
    spread: float = 1.0,
) -> list[int]:
    """Up to ``count`` replacement starts for clips that were lost (no face, or beyond the end of a
    stream shorter than announced). They are taken where faces were found (closer to a kept clip
    than to a failed one), each as far as possible from every clip already tried."""
    bounds = _start_range(n_frames, length, spread)
    if bounds is None or count < 1:
        return []
    candidates = np.arange(bounds[0], bounds[1] + 1)
    tried = np.asarray(sorted({*kept, *failed}), dtype=int)
    candidates = candidates[~np.isin(candidates, tried)]
    if len(kept) and len(failed) and len(candidates):
        to_kept = np.abs(candidates[:, None] - np.asarray(kept)[None, :]).min(axis=1)
        to_failed = np.abs(candidates[:, None] - np.asarray(failed)[None, :]).min(axis=1)
        candidates = candidates[to_kept < to_failed]
    if not len(candidates):
        return []
    distance = (
        np.abs(candidates[:, None] - tried[None, :]).min(axis=1).astype(float)
        if len(tried)
        else np.full(len(candidates), np.inf)
    )
    chosen: list[int] = []
    for _ in range(min(count, len(candidates))):
        best = int(np.argmax(distance))
        chosen.append(int(candidates[best]))
        distance = np.minimum(distance, np.abs(candidates - candidates[best]))
        distance[best] = -1
    return sorted(chosen)
