"""The MTCNN face detector used by the preprocessing (facenet-pytorch weights, dfdetect's cascade)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from facenet_pytorch import MTCNN

from dfdetect.preprocess.faces import Face, largest_first
from dfdetect.preprocess.mtcnn_cascade import MTCNNCascade, levels_to_skip


class MTCNNDetector:
    """MTCNN with facenet-pytorch's weights (shipped in its wheel), at full resolution.

    ``engine="cascade"`` (default) runs dfdetect's cascade (mtcnn_cascade.py), whose boxes equal
    facenet-pytorch's; its fast search leaves out the pyramid levels that only find faces smaller
    than ``min_face_size`` pixels (or than a larger ``min_face_size`` given to ``detect``),
    ``small_faces=True`` searches down to ``small_face_size`` (facenet's default, 20). ``engine="facenet"`` calls ``facenet_pytorch.MTCNN.detect`` itself.
    ``max_side`` optionally shrinks large frames first (faster, boxes then differ slightly).
    Faces below ``min_prob`` are dropped.
    """

    def __init__(
        self,
        min_face_size: float = 80,
        small_face_size: float = 20,
        thresholds: Sequence[float] = (0.6, 0.7, 0.7),
        factor: float = 0.709,
        min_prob: float = 0.9,
        max_side: int | None = None,
        engine: str = "cascade",
        device: str = "cpu",
    ):
        if engine not in ("cascade", "facenet"):
            raise ValueError(f"engine must be 'cascade' or 'facenet', got {engine!r}")
        self.min_face_size = float(min_face_size)
        self.small_face_size = float(small_face_size)
        self.min_prob = min_prob
        self.max_side = max_side
        self.engine = engine
        self.mtcnn = MTCNN(
            min_face_size=small_face_size,
            thresholds=list(thresholds),
            factor=factor,
            keep_all=True,
            device=device,
        ).eval()
        self.cascade = MTCNNCascade(self.mtcnn.pnet, self.mtcnn.rnet, self.mtcnn.onet, thresholds, factor)

    def _scale(self, shape: tuple[int, ...]) -> float:
        longest = max(shape[:2])
        return 1.0 if self.max_side is None or longest <= self.max_side else self.max_side / longest

    def _raw(self, rgb: np.ndarray, smallest: float) -> tuple[np.ndarray, np.ndarray]:
        if self.engine == "cascade":
            skip = levels_to_skip(smallest, self.small_face_size, self.cascade.factor)
            return self.cascade.detect(rgb, self.small_face_size, skip)
        self.mtcnn.min_face_size = smallest
        boxes, probs, points = self.mtcnn.detect(rgb, landmarks=True)
        if boxes is None:
            return np.zeros((0, 5), np.float32), np.zeros((0, 5, 2), np.float32)
        boxes = np.concatenate(
            [np.asarray(boxes, np.float32), np.asarray(probs, np.float32)[:, None]], axis=1
        )
        return boxes, np.asarray(points, np.float32)

    def detect_windows(
        self,
        frames: Sequence[np.ndarray],
        windows: Sequence[tuple[int, int, int, int]],
        small_faces: bool = False,
        min_face_size: float | None = None,
    ) -> list[list[Face]] | None:
        """Faces of each frame inside each window (x0, y0, x1, y1), frame-major: the whole-frame
        search's pyramid cells that lie inside the window, so a face well inside gets the box the
        whole search gives it. None where this detector cannot (``engine=facenet``, ``max_side``
        shrinking the frames): the caller then searches crops."""
        if self.engine != "cascade" or any(self._scale(f.shape) != 1.0 for f in frames):
            return None
        smallest = self.small_face_size if small_faces else max(self.min_face_size, min_face_size or 0.0)
        skip = levels_to_skip(smallest, self.small_face_size, self.cascade.factor)
        results = []
        for frame in frames:
            h, w = frame.shape[:2]
            for x0, y0, x1, y1 in windows:
                # room around the window for the R- and O-net crops of a face at its edge
                pad = (x1 - x0 + y1 - y0) // 8 + 2
                px0, py0 = max(x0 - pad, 0), max(y0 - pad, 0)
                px1, py1 = min(x1 + pad, w), min(y1 + pad, h)
                rgb = cv2.cvtColor(frame[py0:py1, px0:px1], cv2.COLOR_BGR2RGB)
                boxes, points = self.cascade.detect(
                    rgb, self.small_face_size, skip, (x0, y0, x1, y1), (px0, py0), (h, w)
                )
                faces = [
                    Face(box=b[:4], prob=float(b[4]), landmarks=p)
                    for b, p in zip(boxes, points, strict=True)
                    if b[4] >= self.min_prob
                ]
                results.append(largest_first(faces))
        return results

    def detect(
        self, frames: Sequence[np.ndarray], small_faces: bool = False, min_face_size: float | None = None
    ) -> list[list[Face]]:
        smallest = self.small_face_size if small_faces else max(self.min_face_size, min_face_size or 0.0)
        results = []
        for frame in frames:
            scale = self._scale(frame.shape)
            if min(frame.shape[:2]) * scale < 24:
                results.append([])
                continue
            small = (
                frame
                if scale == 1.0
                else cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            )
            boxes, points = self._raw(cv2.cvtColor(small, cv2.COLOR_BGR2RGB), smallest * scale)
            faces = [
                Face(box=b[:4] / scale, prob=float(b[4]), landmarks=p / scale)
                for b, p in zip(boxes, points, strict=True)
                if b[4] >= self.min_prob
            ]
            results.append(largest_first(faces))
        return results
