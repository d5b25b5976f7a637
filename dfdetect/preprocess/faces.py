"""Face detection interface: the ``Face`` record and what a detector does (the MTCNN detector is
in mtcnn_detector.py, which imports torch; this module stays light).

A detector takes full-resolution BGR frames and returns, per frame, the faces found (boxes and
landmarks in the frame's own pixels), largest first. Its fast search may miss small faces; callers
ask for ``small_faces=True`` (slower) where the fast search found nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Face:
    box: np.ndarray  # (4,) float32 x1, y1, x2, y2
    prob: float
    landmarks: np.ndarray | None = None  # (5, 2): left eye, right eye, nose, mouth left, mouth right

    @property
    def area(self) -> float:
        return float(max(self.box[2] - self.box[0], 0) * max(self.box[3] - self.box[1], 0))


class FaceDetector(Protocol):
    def detect(
        self, frames: Sequence[np.ndarray], small_faces: bool = False, min_face_size: float | None = None
    ) -> list[list[Face]]:
        """``min_face_size`` (pixels) may raise the fast search's smallest face size for speed."""
        ...


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def largest_first(faces: list[Face]) -> list[Face]:
    return sorted(faces, key=lambda f: f.area, reverse=True)
