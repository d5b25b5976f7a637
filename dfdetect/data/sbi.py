"""Self-Blended Images (Shiohara & Yamasaki, CVPR 2022; github mapooon/SelfBlendedImages,
``src/utils/sbi.py``, ``funcs.py``, ``blend.py``): pseudo-fakes from real faces only.

A real frame is its own source and target: one copy is jittered in colour (RGB shift p=0.3
±20, brightness/contrast ±0.1) and in frequency (one of: down-scale by 2-4 and back up, or
sharpen alpha 0.2-0.5, lightness 0.5-1.0) -- the source with p=0.5, else the target; the source
and the mask (convex hull of the 68 landmarks) are moved by a small affine (translate ±3 % x,
±1.5 % y, scale 0.95-1/0.95); the mask alone by an elastic deformation (alpha 50, sigma 7 at the
authors' 380 px, scaled to the frame); the mask is resized to a random 192-256 square, blurred,
cut to its core, blurred again (kernels 5-25, sigma 5-45) and scaled by a blend ratio from
{0.25, 0.5, 0.75, 1, 1, 1}; fake = mask * source + (1 - mask) * target. The real of the pair is
the target (jittered or not), so a pseudo-fake differs from its real only where the mask is > 0.

Clip-consistent: every random choice above is drawn once per clip and applied to all its
frames; only the landmarks (hence the hull) follow the face from frame to frame.

Departures (docs/models.md, "Self-blended images"): 68 dlib points (the authors: 81, with the
forehead, and four hull types), so the mask stops at the brows; the authors' hue/saturation/value
jitter (limits ±0.3 on uint8 scales, which round to at most one grey level) is left out; our store
crops replace the authors' randomly-margined crops at 380 px.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import cv2
import numpy as np
import pandas as pd
import torch

from dfdetect.data.augment import augment_clip
from dfdetect.data.clip_dataset import ClipDataset
from dfdetect.data.frames import BadFrameError, ClipReadError, fail_hint
from dfdetect.data.landmarks import NO_FACE, clip_landmarks
from dfdetect.utils.errors import UserError

log = logging.getLogger(__name__)

SYNTHESES = ("sbi",)
BLEND_RATIOS = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)
AUTHORS_SIZE = 380  # the authors' crop size: elastic alpha/sigma are in its pixels
SBI_METHOD = "sbi"


@dataclass(frozen=True)
class SBIParams:
    """One clip's draws."""

    jitter_source: bool  # colour/frequency jitter on the source (else on the target)
    rgb_shift: tuple[float, float, float] | None
    contrast: float
    brightness: float
    downscale: float | None  # else sharpen
    sharpen_alpha: float
    sharpen_lightness: float
    translate: tuple[float, float]  # fractions of width, height
    scale: float
    elastic_seed: int
    mask_size: tuple[int, int]  # (w, h) of the blurring resolution
    kernel_1: int
    kernel_2: int
    sigma_2: int
    blend_ratio: float


def sample_params(rng: np.random.Generator) -> SBIParams:
    return SBIParams(
        jitter_source=bool(rng.random() < 0.5),
        rgb_shift=tuple(rng.uniform(-20, 20, 3)) if rng.random() < 0.3 else None,
        contrast=float(1.0 + rng.uniform(-0.1, 0.1)),
        brightness=float(rng.uniform(-0.1, 0.1)),
        downscale=float(rng.uniform(2.0, 4.0)) if rng.random() < 0.5 else None,
        sharpen_alpha=float(rng.uniform(0.2, 0.5)),
        sharpen_lightness=float(rng.uniform(0.5, 1.0)),
        translate=(float(rng.uniform(-0.03, 0.03)), float(rng.uniform(-0.015, 0.015))),
        scale=float(rng.uniform(0.95, 1 / 0.95)),
        elastic_seed=int(rng.integers(0, 2**31 - 1)),
        mask_size=(int(rng.integers(192, 257)), int(rng.integers(192, 257))),
        kernel_1=int(rng.choice(np.arange(5, 26, 2))),
        kernel_2=int(rng.choice(np.arange(5, 26, 2))),
        sigma_2=int(rng.integers(5, 46)),
        blend_ratio=float(rng.choice(BLEND_RATIOS)),
    )


# --- the source transforms (colour, then frequency)
def jitter(frame: np.ndarray, p: SBIParams) -> np.ndarray:
    x = frame.astype(np.float32)
    if p.rgb_shift is not None:
        x = x + np.asarray(p.rgb_shift, np.float32)
    x = np.clip(x, 0, 255)
    x = np.clip(x * p.contrast + p.brightness * 255.0, 0, 255)  # albumentations, brightness_by_max
    x = x.astype(np.uint8)
    h, w = x.shape[:2]
    if p.downscale is not None:  # the authors' RandomDownScale: nearest down, linear up
        small = cv2.resize(
            x, (max(1, int(w / p.downscale)), max(1, int(h / p.downscale))), interpolation=cv2.INTER_NEAREST
        )
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    effect = np.array([[-1, -1, -1], [-1, 8 + p.sharpen_lightness, -1], [-1, -1, -1]], np.float32)
    identity = np.zeros((3, 3), np.float32)
    identity[1, 1] = 1.0
    kernel = (1 - p.sharpen_alpha) * identity + p.sharpen_alpha * effect
    return cv2.filter2D(x, -1, kernel)


