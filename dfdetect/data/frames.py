"""Reading one stored frame, strictly: a missing, empty, truncated or undecodable image is an error
naming the file, never a grey-filled frame; and the policy for clips with such a frame.

OpenCV (through libjpeg) decodes a JPEG cut short by filling the missing part with grey and only
warns on stderr ("Premature end of JPEG file"), in some versions and code paths. A JPEG ends with
the end-of-image marker ``FF D9``, which cannot occur inside the entropy-coded data (byte
stuffing), so a file that does not end with it (allowing a little padding) is truncated; checking
it costs two byte comparisons per frame.

``on_bad_frame``: ``fail`` stops with a :class:`BadFrameError` naming the file; ``skip`` leaves the
clip out of its batch, counts it (:class:`SkipCounter`) and logs its path.
"""

from __future__ import annotations

import logging
import os

import cv2
import numpy as np
import torch

from dfdetect.utils.errors import UserError

log = logging.getLogger(__name__)

ON_BAD_FRAME = ("fail", "skip")
JPEG_START, JPEG_END = b"\xff\xd8", b"\xff\xd9"
PNG_START, PNG_END = b"\x89PNG", b"IEND\xaeB`\x82"
# bytes after the end marker that are still accepted (encoders may pad)
TRAILING_SLACK = 64


class ClipReadError(RuntimeError):
    pass


class BadFrameError(ClipReadError, UserError):
    """A stored frame that cannot be used: ``<path>: <reason>``."""

    def __init__(self, message: str):
        # raised in a DataLoader worker, it comes back re-raised with the worker's whole traceback
        # as its message: keep the original one line (its last line is "<module.Class>: <message>")
        if "Original Traceback" in message:
            message = message.rstrip().splitlines()[-1].split(": ", 1)[-1]
        super().__init__(message)


def check_policy(on_bad_frame: str) -> str:
    if on_bad_frame not in ON_BAD_FRAME:
        raise UserError(f"data.on_bad_frame must be one of {ON_BAD_FRAME}, got {on_bad_frame!r}")
    return on_bad_frame


def fail_hint(store: object | None = None) -> str:
    """What to do about a bad frame, appended to the error of ``on_bad_frame="fail"``."""
    check = f"; python scripts/check_store.py {store} lists every bad frame" if store else ""
    return f" (data.on_bad_frame=skip leaves clips with a bad frame out{check})"


def encoded_problem(data: bytes | memoryview) -> str | None:
    """Why these encoded image bytes are unusable before decoding them, or None."""
    if len(data) == 0:
        return "empty file (0 bytes)"
    head = bytes(data[:4])
    if head.startswith(JPEG_START):
        tail = bytes(data[-TRAILING_SLACK:])
        if tail[-2:] != JPEG_END and JPEG_END not in tail:
            return f"truncated JPEG (no end-of-image marker; {len(data)} bytes)"
    elif head == PNG_START and PNG_END not in bytes(data[-TRAILING_SLACK:]):
        return f"truncated PNG (no IEND chunk; {len(data)} bytes)"
    return None


def decode_frame(data: bytes | memoryview, size: int | None, where: str) -> np.ndarray:
    """One RGB ``(H, W, 3)`` uint8 frame from encoded bytes; grayscale, RGBA and 16-bit images are
    converted. Raises :class:`BadFrameError` (``<where>: <reason>``)."""
    problem = encoded_problem(data)
    if problem is not None:
        raise BadFrameError(f"{where}: {problem}")
    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise BadFrameError(f"{where}: cannot decode the image data ({len(data)} bytes)")
    if size is not None and img.shape[:2] != (size, size):
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_frame(path: str | os.PathLike, size: int | None) -> np.ndarray:
    """One RGB ``(H, W, 3)`` uint8 frame from a file (see :func:`decode_frame`)."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise BadFrameError(f"{path}: missing file") from None
    except OSError as err:
        raise BadFrameError(f"{path}: cannot read the file ({err.strerror or err})") from None
    return decode_frame(memoryview(data), size, str(path))


class SkipCounter:
    """The clips of a dataset left out for a bad frame, shared by the DataLoader's worker processes
    (a flag per clip in shared memory): each is logged once, counted once and not read again."""

    def __init__(self, size: int, where: str):
        self.where = where
        self.flags = torch.zeros(max(size, 1), dtype=torch.bool).share_memory_()
        # index -> (clip_id, reason) of the clips this process recorded (runner=ray sends them back)
        self.reasons: dict[int, tuple[str, str]] = {}

    def known(self, index: int) -> bool:
        return bool(self.flags[index])

    def record(self, index: int, clip_id: str, error: BadFrameError) -> None:
        if not self.flags[index]:
            self.flags[index] = True
            self.reasons[index] = (clip_id, str(error))
            log.warning("skipped clip %s of %s (data.on_bad_frame=skip): %s", clip_id, self.where, error)

    @property
    def count(self) -> int:
        return int(self.flags.sum())
