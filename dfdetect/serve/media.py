"""What an upload is, judged by its bytes (never by its name or Content-Type), and the file the
predictor reads it from: a private temporary file whose extension is the sniffed type, so that
video decoding sees exactly the uploaded bytes through FFmpeg's ``file`` protocol (no playlist,
concat list or URL is an allowed type, and ``protocol_whitelist`` is set before OpenCV loads)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

# set before cv2 is imported anywhere in this process and in the workers it spawns
FFMPEG_OPTIONS = "protocol_whitelist;file"
HEAD_BYTES = 64


def restrict_ffmpeg() -> None:
    os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = FFMPEG_OPTIONS


@dataclass(frozen=True)
class MediaType:
    name: str
    kind: str  # image | video
    suffix: str


JPEG = MediaType("jpeg", "image", ".jpg")
PNG = MediaType("png", "image", ".png")
WEBP = MediaType("webp", "image", ".webp")
BMP = MediaType("bmp", "image", ".bmp")
MP4 = MediaType("mp4", "video", ".mp4")
WEBM = MediaType("webm", "video", ".webm")
AVI = MediaType("avi", "video", ".avi")
ALLOWED = (JPEG, PNG, WEBP, BMP, MP4, WEBM, AVI)


def sniff(head: bytes) -> MediaType | None:
    """The type the first bytes of a file show, or None when it is no allowed type."""
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return AVI
    if head.startswith(b"BM") and len(head) >= 26:
        return BMP
    if head[4:8] == b"ftyp":  # ISO base media: MP4, MOV, 3GP
        return MP4
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML: WebM, Matroska
        return WEBM
    return None


@dataclass
class Upload:
    path: Path
    media: MediaType
    sha256: str
    size: int

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


class UnsupportedMedia(ValueError):
    """The bytes are no allowed type (answered 415)."""


def spool(source, folder: Path, chunk_size: int = 1 << 20) -> Upload:
    """Copy the file object ``source`` into a new private file under ``folder``, hashing as it
    goes; its first bytes decide the type (``UnsupportedMedia`` before anything is written)."""
    head = source.read(HEAD_BYTES)
    media = sniff(head)
    if media is None:
        raise UnsupportedMedia(
            f"not an allowed image or video type (judged by content): {', '.join(m.name for m in ALLOWED)}"
        )
    digest, size = hashlib.sha256(), 0
    fd, name = tempfile.mkstemp(suffix=media.suffix, prefix="upload-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as out:
            chunk = head
            while chunk:
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
                chunk = source.read(chunk_size)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Upload(Path(name), media, digest.hexdigest(), size)
