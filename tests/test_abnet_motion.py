"""ABNet's behaviour from facial motion (model.net.behaviour=landmarks): it sees 68 landmarks per
frame, normalised for position and size, never pixels; a face that moves the same way with
another texture behaves the same."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from dfdetect.data.landmarks import normalise_landmarks
from dfdetect.models.nets import create_net
from tests.test_sbi import face_frame


def clip_of(frame: np.ndarray, motion: str, t: int = 6) -> np.ndarray:
    """The face moving: ``nod`` (up and down) or ``roll`` (head tilting)."""
    h, w = frame.shape[:2]
    out = []
    for i in range(t):
        phase = np.sin(i / (t - 1) * 2 * np.pi)
        angle, dy = (0.0, 6 * phase) if motion == "nod" else (12 * phase, 0.0)
        m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
        m[1, 2] += dy
        out.append(cv2.warpAffine(frame, m, (w, h), borderMode=cv2.BORDER_REPLICATE))
    return np.stack(out)


def retexture(frame: np.ndarray) -> np.ndarray:
    """Another appearance on the same geometry: colours permuted, contrast and skin texture changed."""
    noise = cv2.GaussianBlur(
        np.random.default_rng(0).normal(0, 25, frame.shape[:2]).astype(np.float32), (0, 0), 2
    )
    return np.clip(0.8 * frame[:, :, [2, 0, 1]].astype(np.float32) + 30 + noise[..., None], 0, 255).astype(
        np.uint8
    )


def embeddings(net, clip: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(clip).permute(0, 3, 1, 2)[None].float() / 255
    mean, std = torch.tensor(net.mean).view(1, 1, 3, 1, 1), torch.tensor(net.std).view(1, 1, 3, 1, 1)
    with torch.no_grad():
        feats = net.frame_features((x - mean) / std)
        return net.appearance_from_features(feats)[0], net.behaviour_from_features(feats)[0]


def test_behaviour_of_the_same_motion_under_another_face_texture_is_the_same():
    torch.manual_seed(0)
    face = face_frame(0, 160)
    looks_a, looks_b, moves_otherwise = (
        clip_of(face, "nod"),
        clip_of(retexture(face), "nod"),
        clip_of(face, "roll"),
    )
    gaps = {}
    for behaviour in ("landmarks", "appearance"):
        torch.manual_seed(0)
        net = create_net("abnet", behaviour=behaviour).eval()
        (app_a, beh_a), (app_b, beh_b), (_, beh_c) = (
            embeddings(net, c) for c in (looks_a, looks_b, moves_otherwise)
        )
        assert (app_a - app_b).norm() > 0.1  # the appearance did change
        gaps[behaviour] = float((beh_a - beh_b).norm() / (beh_a - beh_c).norm())
    # motion: the retextured face behaves as the original, far closer than another motion does;
    # the pixel-feature variant (before #30) is moved by the texture change
    assert gaps["landmarks"] < 0.2, gaps
    assert gaps["appearance"] > 2 * gaps["landmarks"], gaps


def test_behaviour_reads_only_the_landmarks_not_the_face_net_features():
    torch.manual_seed(0)
    net = create_net("abnet", input_size=64, behaviour="landmarks").eval()
    app_dim = net.appearance_dim
    motion = torch.randn(3, 8, 136)
    a = torch.cat([torch.randn(3, 8, app_dim), motion], dim=2)
    b = torch.cat([torch.randn(3, 8, app_dim) * 5, motion], dim=2)  # other appearance, same motion
    assert torch.equal(net.behaviour_from_features(a), net.behaviour_from_features(b))
    # identity: a face shape of its own (a constant offset of every point over the segment)
    shifted = torch.cat([a[..., :app_dim], motion + torch.randn(3, 1, 136)], dim=2)
    assert torch.allclose(net.behaviour_from_features(a), net.behaviour_from_features(shifted), atol=1e-5)
    other = torch.cat([a[..., :app_dim], torch.randn(3, 8, 136)], dim=2)
    assert not torch.allclose(net.behaviour_from_features(a), net.behaviour_from_features(other), atol=1e-3)
    # and the appearance part still decides who the face claims to be
    assert not torch.equal(net.appearance_from_features(a), net.appearance_from_features(b))
    legacy = create_net("abnet", input_size=64, behaviour="appearance").eval()
    assert not torch.allclose(
        legacy.behaviour_from_features(a[..., :app_dim]), legacy.behaviour_from_features(b[..., :app_dim])
    )


def test_landmarks_are_normalised_for_position_and_size():
    rng = np.random.default_rng(0)
    points = rng.uniform(20, 120, (5, 68, 2)).astype(np.float32)
    moved = points * 1.7 + np.array([13.0, -4.0], np.float32)  # the face elsewhere, larger
    assert np.allclose(normalise_landmarks(points), normalise_landmarks(moved), atol=1e-5)
    rolled = points.copy()
    rolled[:, 48:68] += 3.0  # the mouth moves: seen
    assert not np.allclose(normalise_landmarks(points), normalise_landmarks(rolled), atol=1e-3)


def test_unknown_behaviour_source_is_refused():
    with pytest.raises(ValueError, match="behaviour"):
        create_net("abnet", input_size=64, behaviour="pixels")