def affine_matrix(p: SBIParams, h: int, w: int) -> np.ndarray:
    centre = np.array([w / 2.0, h / 2.0])
    linear = np.eye(2) * p.scale
    shift = centre - linear @ centre + np.array([p.translate[0] * w, p.translate[1] * h])
    return np.hstack([linear, shift[:, None]]).astype(np.float32)


def elastic_maps(p: SBIParams, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """albumentations' ElasticTransform(alpha=50, sigma=7) displacement, one field per clip, with
    alpha and sigma scaled from the authors' 380 px to this frame."""
    rng = np.random.default_rng(p.elastic_seed)
    k = h / AUTHORS_SIZE
    alpha, sigma = 50.0 * k, max(7.0 * k, 0.5)
    dx = cv2.GaussianBlur(rng.uniform(-1, 1, (h, w)).astype(np.float32), (0, 0), sigma) * alpha
    dy = cv2.GaussianBlur(rng.uniform(-1, 1, (h, w)).astype(np.float32), (0, 0), sigma) * alpha
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return xs + dx, ys + dy


def hull_mask(landmarks: np.ndarray, h: int, w: int) -> np.ndarray:
    mask = np.zeros((h, w), np.float32)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(landmarks).astype(np.int32)), 1.0)
    return mask


def blend_mask(mask: np.ndarray, p: SBIParams) -> np.ndarray:
    """The authors' ``get_blend_mask`` with this clip's draws; blend ratio applied."""
    h, w = mask.shape
    m = cv2.resize(mask, p.mask_size)
    m = cv2.GaussianBlur(m, (p.kernel_1, p.kernel_1), 0)
    if m.max() <= 0:
        return np.zeros((h, w), np.float32)
    m = m / m.max()
    m[m < 1] = 0
    m = cv2.GaussianBlur(m, (p.kernel_2, p.kernel_2), p.sigma_2)
    if m.max() <= 0:
        return np.zeros((h, w), np.float32)
    m = cv2.resize(m / m.max(), (w, h))
    return np.clip(m, 0.0, 1.0) * p.blend_ratio


