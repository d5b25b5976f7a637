"""A built-in synthetic deepfake data set: face-like video clips, generated from a seed.

Every identity has its own face (skin tone, face shape, eyes, brows, nose, mouth, hair); every
real video its own background, lighting and smooth head motion. Each real video of identity A
gets one fake twin ``<A-video>_<B>``: the same driving frames with the inner face (eyes, brows,
nose, mouth, inner skin) of A's group partner B pasted in, carrying the artifacts real face swaps
show, all scaled by ``artifact_strength``:

1. a feathered elliptical blending boundary, in some fakes with a visible seam (hard edge,
   halo ring, local blur);
2. a colour mismatch of random direction (so zero-mean in aggregate) and a resolution mismatch
   (the inner face rendered 2-4x smaller and upsampled, losing the skin texture around it);
3. temporal flicker: the inner face's gain, colour and position jitter independently per frame.

At ``artifact_strength=0`` a fake is a real face whose inner features come from another
identity, which is distributed like any real face of an unseen identity.

The result is a clip store (see :mod:`dfdetect.data.manifest`), cached under
``root/demo-<config hash>`` and built atomically.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from dfdetect.data.manifest import MANIFEST_COLUMNS, MANIFEST_NAME, write_manifest
from dfdetect.utils.io import write_json

# Bump when the generated content changes, so that old caches are not reused.
GENERATOR_VERSION = 2
DATASET_NAME = "demo"
FAKE_METHOD = "demo_swap"
VIDEO_LENGTH_PER_CLIP_FRAME = 3  # a video is 3x as long as its clips laid end to end

# Inner-face ellipse (the swapped region) in face units: centre y offset, semi-axes.
INNER_CENTRE_Y = 0.06
INNER_AXES = (0.80, 0.72)

# Seed-stream tags: each kind of random draw gets its own independent stream.
_IDENTITY, _VIDEO, _FAKE = 0, 1, 2


@dataclass(frozen=True)
class DemoConfig:
    seed: int = 0
    n_groups: int = 30  # identity pairs; fakes swap faces only within a pair, so group = pair
    identities_per_group: int = 2
    videos_per_identity: int = 2
    clips_per_video: int = 4
    frames_per_clip: int = 5
    image_size: int = 240
    artifact_strength: float = 1.0  # 0 = fakes identical in distribution to reals; scales every artifact
    jpeg_quality: int = 90

    def __post_init__(self):
        if self.identities_per_group < 2:
            raise ValueError("identities_per_group must be >= 2: fakes swap faces within a group")
        if min(self.n_groups, self.videos_per_identity, self.clips_per_video, self.frames_per_clip) < 1:
            raise ValueError(f"counts must be positive: {self}")
        if self.image_size < 32:
            raise ValueError("image_size must be at least 32")
        if self.artifact_strength < 0:
            raise ValueError("artifact_strength must be >= 0")
        object.__setattr__(self, "artifact_strength", float(self.artifact_strength))  # 1 and 1.0: one hash

    @property
    def video_length(self) -> int:
        return self.frames_per_clip * self.clips_per_video * VIDEO_LENGTH_PER_CLIP_FRAME

    def config_hash(self) -> str:
        payload = json.dumps({"version": GENERATOR_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha1(payload.encode()).hexdigest()[:10]


# --------------------------------------------------------------------------- random parameters


@dataclass(frozen=True)
class Identity:
    name: str
    group: str
    skin: np.ndarray  # RGB 0-255
    face_axes: tuple[float, float]  # semi-axes as fractions of the image size
    eye_x: float  # everything below in face units (fractions of the face semi-axes)
    eye_y: float
    eye_size: tuple[float, float]
    iris_rgb: np.ndarray
    brow_gap: float
    brow_length: float
    brow_thickness: float
    brow_tilt: float
    nose_length: float
    mouth_y: float
    mouth_size: tuple[float, float]
    lip_rgb: np.ndarray
    hair_rgb: np.ndarray
    hair_top: float
    hair_side: float
    texture_seed: int


@dataclass(frozen=True)
class Video:
    video_id: str
    identity: Identity
    seed_key: tuple[int, ...]  # extra entropy for this video's random streams


@dataclass(frozen=True)
class Clip:
    start: int
    frame_indices: list[int]


def _rng(config: DemoConfig, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([config.seed, *key]))


def _skin_tone(rng: np.random.Generator) -> np.ndarray:
    """Skin tones from one distribution for everyone: dark brown to pale, with a little tint."""
    dark, light = np.array([92.0, 60.0, 44.0]), np.array([242.0, 205.0, 182.0])
    tone = dark + rng.uniform(0.1, 1.0) * (light - dark)
    return np.clip(tone + rng.normal(0, 6, 3), 0, 255)


def _hair_colour(rng: np.random.Generator) -> np.ndarray:
    palette = np.array(
        [[25, 20, 18], [60, 40, 28], [110, 75, 45], [200, 160, 95], [150, 70, 35], [165, 160, 155]],
        dtype=np.float64,
    )
    return np.clip(palette[rng.integers(len(palette))] + rng.normal(0, 10, 3), 0, 255)


def _make_identity(config: DemoConfig, index: int) -> Identity:
    rng = _rng(config, _IDENTITY, index)
    return Identity(
        name=f"id{index:03d}",
        group=f"g{index // config.identities_per_group:03d}",
        skin=_skin_tone(rng),
        face_axes=(rng.uniform(0.21, 0.26), rng.uniform(0.29, 0.34)),
        eye_x=rng.uniform(0.30, 0.38),
        eye_y=rng.uniform(-0.18, -0.08),
        eye_size=(rng.uniform(0.12, 0.16), rng.uniform(0.05, 0.08)),
        iris_rgb=rng.uniform([20, 20, 10], [110, 140, 160]),
        brow_gap=rng.uniform(0.12, 0.17),
        brow_length=rng.uniform(0.11, 0.15),
        brow_thickness=rng.uniform(0.025, 0.05),
        brow_tilt=rng.uniform(-0.025, 0.025),
        nose_length=rng.uniform(0.18, 0.28),
        mouth_y=rng.uniform(0.36, 0.46),
        mouth_size=(rng.uniform(0.20, 0.30), rng.uniform(0.04, 0.07)),
        lip_rgb=np.clip(rng.uniform([140, 50, 50], [200, 95, 95]) * rng.uniform(0.6, 1.0), 0, 255),
        hair_rgb=_hair_colour(rng),
        hair_top=rng.uniform(0.10, 0.30),
        hair_side=rng.uniform(0.1, 0.9),
        texture_seed=int(rng.integers(2**31)),
    )


def _make_identities(config: DemoConfig) -> list[Identity]:
    return [_make_identity(config, i) for i in range(config.n_groups * config.identities_per_group)]


def _swap_partner(config: DemoConfig, index: int) -> int:
    """The next identity of the same group (cyclic): with 2 per group, the pair partner."""
    k = config.identities_per_group
    return index // k * k + (index % k + 1) % k


def _clips(config: DemoConfig) -> list[Clip]:
    last_start = config.video_length - config.frames_per_clip
    starts = np.round(np.linspace(0, last_start, config.clips_per_video)).astype(int)
    return [Clip(int(s), list(range(int(s), int(s) + config.frames_per_clip))) for s in starts]


# --------------------------------------------------------------------------- drawing helpers


def _pt(x: float, y: float) -> tuple[int, int]:
    """Sub-pixel point for cv2 drawing with ``shift=4``."""
    return round(x * 16), round(y * 16)


def _ellipse(img, centre, axes, angle, colour, thickness=-1):
    axes16 = (max(1, round(axes[0] * 16)), max(1, round(axes[1] * 16)))
    cv2.ellipse(
        img, _pt(*centre), axes16, angle, 0, 360, tuple(float(c) for c in colour), thickness, cv2.LINE_AA, 4
    )


def _smooth_noise(rng: np.random.Generator, size: int, sigma: float, channels: int = 1) -> np.ndarray:
    """Gaussian noise blurred with ``sigma`` px, rescaled to unit standard deviation."""
    noise = rng.standard_normal((size, size, channels), dtype=np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), sigma).reshape(size, size, channels)
    return noise / (noise.std() + 1e-6)


def _face_geometry(identity: Identity, size: int) -> tuple[float, float, float, float]:
    """Face ellipse centre and semi-axes in canonical (unmoved) image pixels."""
    ax, ay = identity.face_axes[0] * size, identity.face_axes[1] * size
    return size / 2, size / 2 + 0.02 * size, ax, ay


def _ellipse_radius(size: int, cx: float, cy: float, ax: float, ay: float) -> np.ndarray:
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    return np.sqrt(((xs - cx) / ax) ** 2 + ((ys - cy) / ay) ** 2)


def _draw_features(
    canvas: np.ndarray, features: Identity, frame: tuple[float, float, float, float], brow_rgb: np.ndarray
):
    """Eyes, brows, nose and mouth of ``features`` placed in the face ``frame`` (cx, cy, ax, ay)."""
    cx, cy, ax, ay = frame
    skin = canvas[int(cy), int(cx)].copy()
    line = max(1, round(ax * 0.025))
    for side in (-1, 1):
        ex, ey = cx + side * features.eye_x * ax, cy + features.eye_y * ay
        ew, eh = features.eye_size[0] * ax, features.eye_size[1] * ay
        _ellipse(canvas, (ex, ey), (ew, eh), 0, (235, 232, 225))
        _ellipse(canvas, (ex, ey), (eh * 0.95, eh * 0.95), 0, features.iris_rgb)
        _ellipse(canvas, (ex, ey), (eh * 0.45, eh * 0.45), 0, (12, 10, 10))
        _ellipse(canvas, (ex, ey), (ew, eh), 0, skin * 0.55, line)
        by = ey - features.brow_gap * ay
        bl = features.brow_length * ax
        tilt = side * features.brow_tilt * ay
        cv2.line(
            canvas,
            _pt(ex - bl, by + tilt),
            _pt(ex + bl, by - tilt),
            tuple(float(c) for c in brow_rgb * 0.8),
            max(1, round(features.brow_thickness * ay)),
            cv2.LINE_AA,
            4,
        )
    nose_top, nose_bottom = cy - 0.02 * ay, cy + features.nose_length * ay
    nose_shadow = tuple(float(c) for c in skin * 0.72)
    cv2.line(
        canvas,
        _pt(cx + 0.04 * ax, nose_top),
        _pt(cx + 0.08 * ax, nose_bottom),
        nose_shadow,
        line,
        cv2.LINE_AA,
        4,
    )
    _ellipse(canvas, (cx, nose_bottom), (0.11 * ax, 0.035 * ay), 0, nose_shadow, line)
    my = cy + features.mouth_y * ay
    _ellipse(
        canvas, (cx, my), (features.mouth_size[0] * ax, features.mouth_size[1] * ay), 0, features.lip_rgb
    )
    cv2.line(
        canvas,
        _pt(cx - features.mouth_size[0] * ax, my),
        _pt(cx + features.mouth_size[0] * ax, my),
        tuple(float(c) for c in features.lip_rgb * 0.5),
        line,
        cv2.LINE_AA,
        4,
    )


def _skin_texture(identity: Identity, size: int) -> np.ndarray:
    """Fine multiplicative skin texture (pores, freckles) a couple of pixels across."""
    rng = np.random.default_rng(identity.texture_seed)
    scale = size / 240
    fine = _smooth_noise(rng, size, 0.8 * scale)
    blotches = _smooth_noise(rng, size, 6 * scale)
    return 1 + 0.05 * fine + 0.025 * blotches


def _face_canvas(
    outline: Identity, features: Identity, size: int, texture: np.ndarray, skin: np.ndarray, hair: np.ndarray
) -> np.ndarray:
    """Canonical face of ``outline``'s shape and ``features``' eyes/brows/nose/mouth, shaded and
    textured; ``skin`` and ``hair`` (brow) colours are given apart, as a swap may mix them."""
    frame = _face_geometry(outline, size)
    radius = _ellipse_radius(size, *frame)[..., None]
    shading = 1 - 0.28 * np.clip(radius, 0, 1) ** 4
    canvas = np.empty((size, size, 3), np.float32)
    canvas[:] = skin.astype(np.float32)
    _draw_features(canvas, features, frame, hair)
    return canvas * shading * texture


def _head_layers(identity: Identity, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Canonical head (hair, neck, face) of ``identity`` as premultiplied RGB and alpha."""
    cx, cy, ax, ay = _face_geometry(identity, size)
    texture = _skin_texture(identity, size)
    hair_alpha = np.zeros((size, size), np.float32)
    hair_h = ay * (1 + identity.hair_top)
    _ellipse(hair_alpha, (cx, cy - identity.hair_top * ay * 0.5), (ax * 1.12, hair_h), 0, (1,))
    side_h = ay * (0.2 + 0.8 * identity.hair_side)
    cv2.rectangle(
        hair_alpha,
        _pt(cx - ax * 1.12, cy - ay * 0.3),
        _pt(cx + ax * 1.12, cy + side_h),
        (1,),
        -1,
        cv2.LINE_AA,
        4,
    )
    neck_alpha = np.zeros((size, size), np.float32)
    cv2.rectangle(
        neck_alpha, _pt(cx - ax * 0.55, cy), _pt(cx + ax * 0.55, size * 1.5), (1,), -1, cv2.LINE_AA, 4
    )
    face_alpha = np.zeros((size, size), np.float32)
    _ellipse(face_alpha, (cx, cy), (ax, ay), 0, (1,))

    hair = identity.hair_rgb.astype(np.float32) * (1 + 2 * (texture - 1))
    neck = identity.skin.astype(np.float32) * 0.82 * texture
    face = _face_canvas(identity, identity, size, texture, identity.skin, identity.hair_rgb)
    rgb = hair * hair_alpha[..., None]
    for layer, alpha in ((neck, neck_alpha), (face, face_alpha)):
        rgb = rgb * (1 - alpha[..., None]) + layer * alpha[..., None]
    alpha = 1 - (1 - hair_alpha) * (1 - neck_alpha) * (1 - face_alpha)
    return rgb.astype(np.float32), alpha


