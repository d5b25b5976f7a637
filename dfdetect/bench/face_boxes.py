"""Boxes of the face pipeline (tracking across clips) against per-frame full-resolution MTCNN:

    python scripts/benchmark_face_boxes.py [--videos 7]   (dfdetect bench face-boxes) [--track-region 3.0] [--redetect-every 4]
        [--keyframes 2] [--no-refine-small] [--refine-motion-iou 0.9]

For each video (7 of ffpp_c40_mini, 480p to 1080p, 16 clips of 5 frames over the whole video, as predict.py
and the stores sample them) the pipeline runs twice: with tracking (``face.track_region``) and
without (every clip's keyframes searched whole, the pipeline before #28). Reference: dfdetect's
MTCNN cascade (boxes equal facenet-pytorch's) on every sampled frame, whole frame, faces down to
``--ref-min-face`` pixels. Prints for both the share of frames whose largest-face box has
IoU >= 0.9 with the reference, the clips found, the keyframes searched whole and near, and the
detection CPU seconds (process time: steadier than wall time on a loaded machine).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

from dfdetect.bench.face_options import add_refine_arguments, refine_line, refine_settings
from dfdetect.bench.preprocess import DEFAULT_VIDEOS as PREPROCESS_VIDEOS
from dfdetect.preprocess.crops import MemoryCropWriter
from dfdetect.preprocess.faces import box_iou
from dfdetect.preprocess.media import iter_frames
from dfdetect.preprocess.mtcnn_detector import MTCNNDetector
from dfdetect.preprocess.pipeline import process_item
from dfdetect.preprocess.settings import ClipSettings
from dfdetect.utils.paths import shared_dir

MINI = shared_dir() / "data" / "ffpp_c40_mini"
# the store benchmark's five (480p to 1080p), a panning kitchen and a distant walking actor (1080p:
# faces small against the frame, where searching near the face pays most)
DEFAULT_VIDEOS = [
    *PREPROCESS_VIDEOS,
    "original/actors/01__kitchen_pan.mp4",
    "original/actors/09__walking_down_street_outside_angry.mp4",
]


def agreement(boxes: dict, reference: dict, threshold: float = 0.9) -> tuple[float, int, float]:
    """Share of frames (either side has a face) where IoU >= threshold; their count; median IoU.
    A frame with a face on one side only counts as IoU 0."""
    ious = []
    for key in sorted(set(boxes) | set(reference)):
        a, b = boxes.get(key), reference.get(key)
        if a is None and b is None:
            continue
        ious.append(box_iou(a, b) if a is not None and b is not None else 0.0)
    if not ious:
        return 1.0, 0, 1.0
    ious = np.asarray(ious)
    return float((ious >= threshold).mean()), len(ious), float(np.median(ious))


def pipeline_boxes(path: Path, detector, settings: ClipSettings) -> tuple[dict, dict]:
    t0 = time.process_time()
    result = process_item(path, "video", detector, settings, Path("."), "", writer=MemoryCropWriter(settings))
    stats = dict(result.stats, cpu=time.process_time() - t0)
    boxes = {}
    for clip in result.clips:
        if clip.face == 0:
            for index, box in zip(clip.frame_indices, clip.face_boxes, strict=True):
                boxes[(str(path), index)] = np.asarray(box, np.float32)
    return boxes, stats


def reference_boxes(path: Path, frames: list[int], detector) -> dict:
    out = {}
    for index, frame in iter_frames(path, frames):
        faces = detector.detect([frame], small_faces=True)[0]
        out[(str(path), index)] = faces[0].box if faces else None
    return {k: v for k, v in out.items() if v is not None}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--videos", type=int, default=len(DEFAULT_VIDEOS))
    parser.add_argument("--paths", nargs="*", default=None, help="videos instead of ffpp_c40_mini's")
    parser.add_argument("--track-region", type=float, default=ClipSettings.track_region)
    parser.add_argument("--redetect-every", type=int, default=ClipSettings.redetect_every)
    parser.add_argument(
        "--keyframes", type=int, default=ClipSettings.keyframes, help="face.keyframes (both runs)"
    )
    add_refine_arguments(parser)
    parser.add_argument("--ref-min-face", type=float, default=20.0)
    args = parser.parse_args(argv)
    if args.paths:
        paths = [Path(p) for p in args.paths]
    elif MINI.is_dir():
        paths = [MINI / v for v in DEFAULT_VIDEOS[: args.videos]]
    else:
        sys.exit(f"face_boxes: error: {MINI} not found (the shared FF++ subset)")
    detector = MTCNNDetector()
    reference = MTCNNDetector(min_face_size=args.ref_min_face, small_face_size=args.ref_min_face)
    base = ClipSettings(keyframes=args.keyframes, **refine_settings(args))
    tracked = dataclasses.replace(base, track_region=args.track_region, redetect_every=args.redetect_every)
    whole = dataclasses.replace(base, track_region=0.0)
    rows = {"tracked": ({}, []), "whole": ({}, [])}
    ref: dict = {}
    for n, path in enumerate(paths, 1):
        frames = set()
        for name, settings in (("tracked", tracked), ("whole", whole)):
            boxes, stats = pipeline_boxes(path, detector, settings)
            rows[name][0].update(boxes)
            rows[name][1].append(stats)
            frames |= {k[1] for k in boxes}
        mine = reference_boxes(path, sorted(frames), reference)
        ref.update(mine)
        t, w = rows["tracked"][1][-1], rows["whole"][1][-1]
        shares = [
            agreement({k: v for k, v in rows[name][0].items() if k[0] == str(path)}, mine)[0]
            for name in ("tracked", "whole")
        ]
        print(
            f"[{n}/{len(paths)}] {path.name}: IoU >= 0.9 on {100 * shares[0]:.1f}% / {100 * shares[1]:.1f}%, "
            f"clips {t['clips']} / {w['clips']}, "
            f"cpu {t['cpu']:.2f} / {w['cpu']:.2f} s (tracked / whole), scene cuts {t['scene_cuts']}",
            flush=True,
        )
    print(
        f"videos: {len(paths)}; reference: the cascade on every sampled frame, faces >= {args.ref_min_face:g} px; "
        f"face.keyframes={args.keyframes}, {refine_line(base)}"
    )
    for name, (boxes, stats) in rows.items():
        share, count, median = agreement(boxes, ref)
        print(
            f"{name:8s} IoU >= 0.9 on {100 * share:.1f}% of {count} frames (median IoU {median:.3f}); "
            f"clips {sum(s['clips'] for s in stats)}; keyframes searched whole "
            f"{sum(s['detector_frames'] for s in stats)}, near {sum(s['near_frames'] for s in stats)}, "
            f"again {sum(s['refined_frames'] for s in stats)}, "
            f"faces at a window edge {sum(s.get('edge_frames', 0) for s in stats)}; "
            f"cpu {sum(s['cpu'] for s in stats):.1f} s"
        )


if __name__ == "__main__":
    main()
