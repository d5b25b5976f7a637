"""One file -> its face clips in memory, or the reason it has none (the CPU half of a prediction,
run in worker processes). Never raises for bad input."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from dfdetect.predict.inputs import InputItem
from dfdetect.preprocess.crops import MemoryCropWriter
from dfdetect.preprocess.faces import FaceDetector
from dfdetect.preprocess.media import MAX_IMAGE_PIXELS
from dfdetect.preprocess.pipeline import FAILED, OK, process_item
from dfdetect.preprocess.settings import ClipSettings

# why a file has no verdict; a reason reads "<code>: <detail>"
REASONS = (
    "missing",
    "unsupported_type",
    "too_large",
    "decode_error",
    "too_short",
    "no_face",
    "abstained",  # the detector scored no clip (ABNet: an identity without references)
    "error",
)


@dataclass
class PreparedClip:
    track: int
    start: int
    frame_indices: list[int]
    boxes: list[list[float]]  # source pixels, one box per frame
    frames: np.ndarray  # (T, H, W, 3) uint8 RGB crops


@dataclass
class PreparedFile:
    path: str
    kind: str
    label: int | None = None
    clips: list[PreparedClip] = field(default_factory=list)
    n_faces: int = 0  # most faces seen in one frame
    reason: str = ""  # set when there is nothing to score
    note: str = ""  # what the face pipeline noticed (several faces, clips lost...)
    seconds: float = 0.0

    @property
    def scorable(self) -> bool:
        return not self.reason and bool(self.clips)


def _file_problem(item: InputItem, max_bytes: int | None) -> str:
    path = Path(item.path)
    if not path.exists():
        if path.is_symlink():
            return f"missing: broken link to {os.readlink(path)}"
        return "missing: no such file"
    if not path.is_file():
        return "unsupported_type: not a regular file"
    if item.kind == "other":
        return f"unsupported_type: not a video or image ({path.suffix or 'no extension'})"
    size = path.stat().st_size
    if size == 0:
        return "decode_error: empty file (0 bytes)"
    if max_bytes is not None and size > max_bytes:
        return f"too_large: {size} bytes, over predict.max_bytes={max_bytes}"
    return ""


def _reason_of(kind: str, status: str, reason: str, stats: dict, settings: ClipSettings) -> str:
    if status == FAILED:
        return f"decode_error: {reason}"
    if stats.get("too_large"):
        return f"too_large: {reason}"
    if kind == "video" and stats.get("n_frames", 0) < settings.frames_per_clip:
        return f"too_short: {reason}"
    return f"no_face: {reason or 'no face found'}"


def resize_crops(frames: np.ndarray, size: int | None) -> np.ndarray:
    if size is None or frames.shape[1:3] == (size, size):
        return frames
    return np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in frames])


def prepare_file(
    item: InputItem,
    detector: FaceDetector,
    settings: ClipSettings,
    max_pixels: int | None = MAX_IMAGE_PIXELS,
    max_bytes: int | None = None,
    image_size: int | None = None,
    max_faces: int = 1,
) -> PreparedFile:
    """Probe, decode, detect and crop ``item`` as the preprocessing pipeline does for a clip store
        (the same settings give the same crops), keeping the crops in memory; ``max_faces`` > 1 tracks
    that many faces per clip (each clip's ``track`` says which face of the file it shows)."""
    t0 = time.perf_counter()
    out = PreparedFile(path=item.path, kind=item.kind, label=item.label)
    out.reason = _file_problem(item, max_bytes)
    if not out.reason:
        writer = MemoryCropWriter(settings)
        result = process_item(
            Path(item.path), item.kind, detector, settings, Path("."), "", max_pixels, writer, max_faces
        )
        out.n_faces = int(result.stats.get("max_faces", 0))
        out.note = result.reason if result.status == OK else ""
        if result.status == OK:
            for clip in result.clips:
                frames = np.stack([writer.crops[name] for name in clip.paths])
                out.clips.append(
                    PreparedClip(
                        clip.face,
                        clip.start,
                        clip.frame_indices,
                        clip.face_boxes,
                        resize_crops(frames, image_size),
                    )
                )
        else:
            out.reason = _reason_of(item.kind, result.status, result.reason, result.stats, settings)
    out.seconds = time.perf_counter() - t0
    return out
