"""Paper augmentations: one sampled transform for every frame of a clip, Keras semantics."""

from __future__ import annotations

import numpy as np
import pytest

from dfdetect.data.augment import (
    PAPER_AUGMENTATIONS,
    ChannelShift,
    ClipAugmentation,
    ClipParams,
    augment_clip,
    build_albumentations_augmentation,
    build_clip_augmentation,
)


def only(name: str, **opts) -> dict:
    spec = {k: {"enabled": False} for k in PAPER_AUGMENTATIONS}
    spec[name] = {**PAPER_AUGMENTATIONS[name], **opts}
    return spec


def asymmetric_clip(t: int = 5, size: int = 48) -> np.ndarray:
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    frame[:, : size // 4] = 255  # a bright band on the left shows flips
    return np.repeat(frame[None], t, axis=0)


def test_nothing_enabled_gives_no_transform():
    assert build_clip_augmentation(None) is None
    assert build_clip_augmentation({k: {"enabled": False} for k in PAPER_AUGMENTATIONS}) is None


def test_unknown_augmentation_is_rejected():
    with pytest.raises(KeyError, match="blur"):
        build_clip_augmentation({"blur": {"enabled": True}})


@pytest.mark.parametrize("name", list(PAPER_AUGMENTATIONS))
def test_identical_frames_stay_identical(name):
    """One sampled transform per clip: identical input frames give identical output frames."""
    transform = build_clip_augmentation(only(name, p=1.0))
    clip = asymmetric_clip()
    for seed in range(20):
        out = augment_clip(transform, clip, seed)
        assert out.shape == clip.shape and out.dtype == np.uint8
        assert all(np.array_equal(out[0], out[i]) for i in range(1, len(out))), f"seed {seed}"


def test_flip_hits_all_frames_or_none():
    transform = build_clip_augmentation(only("hflip", p=0.5))
    rng = np.random.default_rng(1)
    clip = rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)  # different frames
    flipped = 0
    for seed in range(200):
        out = augment_clip(transform, clip, seed)
        per_frame = [np.array_equal(out[i], clip[i, :, ::-1]) for i in range(5)]
        kept = [np.array_equal(out[i], clip[i]) for i in range(5)]
        assert all(per_frame) or all(kept)
        flipped += all(per_frame)
    assert 70 < flipped < 130  # p = 0.5


def test_rotation_hits_all_frames_of_a_clip_alike():
    transform = build_clip_augmentation(only("rotation"))
    rng = np.random.default_rng(2)
    clip = rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    clip[1:] = clip[0]
    out = augment_clip(transform, clip, seed=3)
    assert not np.array_equal(out[0], clip[0])
    assert all(np.array_equal(out[0], out[i]) for i in range(1, 5))


def test_seed_reproduces_and_varies():
    transform = build_clip_augmentation(PAPER_AUGMENTATIONS)
    clip = asymmetric_clip()
    a, b, c = (augment_clip(transform, clip, s) for s in (5, 5, 6))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_brightness_multiplies_within_thirty_percent():
    transform = build_clip_augmentation(only("brightness"))
    clip = np.full((3, 16, 16, 3), 100, dtype=np.uint8)
    values = {int(augment_clip(transform, clip, s)[0, 0, 0, 0]) for s in range(100)}
    assert min(values) >= 69 and max(values) <= 131
    assert max(values) - min(values) > 30


def test_channel_shift_adds_one_intensity_clipped_to_clip_range():
    shift = ChannelShift(limit=50, p=1.0)
    clip = np.zeros((2, 4, 4, 3), dtype=np.uint8)
    clip[..., 0], clip[..., 1], clip[..., 2] = 10, 100, 200
    out = shift.apply_to_images(clip, intensity=20.0)
    assert (out[..., 0] == 30).all() and (out[..., 1] == 120).all() and (out[..., 2] == 200).all()
    out = shift.apply_to_images(clip, intensity=-30.0)
    assert (out[..., 0] == 10).all() and (out[..., 1] == 70).all() and (out[..., 2] == 170).all()


def dot_frame(size: int = 64, x: int = 40, y: int = 32) -> np.ndarray:
    frame = np.zeros((1, size, size, 3), dtype=np.uint8)
    frame[0, y - 1 : y + 2, x - 1 : x + 2] = 255
    return frame


def brightest(frame: np.ndarray) -> tuple[float, float]:
    weights = frame[..., 0].astype(float)
    ys, xs = np.indices(weights.shape)
    return float((xs * weights).sum() / weights.sum()), float((ys * weights).sum() / weights.sum())


@pytest.mark.parametrize(
    "params, expected",
    [
        # a quarter turn counter-clockwise: (+8.5, +0.5) from the centre goes to (+0.5, -8.5)
        (ClipParams(angle=90.0), (31.5 + 0.5, 31.5 - 8.5)),
        (ClipParams(flip=True), (31.5 - 8.5, 32.0)),
        (ClipParams(zoom_x=1.5, zoom_y=1.0), (31.5 + 1.5 * 8.5, 32.0)),
        # rotate, flip, then zoom: (+0.5, -8.5) -> (-0.5, -8.5) -> (-0.5, -4.25)
        (ClipParams(angle=90.0, flip=True, zoom_y=0.5), (31.5 - 0.5, 31.5 - 4.25)),
    ],
)
def test_one_affine_warp_moves_points_like_the_composed_transforms(params, expected):
    out = ClipAugmentation(PAPER_AUGMENTATIONS).apply(dot_frame(), params)
    x, y = brightest(out[0])
    assert abs(x - expected[0]) < 0.6 and abs(y - expected[1]) < 0.6


def test_lookup_table_is_brightness_then_channel_shift_in_the_clip_range():
    rng = np.random.default_rng(4)
    clip = rng.integers(20, 200, (3, 16, 16, 3), dtype=np.uint8)
    params = ClipParams(brightness=1.2, shift=-30.0)
    out = ClipAugmentation(PAPER_AUGMENTATIONS).apply(clip, params)
    bright = np.clip(np.rint(clip.astype(np.float32) * 1.2), 0, 255)
    expected = ChannelShift._shift(bright.astype(np.uint8), -30.0, bright.min(), bright.max())
    assert np.array_equal(out, expected)


def test_sampled_parameters_stay_in_the_paper_ranges():
    augmentation = ClipAugmentation(PAPER_AUGMENTATIONS)
    rng = np.random.default_rng(0)
    samples = [augmentation.sample(rng) for _ in range(500)]
    angles = np.array([p.angle for p in samples])
    zooms = np.array([(p.zoom_x, p.zoom_y) for p in samples])
    assert np.abs(angles).max() <= 30 and np.abs(angles).max() > 28
    assert zooms.min() >= 0.8 and zooms.max() <= 1.2 and np.corrcoef(zooms.T)[0, 1] < 0.2
    assert all(0.7 <= p.brightness <= 1.3 and abs(p.shift) <= 50 for p in samples)
    assert 200 < sum(p.flip for p in samples) < 300


def test_albumentations_reference_builds_the_same_transforms():
    reference = build_albumentations_augmentation(PAPER_AUGMENTATIONS)
    assert [type(t).__name__ for t in reference.transforms] == [
        "Affine",
        "HorizontalFlip",
        "Affine",
        "ColorJitter",
        "ChannelShift",
    ]
    out = augment_clip(reference, asymmetric_clip(), seed=1)
    assert out.shape == asymmetric_clip().shape and out.dtype == np.uint8
