"""The paper's training augmentations (appendix A.5), one sampled transform per clip.

Rotation ±30°, horizontal flip p=0.5, zoom ±20%, brightness ±30%, channel shift ±50, with the
semantics of the Keras ``ImageDataGenerator`` the authors used: zoom draws x and y factors
independently, brightness multiplies, channel shift adds one intensity to every channel and clips
to the clip's own value range, and uncovered borders repeat the nearest pixel.
Albumentations applies the parameters it samples once to every frame passed via ``images=``.
"""

from __future__ import annotations

from collections.abc import Mapping

import albumentations as A
import cv2
import numpy as np

PAPER_AUGMENTATIONS = {
    "rotation": {"enabled": True, "p": 1.0, "limit": 30.0},
    "hflip": {"enabled": True, "p": 0.5},
    "zoom": {"enabled": True, "p": 1.0, "limit": 0.2},
    "brightness": {"enabled": True, "p": 1.0, "limit": 0.3},
    "channel_shift": {"enabled": True, "p": 1.0, "limit": 50.0},
}


class ChannelShift(A.ImageOnlyTransform):
    """Keras ``channel_shift_range``: add one intensity in [-limit, limit] to all channels."""

    def __init__(self, limit: float = 50.0, p: float = 1.0):
        super().__init__(p=p)
        self.limit = limit

    def get_params(self) -> dict:
        return {"intensity": self.py_random.uniform(-self.limit, self.limit)}

    @staticmethod
    def _shift(img: np.ndarray, intensity: float, lo: float, hi: float) -> np.ndarray:
        return np.clip(img.astype(np.float32) + intensity, lo, hi).astype(img.dtype)

    def apply(self, img: np.ndarray, intensity: float = 0.0, **params) -> np.ndarray:
        return self._shift(img, intensity, float(img.min()), float(img.max()))

    def apply_to_images(self, images: np.ndarray, intensity: float = 0.0, **params) -> np.ndarray:
        return self._shift(images, intensity, float(images.min()), float(images.max()))

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("limit",)


def _transform(name: str, spec: Mapping) -> A.BasicTransform:
    p = float(spec.get("p", 1.0))
    limit = spec.get("limit")
    if name == "rotation":
        return A.Affine(rotate=(-limit, limit), border_mode=cv2.BORDER_REPLICATE, p=p)
    if name == "hflip":
        return A.HorizontalFlip(p=p)
    if name == "zoom":
        scale = (1.0 - limit, 1.0 + limit)
        return A.Affine(scale={"x": scale, "y": scale}, border_mode=cv2.BORDER_REPLICATE, p=p)
    if name == "brightness":
        return A.ColorJitter(
            brightness=(1.0 - limit, 1.0 + limit),
            contrast=(1.0, 1.0),
            saturation=(1.0, 1.0),
            hue=(0.0, 0.0),
            p=p,
        )
    if name == "channel_shift":
        return ChannelShift(limit=limit, p=p)
    raise KeyError(f"unknown augmentation {name!r}; known: {', '.join(PAPER_AUGMENTATIONS)}")


def build_clip_augmentation(spec: Mapping[str, Mapping] | None) -> A.Compose | None:
    """Compose the enabled augmentations of ``spec`` (keys as in ``PAPER_AUGMENTATIONS``).

    Returns None when nothing is enabled.
    """
    if not spec:
        return None
    transforms = [_transform(name, opts) for name, opts in spec.items() if opts and opts.get("enabled", True)]
    return A.Compose(transforms) if transforms else None


def augment_clip(transform: A.Compose, frames: np.ndarray, seed: int) -> np.ndarray:
    """Apply one sampled transform to all frames ``(T, H, W, C)`` of a clip, reproducibly from seed."""
    transform.set_random_seed(seed)
    return np.ascontiguousarray(transform(images=frames)["images"])
