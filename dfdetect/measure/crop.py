"""Face crops for the APIs (paper §4.2.5, §5.3): the largest face of a still, found and aligned by
the preprocessing pipeline itself (``clip_still``: MTCNN + eye-level alignment + square crop), kept
as JPEG under ``crop_dir/<source sha256>.<tag>.jpg`` so that a rerun sends the very same bytes."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from dfdetect.preprocess.pipeline import OK, clip_still
from dfdetect.preprocess.settings import ClipSettings


def crop_tag(settings: ClipSettings | None) -> str:
    """Names the crop in cache keys: calls on differently cropped images are different calls."""
    if settings is None:
        return "none"
    return f"mtcnn-{settings.size}-m{settings.margin:g}-{'align' if settings.align else 'noalign'}"


class FaceCropper:
    def __init__(self, detector, settings: ClipSettings, crop_dir: str | os.PathLike):
        self.detector = detector
        self.settings = settings
        self.crop_dir = Path(crop_dir)
        self.tag = crop_tag(settings)

    def path_for(self, sha256: str) -> Path:
        return self.crop_dir / f"{sha256}.{self.tag}.jpg"

    def crop(self, source: str | os.PathLike, sha256: str) -> tuple[bytes | None, str]:
        """(JPEG bytes, "") or (None, why no crop was made)."""
        out = self.path_for(sha256)
        if out.is_file():
            return out.read_bytes(), ""
        self.crop_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.crop_dir, prefix=".crop-") as tmp:
            result = clip_still(Path(source), self.detector, self.settings, Path(tmp), "")
            if result.status != OK:
                return None, result.reason or result.status
            written = Path(tmp) / Path(result.clips[0].paths[0]).name
            staged = Path(tmp) / "staged.jpg"
            shutil.move(written, staged)
            os.replace(staged, out)
        return out.read_bytes(), ""