def _inner_mask(identity: Identity, size: int, feather_px: float) -> np.ndarray:
    cx, cy, ax, ay = _face_geometry(identity, size)
    mask = np.zeros((size, size), np.float32)
    _ellipse(mask, (cx, cy + INNER_CENTRE_Y * ay), (INNER_AXES[0] * ax, INNER_AXES[1] * ay), 0, (1,))
    return cv2.GaussianBlur(mask, (0, 0), feather_px)


# --------------------------------------------------------------------------- scenes


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    base = rng.uniform(30, 220, 3).astype(np.float32)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    angle = rng.uniform(0, 2 * np.pi)
    gradient = (xs * np.cos(angle) + ys * np.sin(angle))[..., None] * rng.uniform(-60, 60, 3)
    coarse = rng.standard_normal((6, 6, 3)).astype(np.float32)
    coarse = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC) * rng.uniform(5, 20)
    fine = _smooth_noise(rng, size, 0.9 * size / 240, 3) * rng.uniform(2, 6)
    image = base + gradient + coarse + fine
    for _ in range(rng.integers(0, 4)):  # a few objects in the room
        x, y = rng.uniform(0, size, 2)
        w, h = rng.uniform(0.1, 0.4, 2) * size
        colour = tuple(float(c) for c in rng.uniform(20, 235, 3))
        cv2.rectangle(image, _pt(x, y), _pt(x + w, y + h), colour, -1, cv2.LINE_AA, 4)
    return image.astype(np.float32)