def self_blend_clip(
    frames: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Real ``(T, H, W, 3)`` uint8 and its per-frame landmarks ``(T, 68, 2)`` -> (real, fake,
    mask): the pair's real (the target), the pseudo-fake, and the blend weights ``(T, H, W)``."""
    p = sample_params(rng)
    t, h, w = frames.shape[:3]
    matrix = affine_matrix(p, h, w)
    map_x, map_y = elastic_maps(p, h, w)
    reals, fakes, masks = [], [], []
    for frame, points in zip(frames, landmarks, strict=True):
        source, target = frame, frame
        if p.jitter_source:
            source = jitter(frame, p)
        else:
            target = jitter(frame, p)
        source = cv2.warpAffine(
            source, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
        )
        mask = cv2.warpAffine(hull_mask(points, h, w), matrix, (w, h), flags=cv2.INTER_LINEAR)
        mask = cv2.remap(mask, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        m = blend_mask(mask, p)
        fake = m[..., None] * source.astype(np.float32) + (1 - m[..., None]) * target.astype(np.float32)
        # where the mask is 0 the fake is the target exactly (no float round trip)
        fake = np.where(m[..., None] > 0, np.clip(np.rint(fake), 0, 255).astype(np.uint8), target)
        reals.append(target)
        fakes.append(fake)
        masks.append(m)
    return np.stack(reals), np.stack(fakes), np.stack(masks)


# --- the training data
def sbi_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The real rows of a split and one pseudo-fake row per real row (label 1, method ``sbi``,
    ids suffixed ``#sbi``, ``sbi_of`` = the real row's position, -1 for a real)."""
    reals = rows[rows["label"] == 0].reset_index(drop=True)
    fakes = reals.assign(
        label=1,
        method=SBI_METHOD,
        clip_id=reals["clip_id"].astype(str) + "#sbi",
        video_id=reals["video_id"].astype(str) + "#sbi",
    )
    n = len(reals)
    # interleaved (real 0, its pseudo-fake, real 1, ...): any prefix of the split holds both classes
    out = pd.concat([reals.assign(sbi_of=-1), fakes.assign(sbi_of=2 * np.arange(n))], ignore_index=True)
    order = np.stack([np.arange(n), n + np.arange(n)], axis=1).ravel()
    return out.iloc[order].reset_index(drop=True)


class NoLandmarksError(ClipReadError):
    pass


class LandmarkSkips:
    """Real clips left out of synthesis for want of landmarks, shared by the DataLoader's workers
    (a flag per real clip in shared memory), each logged once with its reason."""

    def __init__(self, size: int, where: str):
        self.where = where
        self.flags = torch.zeros(max(size, 1), dtype=torch.bool).share_memory_()

    def known(self, index: int) -> bool:
        return bool(self.flags[index])

    def record(self, index: int, clip_id: str, reason: str) -> None:
        if not self.flags[index]:
            self.flags[index] = True
            log.warning("no pseudo-fake of clip %s of %s: %s (skipped, counted)", clip_id, self.where, reason)

    @property
    def count(self) -> int:
        return int(self.flags.sum())


class SelfBlendedClipDataset(ClipDataset):
    """A split's real clips, each also as a self-blended pseudo-fake (label 1): ``2 n`` items.

    A real clip without landmarks (``no_face="skip"``) gives no pseudo-fake: that item is left out
    of its batch and counted in ``no_landmarks`` (whatever ``on_bad_frame`` says); its real stays.
    A real item is the pair's target: with p=0.5 jittered as the authors' target is."""

    def __init__(
        self,
        frame: pd.DataFrame,
        store_dir: str | os.PathLike,
        no_face: str = "skip",
        margin: float = 0.3,
        fixed_draws: bool = False,
        **kwargs,
    ):
        if no_face not in NO_FACE:
            raise UserError(f"data.sbi.no_face must be one of {NO_FACE}, got {no_face!r}")
        rows = sbi_rows(frame)
        super().__init__(rows, store_dir, **kwargs)
        self.no_face = no_face
        # evaluation splits: the same pseudo-fake of an item every epoch (seeded by its index)
        self.fixed_draws = fixed_draws
        self.margin = margin
        self.sbi_of = rows["sbi_of"].to_numpy()
        self.no_landmarks = LandmarkSkips(len(rows), f"{kwargs.get('name') or 'a split'} of {self.store_dir}")

    def synthesise(self, index: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(real, fake, mask) of the real clip behind item ``index``; NoLandmarksError if none."""
        real_index = index if self.sbi_of[index] < 0 else int(self.sbi_of[index])
        frames = self.frames(real_index)
        points, where = clip_landmarks(frames, self.no_face, self.margin)
        if points is None:
            self.no_landmarks.record(real_index, self.frame.at[real_index, "clip_id"], where)
            raise NoLandmarksError(f"clip {self.frame.at[real_index, 'clip_id']}: {where}")
        return self_blend_clip(frames, points, rng)

    def __getitem__(self, index: int) -> dict:
        if self.sbi_of[index] < 0:  # a real: the target of a pair (jittered with p=0.5), no landmarks needed
            clip = self.frames(index)
            params = sample_params(self._rng(index))
            if not params.jitter_source:
                clip = np.stack([jitter(f, params) for f in clip])
        else:
            real_index = int(self.sbi_of[index])
            if self.no_landmarks.known(real_index):
                raise NoLandmarksError(f"clip {self.frame.at[real_index, 'clip_id']}: no landmarks")
            _, clip, _ = self.synthesise(index, self._rng(index))
        if self.transform is not None:
            clip = augment_clip(self.transform, clip, seed=int(torch.randint(0, 2**31 - 1, ()).item()))
        row = self.frame.iloc[index]
        return {
            "clip": torch.from_numpy(np.ascontiguousarray(clip)).permute(0, 3, 1, 2).contiguous(),
            "label": torch.tensor(self.labels[index]),
            "clip_id": row["clip_id"],
            "video_id": row["video_id"],
            "clip_index": torch.tensor(index),
            "video_index": torch.tensor(int(self.video_codes[index])),
        }

    def _rng(self, index: int) -> np.random.Generator:
        if self.fixed_draws:
            return np.random.default_rng(index)
        return np.random.default_rng(int(torch.randint(0, 2**31 - 1, ()).item()))

    def _one(self, index: int) -> dict | None:
        try:
            return self[index]
        except NoLandmarksError:
            return None
        except BadFrameError as err:
            if self.on_bad_frame == "fail":
                raise BadFrameError(f"{err}{fail_hint(self.store_dir)}") from None
            self.skipped.record(index % len(self.skipped.flags), self.frame.at[index, "clip_id"], err)
            return None

    def __getitems__(self, indices: list[int]) -> list[dict]:
        items = [item for i in indices if (item := self._one(i)) is not None]
        start = indices[-1] if indices else 0
        for k in range(1, len(self) + 1):  # never an empty batch
            if items:
                break
            item = self._one((start + k) % len(self))
            items += [item] if item is not None else []
        if not items:
            raise BadFrameError(f"no usable clip in {self.skipped.where}")
        return items
