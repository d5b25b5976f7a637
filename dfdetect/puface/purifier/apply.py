"""``scripts/purify.py``: a trained purifier over a folder of face chips (any depth; written as PNG
under the same relative paths, resumable) or over an identity dataset's chips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dfdetect.facts.dlib import DLIB_INPUT_SIZE
from dfdetect.puface.data.identity_datamodule import read_image, write_png
from dfdetect.puface.data.identity_table import IMAGE_SUFFIXES
from dfdetect.puface.purifier.defenses import purify_chips
from dfdetect.utils.errors import UserError


def purify_folder(
    purifier,
    src: str | Path,
    dst: str | Path,
    batch: int = 32,
    device="cpu",
    size: int | None = DLIB_INPUT_SIZE,
) -> dict:
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise UserError(f"no folder at {src}")
    paths = sorted(p for p in src.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise UserError(f"{src}: no images ({', '.join(IMAGE_SUFFIXES)})")
    todo = [p for p in paths if not (dst / p.relative_to(src).with_suffix(".png")).is_file()]
    for start in range(0, len(todo), batch):
        part = todo[start : start + batch]
        chips = torch.from_numpy(np.stack([read_image(p, size) for p in part])).permute(0, 3, 1, 2)
        for p, out in zip(part, purify_chips(purifier, chips, batch, device), strict=True):
            write_png(dst / p.relative_to(src).with_suffix(".png"), out.permute(1, 2, 0).numpy())
    return {"purified": len(todo), "skipped": len(paths) - len(todo), "out": str(dst)}
