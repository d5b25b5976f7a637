"""Paper augmentations: one sampled transform for every frame of a clip, Keras semantics."""

from __future__ import annotations

import numpy as np
import pytest

from dfdetect.data.augment import PAPER_AUGMENTATIONS, ChannelShift, augment_clip, build_clip_augmentation


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
