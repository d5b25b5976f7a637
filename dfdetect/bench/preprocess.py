"""Face-clip preprocessing speed against the naive pipeline, on the same ffpp_mini videos and frames:

    python scripts/benchmark_preprocess.py [--videos ...] [--clips 16] [--max-frames 80] [--workers 2]

By default each of 5 videos (480p to 1080p) gives 16 clips of 5 frames laid back to back over its
first 80 frames, so both pipelines decode the same frames and no more (spreading clips over whole
videos adds the same decoding to both; docs/preprocessing.md has figures for that case).

naive: every sampled frame through facenet-pytorch's MTCNN at full resolution (min face 20 px, its
default), one call per frame, torch using every core. fast: the clip store pipeline (dfdetect's
MTCNN cascade on two keyframes per clip, skipping the pyramid levels of faces far smaller than the
one being tracked, boxes carried across the clip, videos spread over worker processes): wall time
of the whole run, worker start-up included. Prints the per-frame box agreement (IoU between the two
pipelines' boxes), then ``bound_ratio=<fast seconds / seconds to decode the sampled frames>``
(worker start-up included in fast) and, as its last line, ``ratio=<naive seconds / fast seconds>``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import OmegaConf

from dfdetect.preprocess.adapters import scan
from dfdetect.preprocess.faces import box_iou
from dfdetect.preprocess.media import iter_frames, probe_video
from dfdetect.preprocess.mtcnn_detector import MTCNNDetector
from dfdetect.preprocess.runner import run_preprocess
from dfdetect.preprocess.sampling import plan_clip_starts
from dfdetect.preprocess.settings import ClipSettings
from dfdetect.utils.paths import CONF_DIR, project_root, shared_dir

ROOT = project_root()
MINI = shared_dir() / "data" / "ffpp_c40_mini"
DEFAULT_VIDEOS = [
    "original/youtube/183.mp4",  # 1280x720
    "original/youtube/866.mp4",  # 1920x1080
    "manipulated/Deepfakes/469_481.mp4",  # 854x480
    "manipulated/NeuralTextures/672_720.mp4",  # 1280x720
    "original/actors/07__talking_against_wall.mp4",  # 1920x1080
]


def naive_boxes(paths: list[Path], settings: ClipSettings, threads: int) -> tuple[dict, float]:
    """(video key, frame) -> largest full-resolution face box (or None), and the wall time."""
    torch.set_num_threads(threads)
    detector = MTCNNDetector(engine="facenet", min_face_size=20, min_prob=0.9)
    out = {}
    t0 = time.perf_counter()
    for path in paths:
        n = min(probe_video(path).n_frames, settings.max_frames or 10**9)
        starts = plan_clip_starts(n, settings.clips_per_video, settings.frames_per_clip, settings.spread)
        wanted = [s + k for s in starts for k in range(settings.frames_per_clip)]
        for index, frame in iter_frames(path, wanted):
            faces = detector.detect([frame])[0]
            out[(path.relative_to(MINI).as_posix(), index)] = faces[0].box if faces else None
    return out, time.perf_counter() - t0


def decode_bound(paths: list[Path], settings: ClipSettings) -> float:
    """Seconds to decode the sampled frames alone (no detection, no crops)."""
    t0 = time.perf_counter()
    for path in paths:
        n = min(probe_video(path).n_frames, settings.max_frames or 10**9)
        starts = plan_clip_starts(n, settings.clips_per_video, settings.frames_per_clip, settings.spread)
        for _ in iter_frames(path, [s + k for s in starts for k in range(settings.frames_per_clip)]):
            pass
    return time.perf_counter() - t0


def fast_boxes(keys: list[str], settings: ClipSettings, workers: int, store: Path) -> tuple[dict, float]:
    items = [it for it in scan("ffpp_mini", str(MINI)) if it.key in keys]
    detector = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "preprocess.yaml").detector)
    t0 = time.perf_counter()
    run_preprocess(items, store, settings, detector, workers=workers, threads_per_worker=1, progress=False)
    seconds = time.perf_counter() - t0
    manifest = pd.read_parquet(store / "manifest.parquet")
    key_of = {it.video_id: it.key for it in items}
    out = {}
    for row in manifest.itertuples():
        for index, box in zip(row.frame_indices, row.face_boxes, strict=True):
            out[(key_of[row.video_id], int(index))] = np.asarray(box, dtype=np.float32)
    return out, seconds


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--videos", nargs="*", default=DEFAULT_VIDEOS, help="paths inside ffpp_c40_mini")
    parser.add_argument("--clips", type=int, default=16, help="clips of 5 frames per video")
    parser.add_argument(
        "--max-frames", type=int, default=80, help="clips spread over each video's first N frames"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the naive run")
    args = parser.parse_args(argv)
    if not MINI.is_dir():
        sys.exit(f"benchmark needs the shared data at {MINI}")
    settings = ClipSettings(clips_per_video=args.clips, max_frames=args.max_frames, top_up=False)
    paths = [MINI / v for v in args.videos]

    # fast runs before and after naive, and the mean counts, so that a load change on a shared
    # machine during the (long) naive run does not favour either side
    with tempfile.TemporaryDirectory() as tmp:
        bound_before = decode_bound(paths, settings)
        fast, fast_before = fast_boxes(args.videos, settings, args.workers, Path(tmp) / "before")
        naive, naive_s = naive_boxes(paths, settings, args.threads)
        _, fast_after = fast_boxes(args.videos, settings, args.workers, Path(tmp) / "after")
        bound_after = decode_bound(paths, settings)
    fast_s = (fast_before + fast_after) / 2
    bound_s = (bound_before + bound_after) / 2

    frames = sorted(naive)
    ious = []
    for key in frames:
        a, b = naive[key], fast.get(key)
        if a is None and b is None:
            continue
        ious.append(box_iou(a, b) if a is not None and b is not None else 0.0)
    ious = np.asarray(ious)
    agree = float((ious >= 0.9).mean()) if len(ious) else 0.0
    print(
        f"videos: {len(paths)}, sampled frames: {len(frames)} "
        f"({args.clips} clips x {settings.frames_per_clip} in the first {args.max_frames} frames of each)"
    )
    print(
        f"naive: {naive_s:.1f} s = {len(frames) / naive_s:.2f} frames/s (full resolution, {args.threads} threads)"
    )
    print(
        f"fast:  {fast_s:.1f} s = {len(frames) / fast_s:.2f} frames/s ({args.workers} workers, incl. start-up; "
        f"{fast_before:.1f} s before naive, {fast_after:.1f} s after)"
    )
    print(
        f"faces: naive {sum(v is not None for v in naive.values())}, fast {sum(k in fast for k in frames)}; "
        f"IoU >= 0.9 on {100 * agree:.1f}% of {len(ious)} frames with a face "
        f"(median IoU {np.median(ious) if len(ious) else 0:.3f}, min {ious.min() if len(ious) else 0:.3f})"
    )
    print(
        f"decode bound: {bound_s:.1f} s (decoding the sampled frames in this process; {bound_before:.1f} / {bound_after:.1f} s)"
    )
    print(f"load average: {os.getloadavg()[0]:.2f} (cores {os.cpu_count()})")
    print(f"bound_ratio={fast_s / bound_s:.2f}")
    print(f"ratio={naive_s / fast_s:.2f}")


if __name__ == "__main__":
    main()
