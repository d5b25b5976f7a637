"""Defenses applied to every training chip before the FR model is trained: none, JPEG, Gaussian
blur, median filter, bit-depth reduction, and a trained purifier (PuFace, or the image-loss-only
autoencoder). Each maps uint8 ``(N, 3, H, W)`` to uint8 of the same shape."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial

import cv2
import numpy as np
import torch

from dfdetect.utils.errors import UserError

Defense = Callable[[torch.Tensor], torch.Tensor]


def _per_image(fn, chips: torch.Tensor) -> torch.Tensor:
    out = [fn(np.ascontiguousarray(c.permute(1, 2, 0).numpy())) for c in chips]
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous() if out else chips.clone()


def jpeg(chips: torch.Tensor, quality: int = 75) -> torch.Tensor:
    def one(img):
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)

    return _per_image(one, chips)


def gaussian_blur(chips: torch.Tensor, sigma: float = 1.0, kernel: int = 5) -> torch.Tensor:
    return _per_image(lambda img: cv2.GaussianBlur(img, (kernel, kernel), sigma), chips)


def median_filter(chips: torch.Tensor, kernel: int = 3) -> torch.Tensor:
    return _per_image(lambda img: cv2.medianBlur(img, kernel), chips)


def bit_depth(chips: torch.Tensor, bits: int = 4) -> torch.Tensor:
    step = 2 ** (8 - bits)
    return ((chips.to(torch.int32) // step) * step + step // 2).clamp(0, 255).to(torch.uint8)


def purify_chips(purifier, chips: torch.Tensor, batch: int = 32, device="cpu") -> torch.Tensor:
    purifier = purifier.to(device)
    out = [purifier(chips[i : i + batch].to(device)).round().clamp(0, 255).to(torch.uint8).cpu()
           for i in range(0, len(chips), batch)]  # fmt: skip
    return torch.cat(out) if out else chips.clone()


KINDS = {"none": None, "jpeg": jpeg, "blur": gaussian_blur, "median": median_filter, "bit_depth": bit_depth}


def build_defenses(specs: Mapping[str, Mapping], load_purifier: Callable, device="cpu") -> dict[str, Defense]:
    """``{name: {kind: ..., <options>}}``; ``kind: purifier`` takes ``ckpt`` (an entry whose
    checkpoint is null is left out)."""
    out: dict[str, Defense] = {}
    for name, spec in specs.items():
        spec = dict(spec)
        kind = spec.pop("kind")
        if kind == "none":
            out[name] = lambda chips: chips
        elif kind == "purifier":
            if not spec.get("ckpt"):
                continue
            out[name] = partial(purify_chips, load_purifier(spec["ckpt"]), device=device)
        elif kind in KINDS:
            out[name] = partial(KINDS[kind], **spec)
        else:
            raise UserError(f"defense {name!r}: unknown kind {kind!r}; one of {sorted(KINDS) + ['purifier']}")
    return out
