"""Face-clip preprocessing speed against the naive pipeline, on the same ffpp_mini videos and frames:

    python scripts/benchmark_preprocess.py [--videos ...] [--clips 16] [--max-frames 80] [--workers 2]
        [--rounds 3]

By default each of 5 videos (480p to 1080p) gives 16 clips of 5 frames laid back to back over its
first 80 frames, so both pipelines decode the same frames and no more (spreading clips over whole
videos adds the same decoding to both; docs/preprocessing.md has figures for that case).

naive (the baseline): every sampled frame through facenet-pytorch's MTCNN at full resolution (min
face 20 px, its default), one call per frame, torch using ``--threads`` threads. ours: the clip
store pipeline (dfdetect's MTCNN cascade on two keyframes per clip, tracking across clips, boxes
carried across the clip, videos spread over ``--workers`` worker processes): wall time of the
whole run, worker start-up included. decode bound: decoding the sampled frames alone in this
process. The three alternate run by run (naive, ours and the bound over all videos, in a rotating
order) over ``--rounds`` rounds in one process; figures are medians over rounds with min-max.
Prints the per-frame box agreement (IoU between the two pipelines' boxes, first round), then
``bound_ratio=<ours time / decode bound time>`` and, as its last line,
``ratio=<ours files/s / naive files/s>`` (= naive time / ours time: the same files).
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

from dfdetect.bench.rounds import rotated
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
    detector = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "face_pipeline" / "default.yaml").detector)
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


def box_agreement(naive: dict, ours: dict) -> np.ndarray:
    """IoU per sampled frame where either side has a face (a face on one side only: 0)."""
    ious = []
    for key in sorted(naive):
        a, b = naive[key], ours.get(key)
        if a is None and b is None:
            continue
        ious.append(box_iou(a, b) if a is not None and b is not None else 0.0)
    return np.asarray(ious, dtype=np.float64)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--videos", nargs="*", default=DEFAULT_VIDEOS, help="paths inside ffpp_c40_mini")
    parser.add_argument("--clips", type=int, default=16, help="clips of 5 frames per video")
    parser.add_argument(
        "--max-frames", type=int, default=80, help="clips spread over each video's first N frames"
    )
    parser.add_argument("--workers", type=int, default=2, help="ours: worker processes (0: here)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the naive run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over all videos (medians)")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    if not MINI.is_dir():
        sys.exit(f"benchmark_preprocess: error: {MINI} not found (the shared FF++ subset)")
    settings = ClipSettings(clips_per_video=args.clips, max_frames=args.max_frames, top_up=False)
    paths = [MINI / v for v in args.videos]
    n = len(paths)

    times: dict[str, list[float]] = {"naive": [], "ours": [], "bound": []}
    boxes: dict[str, dict] = {}
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        runs = {
            "naive": lambda r: naive_boxes(paths, settings, args.threads),
            "ours": lambda r: fast_boxes(args.videos, settings, args.workers, Path(tmp) / f"round{r}"),
            "bound": lambda r: ({}, decode_bound(paths, settings)),
        }
        for r in range(args.rounds):
            names = rotated(list(runs), r)
            for name in names:
                found, seconds = runs[name](r)
                times[name].append(seconds)
                boxes.setdefault(name, found)
            load.append(os.getloadavg()[0])
            print(
                f"round {r + 1}/{args.rounds} ({' '.join(names)}): naive {times['naive'][-1]:.2f} s, "
                f"ours {times['ours'][-1]:.2f} s, decode bound {times['bound'][-1]:.2f} s "
                f"(load {load[-1]:.2f})",
                flush=True,
            )
    med = {name: float(np.median(v)) for name, v in times.items()}
    frames = len(boxes["naive"])
    ious = box_agreement(boxes["naive"], boxes["ours"])
    agree = float((ious >= 0.9).mean()) if len(ious) else 0.0

    def line(label: str, name: str) -> str:
        v = times[name]
        return (
            f"{label:<30}{med[name]:9.3f} s (min {min(v):.3f}, max {max(v):.3f})  "
            f"{n / med[name]:7.3f} files/s  {frames / med[name]:7.2f} frames/s"
        )

    print(
        f"videos: {n}, sampled frames: {frames} ({args.clips} clips x {settings.frames_per_clip} in the "
        f"first {args.max_frames} frames of each) x {args.rounds} rounds; naive {args.threads} torch "
        f"threads, ours {args.workers} workers (start-up included); cores {os.cpu_count()}, "
        f"load average {min(load):.2f}-{max(load):.2f}"
    )
    print("medians over rounds of the time for all videos:")
    print(line("naive (full-resolution MTCNN):", "naive"))
    print(line("ours (clip store pipeline):", "ours"))
    print(line("decode bound:", "bound"))
    print(
        f"faces: naive {sum(v is not None for v in boxes['naive'].values())}, "
        f"ours {sum(k in boxes['ours'] for k in boxes['naive'])}; "
        f"IoU >= 0.9 on {100 * agree:.1f}% of {len(ious)} frames with a face "
        f"(median IoU {np.median(ious) if len(ious) else 0:.3f}, min {ious.min() if len(ious) else 0:.3f})"
    )
    ratios = [b / o for b, o in zip(times["naive"], times["ours"], strict=True)]
    print(f"ratio per round: min {min(ratios):.2f}, max {max(ratios):.2f}")
    print(f"bound_ratio={med['ours'] / med['bound']:.2f}")
    print(f"ratio={med['naive'] / med['ours']:.2f}")


if __name__ == "__main__":
    main()