def _lighting(rng: np.random.Generator, size: int) -> np.ndarray:
    """Per-video multiplicative light field: ambient level, colour tint and a directional falloff."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    angle = rng.uniform(0, 2 * np.pi)
    directional = 1 + rng.uniform(0, 0.5) * (xs * np.cos(angle) + ys * np.sin(angle))
    tint = rng.uniform(0.75, 1.15) * (1 + rng.normal(0, 0.04, 3))
    return (directional[..., None] * tint).astype(np.float32)


@dataclass(frozen=True)
class Motion:
    """Smooth head motion: sums of two slow sinusoids per degree of freedom."""

    amplitudes: np.ndarray  # (4 dofs: dx, dy, angle, log-scale) x 2 harmonics
    frequencies: np.ndarray
    phases: np.ndarray
    offsets: np.ndarray  # (4,)

    @classmethod
    def sample(cls, rng: np.random.Generator, size: int) -> Motion:
        limits = np.array([0.05 * size, 0.04 * size, 8.0, 0.06])
        return cls(
            amplitudes=limits[:, None] * rng.uniform(0.2, 0.6, (4, 2)),
            frequencies=rng.uniform(0.03, 0.15, (4, 2)),
            phases=rng.uniform(0, 2 * np.pi, (4, 2)),
            offsets=limits * rng.uniform(-0.4, 0.4, 4),
        )

    def at(self, t: float) -> tuple[float, float, float, float]:
        dx, dy, angle, log_scale = self.offsets + (
            self.amplitudes * np.sin(self.frequencies * t + self.phases)
        ).sum(1)
        return float(dx), float(dy), float(angle), float(math.exp(log_scale))


def _affine(centre: tuple[float, float], dx: float, dy: float, angle: float, scale: float) -> np.ndarray:
    m = cv2.getRotationMatrix2D(centre, angle, scale)
    m[:, 2] += (dx, dy)
    return m


def _face_box(identity: Identity, size: int, matrix: np.ndarray, angle: float, scale: float) -> list[float]:
    """Axis-aligned bounding box of the moved face ellipse."""
    cx, cy, ax, ay = _face_geometry(identity, size)
    fx, fy = matrix @ np.array([cx, cy, 1.0])
    theta = math.radians(angle)
    half_w = scale * math.hypot(ax * math.cos(theta), ay * math.sin(theta))
    half_h = scale * math.hypot(ax * math.sin(theta), ay * math.cos(theta))
    return [round(float(v), 2) for v in (fx - half_w, fy - half_h, fx + half_w, fy + half_h)]


def _warp(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


@dataclass(frozen=True)
class SwapArtifacts:
    """One fake video's face-swap rendering parameters, already scaled by the artifact strength."""

    inner_rgb: np.ndarray  # canonical inner face (partner's features on the driving face)
    mask: np.ndarray  # canonical feathered blending mask
    downscale: float  # the inner face's low-resolution render is this many times smaller ...
    lowres_weight: float  # ... and blended in with this weight (0 = full resolution)
    colour_offset: np.ndarray  # RGB, per video
    gain: float
    seam_halo: float  # signed brightness of the ring along the blending boundary
    seam_blur: float  # 0..1 mix of a blurred ring along the boundary
    flicker_gain: np.ndarray  # per frame, every draw below independent per frame
    flicker_colour: np.ndarray  # (frames, 3)
    flicker_shift: np.ndarray  # (frames, 2) px


