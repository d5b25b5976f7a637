"""Face crops: a square around the face centre, rotated so that the eye line is level, resampled
to ``size x size`` in one affine warp (large downscales go through an area-averaged resize of the
region of interest first, so that crops do not alias)."""

from __future__ import annotations

import math

import cv2
import numpy as np


def eye_angle(landmarks: np.ndarray | None) -> float:
    """Angle (radians) of the line from the left to the right eye; 0 when level or unknown."""
    if landmarks is None:
        return 0.0
    (lx, ly), (rx, ry) = landmarks[0], landmarks[1]
    if rx <= lx:
        return 0.0
    return math.atan2(ry - ly, rx - lx)


def crop_side(box: np.ndarray, margin: float) -> float:
    """Side of the square crop: the box's longer side enlarged by ``margin`` (0.3 = 15 % each side)."""
    return float(max(box[2] - box[0], box[3] - box[1]) * (1.0 + margin))


def _affine(centre: tuple[float, float], side: float, angle: float, size: int) -> np.ndarray:
    """3x3 matrix taking source pixel indices to crop pixel indices (what cv2.warpAffine wants);
    ``centre`` is in continuous coordinates and lands on the crop's centre."""
    k = size / side
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, s], [-s, c]]) * k
    out_centre = np.array([(size - 1) / 2, (size - 1) / 2])
    src_centre = np.array(centre) - 0.5
    m = np.eye(3)
    m[:2, :2] = rot
    m[:2, 2] = out_centre - rot @ src_centre
    return m


def warp_face(
    frame: np.ndarray, centre: tuple[float, float], side: float, angle: float, size: int = 240
) -> np.ndarray:
    """The ``size x size`` crop of ``frame`` centred on ``centre``, ``side`` source pixels wide,
    rotated by ``-angle``; outside the frame is black."""
    m = _affine(centre, side, angle, size)
    src = frame
    k = size / side
    if k < 1.0:
        half = side * math.sqrt(0.5) + 2
        h, w = frame.shape[:2]
        x0, y0 = max(int(centre[0] - half), 0), max(int(centre[1] - half), 0)
        x1, y1 = min(int(math.ceil(centre[0] + half)), w), min(int(math.ceil(centre[1] + half)), h)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return np.zeros((size, size, frame.shape[2]), dtype=frame.dtype)
        roi = frame[y0:y1, x0:x1]
        new_w, new_h = max(1, round((x1 - x0) * k)), max(1, round((y1 - y0) * k))
        src = cv2.resize(roi, (new_w, new_h), interpolation=cv2.INTER_AREA)
        rx, ry = new_w / (x1 - x0), new_h / (y1 - y0)
        # source pixel p -> resized-roi pixel q = (p - origin + 0.5) * r - 0.5
        to_src = np.array([[rx, 0, (0.5 - x0) * rx - 0.5], [0, ry, (0.5 - y0) * ry - 0.5], [0, 0, 1]])
        m = m @ np.linalg.inv(to_src)
    interp = cv2.INTER_LINEAR if k <= 1.5 else cv2.INTER_CUBIC
    return cv2.warpAffine(
        src, m[:2], (size, size), flags=interp, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0)
    )


def map_points(
    points: np.ndarray, centre: tuple[float, float], side: float, angle: float, size: int
) -> np.ndarray:
    """Where source points land in the crop, both in continuous pixel coordinates (pixel ``i``
    spans ``[i, i + 1)``, as detector boxes and landmarks do)."""
    m = _affine(centre, side, angle, size)
    pts = np.asarray(points, dtype=float) - 0.5
    return pts @ m[:2, :2].T + m[:2, 2] + 0.5
