"""Tiny clip stores written in a test's tmp_path: JPEG frames and a manifest, videos and groups as
asked, and ways to damage a frame as users' stores get damaged."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from dfdetect.data import write_manifest
from tests.conftest import ROOT


def write_jpeg_store(
    root: Path,
    videos: list[tuple[str, int, str]],
    clips_per_video: int = 2,
    frames_per_clip: int = 2,
    size: int = 32,
) -> Path:
    """``videos``: (video_id, label, group). Every frame a small random-noise JPEG."""
    rng = np.random.default_rng(0)
    rows = []
    for video_id, label, group in videos:
        (root / video_id).mkdir(parents=True, exist_ok=True)
        for c in range(clips_per_video):
            paths = []
            for f in range(frames_per_clip):
                rel = f"{video_id}/{c}_{f}.jpg"
                img = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
                cv2.imwrite(str(root / rel), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
                paths.append(rel)
            rows.append(
                dict(
                    clip_id=f"{video_id}/{c}",
                    video_id=video_id,
                    dataset="folder",
                    method="fake" if label else "real",
                    label=label,
                    identity=group,
                    source_identity=group,
                    group=group,
                    split="",
                    frame_indices=list(range(frames_per_clip)),
                    face_boxes=[[0.0, 0.0, float(size), float(size)]] * frames_per_clip,
                    det_prob=[1.0] * frames_per_clip,
                    paths=paths,
                )
            )
    write_manifest(pd.DataFrame(rows), root)
    return root


def truncate(path: Path, keep: float = 0.4) -> None:
    """Cut a file to ``keep`` of its bytes, as an interrupted copy does."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def store_overrides(store: Path, *extra: str) -> list[str]:
    """train.py / evaluate.py overrides that read ``store`` on CPU with tiny settings."""
    return [
        "data=store",
        f"data.store={store}",
        "data.image_size=32",
        "data.net_input_size=32",
        "data.batch_size=4",
        "data.eval_batch_size=4",
        "data.num_workers=0",
        "extras.print_config=false",
        *extra,
    ]


def run_entry(script: str, *overrides: str, log_dir: Path, timeout: int = 300):
    import subprocess

    return subprocess.run(
        [
            sys.executable,
            script,
            f"paths.log_dir={log_dir}",
            f"paths.checkpoint_dir={log_dir}/checkpoints",
            *overrides,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
