"""Face chips for dlib's face-recognition ResNet, made from our MTCNN's five landmarks.

dlib makes its chips with ``get_face_chip(img, shape, size=150, padding=0.25)``: a similarity
transform (least squares, no reflection) takes five template points to the landmarks found by its
5-point shape predictor, and the chip is sampled bilinearly through it. The template lives in a
unit "face square" (dlib's mean face shape, ``interpolation.h``); ``padding`` widens that square by
``padding`` on every side, so chip point = ``(padding + p) / (1 + 2 * padding) * size``.

dlib's five points are not MTCNN's: dlib's predictor finds the two corners of each eye and the
base of the nose (mean-shape points 36, 39, 42, 45 and 33 of the 68-point annotation); MTCNN gives
the eye centres, the nose tip and the mouth corners. So ``MTCNN_TEMPLATE`` places MTCNN's points
where dlib's mean face has them: each eye centre is the mean of that eye's six contour points
(36-41, 42-47), the nose tip is point 30 and the mouth corners are 48 and 54. A chip from it is the
chip dlib would make from its 68-point predictor restricted to those points; docs/face_recognition.md
measures how far it lands from dlib's own 5-point chip.

As dlib does, the chip's corners are mapped through the transform's rotation and scale about the
chip centre, so that pixel ``size - 1`` lands on the far edge of the ``size * scale`` square (a
``size / (size - 1)`` stretch), and strong downscales go through an area-averaged shrink first
(dlib uses an image pyramid there).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from dfdetect.facts.dlib import DLIB_CHIP_PADDING as CHIP_PADDING
from dfdetect.facts.dlib import DLIB_INPUT_SIZE as CHIP_SIZE

# dlib's mean face (points 17-67 of the 68-point annotation, unit face square), the points used here
_MEAN_FACE_68 = {
    30: (0.490127, 0.515625),
    33: (0.490127, 0.628106),
    36: (0.121737, 0.216423), 37: (0.187122, 0.178758), 38: (0.265825, 0.179852),
    39: (0.334606, 0.231733), 40: (0.260918, 0.245099), 41: (0.182743, 0.244077),
    42: (0.645647, 0.231733), 43: (0.714428, 0.179852), 44: (0.793132, 0.178758),
    45: (0.858516, 0.216423), 46: (0.79751, 0.244077), 47: (0.719335, 0.245099),
    48: (0.254149, 0.780233), 54: (0.726104, 0.780233),
}  # fmt: skip

# dlib's 5-point template, in its predictor's order: right-of-image eye outer and inner corner,
# left-of-image eye outer and inner corner, nose base
DLIB_5_TEMPLATE = np.array([
    (0.8595674595992, 0.2134981538014),
    (0.6460604764104, 0.2289674387677),
    (0.1205750620789, 0.2137274526848),
    (0.3340850613712, 0.2290642403242),
    (0.4901123135679, 0.6277975316475),
])  # fmt: skip


def _mean(indices: range | tuple[int, ...]) -> tuple[float, float]:
    pts = np.array([_MEAN_FACE_68[i] for i in indices])
    return tuple(pts.mean(axis=0))


# MTCNN's order: left eye, right eye (as seen in the image), nose tip, mouth left, mouth right
MTCNN_TEMPLATE = np.array([
    _mean(range(36, 42)), _mean(range(42, 48)), _MEAN_FACE_68[30], _MEAN_FACE_68[48], _MEAN_FACE_68[54],
])  # fmt: skip


def template_points(template: np.ndarray, size: int = CHIP_SIZE, padding: float = CHIP_PADDING) -> np.ndarray:
    """The template's points in chip pixels."""
    return (padding + np.asarray(template, dtype=np.float64)) / (1 + 2 * padding) * size


