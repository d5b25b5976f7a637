"""Reading source media: video probing and sparse frame decoding, and robust still-image decoding.

Frames come back as OpenCV BGR ``uint8 (H, W, 3)`` arrays; nothing converts a full frame to RGB
(detection runs on small RGB copies, crops are warped from the BGR frame).

Sizes are checked before anything is decoded: a still whose header (read by PIL, which decodes
nothing on open) or a video whose stream header announces more than ``max_pixels`` pixels per
image raises ``MediaTooLarge`` (a decompression bomb would otherwise be decoded whole).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv"}
)
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
# Stills and video frames over this many pixels are refused unread (preprocess max_image_pixels).
MAX_IMAGE_PIXELS = 100_000_000
# Stills over this are decoded at 1/2, 1/4 or 1/8 resolution (faces stay far above the crop size).
REDUCE_ABOVE_PIXELS = 40_000_000
# A gap longer than this between wanted frames is crossed by seeking instead of decoding through.
SEEK_MIN_GAP = 1500


class MediaError(RuntimeError):
    """The file cannot be read as the media kind it claims to be."""


class MediaTooLarge(MediaError):
    """The header announces more pixels per image than the cap: nothing was decoded."""

    def __init__(self, width: int, height: int, cap: int, what: str = ""):
        self.width, self.height, self.cap = width, height, cap
        super().__init__(
            f"too large: {width}x{height} pixels{what} ({width * height / 1e6:.3g} MP), over the cap of "
            f"{cap / 1e6:g} MP (max_image_pixels)"
        )


def check_pixels(width: int, height: int, max_pixels: int | None, what: str = "") -> None:
    """Raise ``MediaTooLarge`` when ``width x height`` exceeds ``max_pixels`` (None: no cap)."""
    if max_pixels is not None and width * height > max_pixels:
        raise MediaTooLarge(width, height, max_pixels, what)


def media_kind(path: str | os.PathLike) -> str | None:
    suffix = Path(path).suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    if suffix in IMAGE_EXTENSIONS:
        return "image"
    return None


@dataclass(frozen=True)
class VideoInfo:
    n_frames: int
    fps: float
    width: int
    height: int


def _check_nonempty(path: Path) -> None:
    if not path.is_file():
        raise MediaError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise MediaError(f"{path}: empty file (0 bytes)")


def _open(path: Path) -> cv2.VideoCapture:
    _check_nonempty(path)
    # one decoder thread: as fast per frame here, and worker processes already use every core
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
    if not cap.isOpened():
        raise MediaError(f"{path}: cannot open as a video (not a video, or truncated before its index)")
    return cap


def probe_video(path: str | os.PathLike) -> VideoInfo:
    cap = _open(Path(path))
    try:
        info = VideoInfo(
            n_frames=max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), 0),
            fps=float(cap.get(cv2.CAP_PROP_FPS) or 0.0),
            width=int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            height=int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        )
    finally:
        cap.release()
    if info.width <= 0 or info.height <= 0:
        raise MediaError(f"{path}: no video stream")
    return info


def iter_frames(path: str | os.PathLike, wanted: Iterable[int]) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(index, bgr)`` for the wanted frame indices, in increasing order, decoding sequentially
    (``grab`` for frames that are not wanted) and seeking across very long gaps. Stops early, without
    error, where the stream ends or breaks; the caller sees which indices never came."""
    path = Path(path)
    targets = sorted(set(int(i) for i in wanted))
    if not targets:
        return
    cap = _open(path)
    try:
        pos = 0
        for target in targets:
            if target - pos > SEEK_MIN_GAP and cap.set(cv2.CAP_PROP_POS_FRAMES, target):
                if int(cap.get(cv2.CAP_PROP_POS_FRAMES)) == target:
                    pos = target
            while pos < target:
                if not cap.grab():
                    return
                pos += 1
            ok, frame = cap.read()
            if not ok or frame is None:
                return
            pos += 1
            yield target, frame
    finally:
        cap.release()


def count_frames(path: str | os.PathLike) -> int:
    """Frames that actually decode (container frame counts can be wrong for damaged files)."""
    cap = _open(Path(path))
    n = 0
    try:
        while cap.grab():
            n += 1
    finally:
        cap.release()
    return n


@dataclass(frozen=True)
class Still:
    bgr: np.ndarray
    # source pixels per decoded pixel (1 unless a very large image was decoded reduced)
    scale: int
    note: str


def _to_uint8(img: np.ndarray) -> np.ndarray:
    if img.dtype == np.uint8:
        return img
    if img.dtype == np.uint16:
        return (img // 257).astype(np.uint8)
    if np.issubdtype(img.dtype, np.floating):
        return (np.clip(np.nan_to_num(img), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return np.clip(img, 0, 255).astype(np.uint8)


def _image_size(path: Path) -> tuple[int, int]:
    """Header-only size; PIL's decompression-bomb limit is lifted because nothing is decoded here."""
    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        with Image.open(path) as header:
            return header.size
    except Exception as exc:  # PIL raises many types for "not an image"
        raise MediaError(f"{path}: not a readable image ({type(exc).__name__}: {exc})") from exc
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def read_still(
    path: str | os.PathLike, max_pixels: int | None = MAX_IMAGE_PIXELS, reduce_above: int | None = None
) -> Still:
    """Decode any still as BGR uint8: grayscale, alpha, 16-bit and float images are converted, EXIF
    orientation is applied, and very large images are decoded at a reduced resolution. A still
    over ``max_pixels`` (None: no cap) raises ``MediaTooLarge`` before any decoding."""
    path = Path(path)
    _check_nonempty(path)
    width, height = _image_size(path)
    check_pixels(width, height, max_pixels)
    limit = reduce_above or REDUCE_ABOVE_PIXELS
    reduction, flag = 1, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH
    for factor, reduced in (
        (2, cv2.IMREAD_REDUCED_COLOR_2),
        (4, cv2.IMREAD_REDUCED_COLOR_4),
        (8, cv2.IMREAD_REDUCED_COLOR_8),
    ):
        if width * height <= limit * reduction * reduction:
            break
        reduction, flag = factor, reduced
    data = np.fromfile(path, dtype=np.uint8)
    img = cv2.imdecode(data, flag)
    if img is None:
        raise MediaError(f"{path}: cannot decode the image data ({width}x{height}; truncated or unsupported)")
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    scale = max(1, round(max(width, height) / max(img.shape[:2])))
    note = f"decoded at 1/{scale} resolution ({width}x{height})" if scale > 1 else ""
    return Still(bgr=np.ascontiguousarray(_to_uint8(img)), scale=scale, note=note)