def _swapped_inner_face(config: DemoConfig, driver: Identity, partner: Identity) -> np.ndarray:
    """Canonical face with the partner's eyes/brows/nose/mouth fitted to the driver's face and skin
    texture. Its skin and brow colours drift from the driver's towards the partner's as strength
    grows: at strength 0 nothing ties the inner face to another identity."""
    mix = min(config.artifact_strength, 1.0)
    skin = driver.skin + mix * (partner.skin - driver.skin)
    hair = driver.hair_rgb + mix * (partner.hair_rgb - driver.hair_rgb)
    texture = _skin_texture(driver, config.image_size)
    return _face_canvas(driver, partner, config.image_size, texture, skin, hair)


def _swap_artifacts(
    config: DemoConfig, rng: np.random.Generator, driver: Identity, inner_rgb: np.ndarray, n_frames: int
) -> SwapArtifacts:
    """Draw every random number whatever the strength, so strengths differ only in scale."""
    size, s = config.image_size, config.artifact_strength
    px = size / 240
    visible_seam = rng.random() < 0.5
    feather = (rng.uniform(0.8, 1.6) if visible_seam else rng.uniform(2.5, 5.0)) * px
    direction = rng.standard_normal(3)
    direction /= np.linalg.norm(direction)
    colour_offset = direction * rng.uniform(6, 16) * s
    gain = 1 + rng.uniform(-0.06, 0.06) * s
    downscale = rng.uniform(2.0, 4.0)
    halo = rng.choice([-1.0, 1.0]) * rng.uniform(8, 20) * s * visible_seam
    seam_blur = min(1.0, rng.uniform(0.5, 1.0) * s) * visible_seam
    flicker_gain = 1 + 0.04 * s * rng.standard_normal(n_frames)
    flicker_colour = 4 * s * rng.standard_normal((n_frames, 3))
    flicker_shift = 1.2 * px * s * rng.standard_normal((n_frames, 2))
    return SwapArtifacts(
        inner_rgb=inner_rgb,
        mask=_inner_mask(driver, size, feather),
        downscale=downscale,
        lowres_weight=min(s, 1.0),
        colour_offset=colour_offset.astype(np.float32),
        gain=float(gain),
        seam_halo=float(halo),
        seam_blur=float(seam_blur),
        flicker_gain=flicker_gain.astype(np.float32),
        flicker_colour=flicker_colour.astype(np.float32),
        flicker_shift=flicker_shift.astype(np.float32),
    )