def similarity_fit(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 least-squares similarity (rotation, uniform scale, translation; Umeyama 1991, as dlib's
    ``find_similarity_transform``) taking ``src`` points to ``dst``."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    var = (s**2).sum() / len(src)
    if var <= 0:
        raise ValueError("landmarks are all at one point")
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    e = np.eye(2)
    if np.linalg.det(cov) < 0:
        e[1, 1] = -1
    rot = u @ e @ vt
    scale = np.trace(np.diag(sig) @ e) / var
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def chip_to_image(
    landmarks: np.ndarray,
    template: np.ndarray = MTCNN_TEMPLATE,
    size: int = CHIP_SIZE,
    padding: float = CHIP_PADDING,
) -> np.ndarray:
    """2x3 matrix taking chip pixels to image pixels, built the way dlib's ``chip_details`` and
    ``extract_image_chip`` build it."""
    landmarks = np.asarray(landmarks, np.float64).reshape(-1, 2)
    if landmarks.shape != np.asarray(template).shape or not np.isfinite(landmarks).all():
        raise ValueError(f"need {len(template)} finite (x, y) landmarks, got {landmarks.shape}")
    fit = similarity_fit(template_points(template, size, padding), landmarks)
    scale = math.hypot(fit[0, 0], fit[1, 0])
    rot = fit[:, :2] / scale
    centre = fit[:, :2] @ np.array([size / 2, size / 2]) + fit[:, 2]
    stretch = scale * size / (size - 1)  # pixel size-1 lands on the rect's far edge
    m = np.zeros((2, 3))
    m[:, :2] = stretch * rot
    m[:, 2] = centre - stretch * rot @ np.array([(size - 1) / 2, (size - 1) / 2])
    return m


def warp_chip(image: np.ndarray, to_image: np.ndarray, size: int = CHIP_SIZE) -> np.ndarray:
    """Sample the ``size x size`` chip whose pixels map to ``image`` through ``to_image``
    (bilinear; outside the image is black; downscales by more than 2 area-shrink first)."""
    m = np.asarray(to_image, np.float64).copy()
    step = math.hypot(m[0, 0], m[1, 0])  # image pixels per chip pixel
    src = image
    if step > 2.0:
        corners = np.array([[0, 0, 1], [size - 1, 0, 1], [0, size - 1, 1], [size - 1, size - 1, 1]]) @ m.T
        h, w = image.shape[:2]
        x0, y0 = (max(int(math.floor(v)) - 2, 0) for v in corners.min(0))
        x1, y1 = (
            min(int(math.ceil(corners[:, 0].max())) + 3, w),
            min(int(math.ceil(corners[:, 1].max())) + 3, h),
        )
        if x1 - x0 < 2 or y1 - y0 < 2:
            return np.zeros((size, size) + image.shape[2:], dtype=image.dtype)
        k = 2.0 / step  # shrink so that one chip pixel spans two source pixels
        new_w, new_h = max(1, round((x1 - x0) * k)), max(1, round((y1 - y0) * k))
        src = cv2.resize(image[y0:y1, x0:x1], (new_w, new_h), interpolation=cv2.INTER_AREA)
        rx, ry = new_w / (x1 - x0), new_h / (y1 - y0)
        # area resize: new pixel centre j sits at old coordinate (j + 0.5) / r - 0.5
        m[:, 2] -= (x0, y0)
        m[:, 2] += 0.5
        m = np.diag([rx, ry]) @ m
        m[:, 2] -= 0.5
    return cv2.warpAffine(
        src, m, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT, borderValue=0,
    )  # fmt: skip


def face_chip(
    image: np.ndarray,
    landmarks: np.ndarray,
    size: int = CHIP_SIZE,
    padding: float = CHIP_PADDING,
    template: np.ndarray = MTCNN_TEMPLATE,
) -> np.ndarray:
    """The ``size x size`` chip of the face with these five MTCNN landmarks (``(5, 2)`` in
    ``image``'s pixels; any channel order, kept)."""
    return warp_chip(image, chip_to_image(landmarks, template, size, padding), size)


def frame_chips(
    detector, frames_bgr: list[np.ndarray], largest_only: bool = True, size: int = CHIP_SIZE
) -> list:
    """RGB chips of the faces a detector (e.g. ``MTCNNDetector``) finds in BGR frames: per frame, a
    list of ``(Face, chip)`` (only the largest face by default); faces without landmarks are skipped."""
    out = []
    for frame, faces in zip(frames_bgr, detector.detect(frames_bgr), strict=True):
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        found = [(f, face_chip(rgb, f.landmarks, size)) for f in faces if f.landmarks is not None]
        out.append(found[:1] if largest_only else found)
    return out
