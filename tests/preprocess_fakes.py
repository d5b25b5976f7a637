"""Synthetic media and a matching stand-in detector, for testing the preprocessing (and the attack's
face crops) without faces or torch: frames show bright discs ("faces") on a dark, noisy background,
and ``BlobDetector`` finds them (one box per disc, landmarks placed like a level face's)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from dfdetect.preprocess.faces import Face, largest_first

# (centre x, centre y, radius) as fractions of the frame width / height / shorter side
Disc = tuple[float, float, float]
ONE_FACE: tuple[Disc, ...] = ((0.5, 0.5, 0.25),)


def synthetic_frame(
    width: int, height: int, discs: Sequence[Disc], index: int = 0, seed: int = 0
) -> np.ndarray:
    rng = np.random.default_rng(seed * 100_003 + index)
    frame = rng.integers(0, 60, (height, width, 3), dtype=np.uint8)
    for cx, cy, r in discs:
        centre = (int(cx * width + index), int(cy * height))
        cv2.circle(frame, centre, int(r * min(width, height)), (200, 180, 170), -1)
    return frame


def write_video(
    path: str | Path,
    n_frames: int = 30,
    size: tuple[int, int] = (96, 64),
    discs: Sequence[Disc] = ONE_FACE,
    fps: float = 25.0,
    seed: int = 0,
) -> Path:
    """A small MJPG .avi (or mp4v .mp4) whose discs drift one pixel right per frame."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fourcc = cv2.VideoWriter_fourcc(*("mp4v" if path.suffix.lower() == ".mp4" else "MJPG"))
    writer = cv2.VideoWriter(str(path), fourcc, fps, size)
    if not writer.isOpened():
        raise RuntimeError(f"cannot open a video writer for {path}")
    for i in range(n_frames):
        writer.write(synthetic_frame(size[0], size[1], discs, i, seed))
    writer.release()
    return path


def write_image(
    path: str | Path, size: tuple[int, int] = (96, 80), discs: Sequence[Disc] = ONE_FACE, seed: int = 0
) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), synthetic_frame(size[0], size[1], discs, 0, seed)):
        raise RuntimeError(f"cannot write {path}")
    return path


class BlobDetector:
    """Finds the bright discs of synthetic frames. ``delay`` seconds per frame slow it down (to kill
    a run mid-way in tests); a frame of ``crash_on_width`` pixels' width kills the process (a
    stand-in for a decoder crash). Other keyword arguments are accepted and ignored, so that it can
    replace the MTCNN detector's config by overriding ``_target_`` alone."""

    def __init__(self, delay: float = 0.0, min_area: int = 30, crash_on_width: int | None = None, **_ignored):
        self.delay = delay
        self.min_area = min_area
        self.crash_on_width = crash_on_width
        self.calls = 0

    def detect(
        self, frames: Sequence[np.ndarray], small_faces: bool = False, min_face_size: float | None = None
    ) -> list[list[Face]]:
        out = []
        for frame in frames:
            self.calls += 1
            if frame.shape[1] == self.crash_on_width:
                os.kill(os.getpid(), signal.SIGKILL)
            if self.delay:
                time.sleep(self.delay)
            gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
            _, mask = cv2.threshold(gray, 120, 255, cv2.THRESH_BINARY)
            contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            faces = []
            for contour in contours:
                x, y, w, h = cv2.boundingRect(contour)
                if w * h < self.min_area:
                    continue
                box = np.array([x, y, x + w, y + h], dtype=np.float32)
                eyes_y = y + 0.4 * h
                marks = np.array(
                    [
                        [x + 0.3 * w, eyes_y],
                        [x + 0.7 * w, eyes_y],
                        [x + 0.5 * w, y + 0.6 * h],
                        [x + 0.35 * w, y + 0.8 * h],
                        [x + 0.65 * w, y + 0.8 * h],
                    ],
                    dtype=np.float32,
                )
                faces.append(Face(box=box, prob=0.99, landmarks=marks))
            out.append(largest_first(faces))
        return out