def _warp_mask(mask: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """Warp a one-channel mask and repeat it over RGB (faster to blend with than broadcasting)."""
    warped = _warp(mask, matrix, size)
    return cv2.merge([warped, warped, warped])


def _paste_inner_face(frame: np.ndarray, swap: SwapArtifacts, matrix: np.ndarray, k: int) -> np.ndarray:
    """Blend the swapped inner face into ``frame`` (the k-th rendered frame of the video)."""
    size = frame.shape[0]
    jittered = matrix.copy()
    jittered[:, 2] += swap.flicker_shift[k]
    inner = _warp(swap.inner_rgb, jittered, size)
    mask = _warp_mask(swap.mask, jittered, size)
    if swap.lowres_weight:
        small = max(8, round(size / swap.downscale))
        lowres = cv2.resize(
            cv2.resize(inner, (small, small), interpolation=cv2.INTER_AREA),
            (size, size),
            interpolation=cv2.INTER_LINEAR,
        )
        inner += swap.lowres_weight * (lowres - inner)
    gain = swap.gain * swap.flicker_gain[k]
    offset = swap.colour_offset + swap.flicker_colour[k]
    inner = cv2.transform(inner, np.hstack([np.eye(3) * gain, offset[:, None]]).astype(np.float32))
    out = frame + (inner - frame) * mask
    if swap.seam_halo or swap.seam_blur:
        ring = 4 * mask * (1 - mask)
        if swap.seam_blur:
            blurred = cv2.GaussianBlur(out, (0, 0), 1.5 * size / 240)
            out += swap.seam_blur * ring * (blurred - out)
        out += swap.seam_halo * ring
    return out


# --------------------------------------------------------------------------- rendering videos


@dataclass(frozen=True)
class FaceAssets:
    """What all videos of one identity share: its head layers and the swapped-in inner face."""

    head_rgb: np.ndarray
    head_alpha: np.ndarray
    inner_rgb: np.ndarray


def _sensor_noise(rng: np.random.Generator, size: int, std: float) -> np.ndarray:
    """Uniform per-pixel noise of the given standard deviation (cheaper to draw than Gaussian)."""
    noise = rng.integers(0, 256, (size, size, 3), dtype=np.uint8).astype(np.float32)
    return (noise - 127.5) * np.float32(std / 73.9)  # 73.9 = std of a uniform byte


def _save_jpeg(path: Path, rgb: np.ndarray, quality: int) -> None:
    """Round, clip (in place) and save a float RGB image as JPEG."""
    rgb += 0.5
    image = np.clip(rgb, 0, 255, out=rgb).astype(np.uint8)
    if not cv2.imwrite(
        str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    ):
        raise OSError(f"could not write {path}")


def _clip_rows(
    video_id: str,
    method: str,
    identity: Identity,
    source: Identity,
    clips: list[Clip],
    boxes: dict[int, list[float]],
) -> list[dict]:
    return [
        {
            "clip_id": f"{video_id}/{clip.start}",
            "video_id": video_id,
            "dataset": DATASET_NAME,
            "method": method,
            "label": int(method != "real"),
            "identity": identity.name,
            "source_identity": source.name,
            "group": source.group,
            "split": "",
            "frame_indices": clip.frame_indices,
            "face_boxes": [boxes[t] for t in clip.frame_indices],
            "det_prob": [1.0] * len(clip.frame_indices),
            "paths": [f"{video_id}/{t:05d}.jpg" for t in clip.frame_indices],
        }
        for clip in clips
    ]


def _render_video_pair(
    config: DemoConfig, video: Video, partner: Identity, assets: FaceAssets, out_dir: Path
) -> list[dict]:
    """Render a real video and its face-swapped twin; write their JPEGs; return their manifest rows."""
    size, driver = config.image_size, video.identity
    clips = _clips(config)
    frame_indices = [t for clip in clips for t in clip.frame_indices]
    scene_rng = _rng(config, _VIDEO, *video.seed_key)
    background = _background(scene_rng, size)
    lighting = _lighting(scene_rng, size)
    motion = Motion.sample(scene_rng, size)
    noise_std = scene_rng.uniform(1.5, 3.0)
    face_centre = _face_geometry(driver, size)[:2]
    swap = _swap_artifacts(
        config, _rng(config, _FAKE, *video.seed_key), driver, assets.inner_rgb, len(frame_indices)
    )
    fake_id = f"{video.video_id}_{partner.name}"
    for video_id in (video.video_id, fake_id):
        (out_dir / video_id).mkdir(parents=True, exist_ok=True)

    boxes = {}
    for k, t in enumerate(frame_indices):
        dx, dy, angle, scale = motion.at(t)
        matrix = _affine(face_centre, dx, dy, angle, scale)
        boxes[t] = _face_box(driver, size, matrix, angle, scale)
        alpha = _warp_mask(assets.head_alpha, matrix, size)
        frame = background - background * alpha + _warp(assets.head_rgb, matrix, size)
        fake = _paste_inner_face(frame, swap, matrix, k)
        for video_id, image in ((video.video_id, frame), (fake_id, fake)):
            noisy = image * lighting + _sensor_noise(scene_rng, size, noise_std)
            _save_jpeg(out_dir / video_id / f"{t:05d}.jpg", noisy, config.jpeg_quality)
    real_rows = _clip_rows(video.video_id, "real", driver, driver, clips, boxes)
    return real_rows + _clip_rows(fake_id, FAKE_METHOD, partner, driver, clips, boxes)


def _render_identity(config: DemoConfig, index: int, identities: list[Identity], out_dir: Path) -> list[dict]:
    """All real videos of one identity and their fakes, which swap in its group partner's face."""
    identity, partner = identities[index], identities[_swap_partner(config, index)]
    head_rgb, head_alpha = _head_layers(identity, config.image_size)
    assets = FaceAssets(head_rgb, head_alpha, _swapped_inner_face(config, identity, partner))
    rows = []
    for v in range(config.videos_per_identity):
        video = Video(f"{identity.name}_v{v}", identity, (index, v))
        rows += _render_video_pair(config, video, partner, assets, out_dir)
    return rows


# --------------------------------------------------------------------------- the store


def demo_store_dir(root: str | os.PathLike, config: DemoConfig) -> Path:
    return Path(root) / f"demo-{config.config_hash()}"


def _render_all(config: DemoConfig, out_dir: Path, num_workers: int, progress: bool) -> pd.DataFrame:
    identities = _make_identities(config)

    def render(index: int) -> list[dict]:
        return _render_identity(config, index, identities, out_dir)

    rows: list[dict] = []
    with ThreadPoolExecutor(max_workers=num_workers) as pool:
        results: Iterator[list[dict]] = pool.map(render, range(len(identities)))
        for identity_rows in tqdm(
            results, total=len(identities), desc="demo store", unit="identity", disable=not progress
        ):
            rows.extend(identity_rows)
    return pd.DataFrame(rows, columns=MANIFEST_COLUMNS)


def build_demo_store(
    root: str | os.PathLike,
    config: DemoConfig | None = None,
    *,
    num_workers: int | None = None,
    progress: bool = True,
    **overrides,
) -> Path:
    """Build (or reuse) the demo clip store under ``root`` and return its directory.

    ``overrides`` replace fields of ``config`` (default :class:`DemoConfig`). The content depends
    only on the config, not on ``num_workers``.
    """
    config = replace(config or DemoConfig(), **overrides)
    store_dir = demo_store_dir(root, config)
    if (store_dir / MANIFEST_NAME).is_file():
        return store_dir
    store_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{store_dir.name}.", suffix=".tmp", dir=store_dir.parent))
    try:
        manifest = _render_all(config, tmp_dir, num_workers or min(4, os.cpu_count() or 1), progress)
        write_json(tmp_dir / "demo_config.json", {"version": GENERATOR_VERSION, **asdict(config)})
        write_manifest(manifest, tmp_dir)
        for path in (tmp_dir, *tmp_dir.glob("*.*")):  # mkdtemp/mkstemp create them owner-only
            path.chmod(0o755 if path.is_dir() else 0o644)
        try:
            tmp_dir.rename(store_dir)
        except OSError:  # another process finished the same store first
            if not (store_dir / MANIFEST_NAME).is_file():
                raise
            shutil.rmtree(tmp_dir)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    return store_dir
