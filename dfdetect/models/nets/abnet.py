"""ABNet: deepfake detection from appearance and behaviour (Agarwal, El-Gaaly, Farid & Lim,
WIFS 2020, arXiv 2004.14491). The authors' code is not public; docs/models.md ("ABNet") records
the recipe we follow and where we depart from it.

- Appearance: the frozen, trained face-recognition network (dlib's ResNet by default) on every
  frame of a segment, its descriptors averaged -- who the face looks like.
- Behaviour: a temporal network over per-frame features of the segment (seconds long, e.g. 16
  frames over 2 s) -- how the face moves. ``behaviour="landmarks"`` (dfdetect/conf/model/abnet.yaml, issue
  #30): the per-frame features are dlib's 68 facial landmarks, centred and divided by the
  inter-ocular distance (``dfdetect.data.landmarks``), so behaviour sees no pixels: a swap that
  looks like the target but moves like the source is judged on its motion alone.
  ``behaviour="appearance"`` (the net's default, what checkpoints before #30 hold): the frozen
  network's own per-frame features (dlib: its last residual map pooled to 2x2, 1,024 values).
  Either way their mean over the segment is removed first, so what stays is how they change. It is trained
  (``ABNetModule``) on real videos only, with identity labels and a multi-similarity loss.
- Enrolment: per identity, reference appearance and behaviour embeddings of real videos
  (``enrol``), kept in buffers and saved in the checkpoint.
- Decision: the identity the appearance claims is the enrolled identity whose appearance
  references are nearest, if one lies within ``appearance_threshold``; the clip's score is the
  distance of its behaviour to that identity's nearest behaviour reference, as a logit
  ``(distance - threshold) * scale`` (threshold fitted on validation). A clip whose appearance
  matches no enrolled identity, or with fewer than ``min_frames`` frames, is *unknown*: NaN, never
  a guess (``decide`` says which and why).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dfdetect.data.landmarks import clip_landmarks, normalise_landmarks
from dfdetect.models.layers.dlib_resnet import (
    DLIB_DISTANCE_THRESHOLD,
    DLIB_INPUT_SIZE,
    DLIB_MEAN_01,
    DLIB_STD_01,
    DlibResNet,
)
from dfdetect.models.layers.face_backbone import DLIB, FULL_REPEATS, face_input_size, face_net_facts
from dfdetect.models.layers.frozen import Frozen
from dfdetect.models.nets.base import ClipDetector
from dfdetect.models.nets.dlib_face import INSTALLED, build_face_net
from dfdetect.models.nets.registry import NetInfo, register_net

DLIB_FRAME_GRID = 2  # dlib's last residual map pooled to 2x2: 256 * 4 = 1,024 values per frame
UNKNOWN = -1
BEHAVIOURS = ("appearance", "landmarks")
LANDMARK_DIM = 136  # 68 (x, y)


class ABNetDecision(NamedTuple):
    logits: torch.Tensor  # (B,) P(fake) logits, NaN where unknown
    claimed: torch.Tensor  # (B,) index into ``identities`` of the identity the appearance claims, -1: none
    distance: torch.Tensor  # (B,) behaviour distance to the claimed identity's references, NaN: unknown
    unknown: torch.Tensor  # (B,) bool


class BehaviourNet(nn.Module):
    """Per-frame features ``(B, T, F)`` of a segment -> one L2-normalised behaviour embedding.

    The segment mean of each feature is removed (what stays is how the face moves, not whose it
    is); a per-frame projection, two temporal convolutions, then the mean and standard deviation
    over time and a linear map."""

    def __init__(self, in_dim: int, dim: int = 128, width: int = 256, kernel: int = 5):
        super().__init__()
        self.frame = nn.Sequential(nn.Linear(in_dim, width), nn.ReLU(inplace=True))
        self.temporal = nn.Sequential(
            nn.Conv1d(width, width, kernel, padding=kernel // 2),
            nn.ReLU(inplace=True),
            nn.Conv1d(width, width, kernel, padding=kernel // 2),
            nn.ReLU(inplace=True),
        )
        self.out = nn.Linear(2 * width, dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        moving = features - features.mean(dim=1, keepdim=True)
        x = self.temporal(self.frame(moving).transpose(1, 2))  # (B, width, T)
        stats = torch.cat([x.mean(dim=2), x.std(dim=2, unbiased=False)], dim=1)
        return F.normalize(self.out(stats), dim=1)


@register_net(
    "abnet",
    NetInfo(
        paper="Agarwal, El-Gaaly, Farid & Lim, Appearance and Behavior, CVPR-W 2020",
        code="none published; appearance: dlib's face-recognition ResNet (frozen); behaviour: temporal net, metric learning",
        input_size=DLIB_INPUT_SIZE,
        mean=DLIB_MEAN_01,
        std=DLIB_STD_01,
        kind="clip",
        params=983_936,
        weight_formats=("dlib_dat", "facenet_state_dict"),
    ),
)
class ABNet(ClipDetector):
    """``face_net``: ``"dlib_resnet"`` (``weights``: ``"installed"``, a ``.dat`` path, or ``None``) or
    ``"inception_resnet_v1"`` (``weights``: a facenet-pytorch state dict, or ``None``); frozen either way."""

    def __init__(
        self,
        input_size: int | None = None,
        weights: str | Path | None = INSTALLED,
        face_net: str = DLIB,
        block_repeats: Sequence[int] = FULL_REPEATS,
        behaviour_dim: int = 128,
        behaviour_width: int = 256,
        min_frames: int = 2,
        appearance_threshold: float = DLIB_DISTANCE_THRESHOLD,
        behaviour: str = "appearance",
    ):
        super().__init__()
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"ABNet behaviour must be one of {BEHAVIOURS}, got {behaviour!r}")
        self.behaviour_source = behaviour
        facts = face_net_facts(face_net)
        self.mean, self.std = facts.mean, facts.std
        self.input_size = face_input_size(input_size, face_net)
        self.appearance = Frozen(build_face_net(face_net, weights, block_repeats))
        self.dlib = isinstance(self.appearance.module, DlibResNet)
        frame_dim = 256 * DLIB_FRAME_GRID**2 if self.dlib else facts.embedding_dim
        self.appearance_dim = frame_dim  # per-frame features of the face net (appearance)
        in_dim = LANDMARK_DIM if behaviour == "landmarks" else frame_dim
        self.behaviour = BehaviourNet(in_dim, behaviour_dim, behaviour_width)
        self.behaviour_dim = behaviour_dim
        self.min_frames = min_frames
        self.appearance_threshold = appearance_threshold
        self.identities: list[str] = []
        self.register_buffer("ref_identity", torch.zeros(0, dtype=torch.long))
        self.register_buffer("ref_appearance", torch.zeros(0, facts.embedding_dim))
        self.register_buffer("ref_behaviour", torch.zeros(0, behaviour_dim))
        self.register_buffer("distance_threshold", torch.tensor(0.5))
        self.register_buffer("distance_scale", torch.tensor(10.0))

    # --- embeddings
    @torch.no_grad()
    def frame_features(self, clips: torch.Tensor) -> torch.Tensor:
        """Normalised clips ``(B, T, C, H, W)`` -> per-frame features ``(B, T, F)``: the frozen
        network's, followed (``behaviour="landmarks"``) by the 136 normalised landmark coordinates."""
        frames, b, t = self.clip_frames(clips)
        if self.dlib:
            maps = self.appearance.module.features(frames)
            feats = F.adaptive_avg_pool2d(maps, DLIB_FRAME_GRID).flatten(1)
        else:
            feats = self.appearance(frames)
        feats = feats.unflatten(0, (b, t))
        if self.behaviour_source == "landmarks":
            feats = torch.cat([feats, self.landmark_features(clips).to(feats)], dim=2)
        return feats

    @torch.no_grad()
    def landmark_features(self, clips: torch.Tensor) -> torch.Tensor:
        """Normalised clips -> dlib's 68 landmarks per frame, normalised for position and size
        ``(B, T, 136)``. Clips are aligned face crops: where dlib's detector finds no face, the
        points are placed in the crop's central face box."""
        mean = torch.tensor(self.mean, device=clips.device).view(1, 1, 3, 1, 1)
        std = torch.tensor(self.std, device=clips.device).view(1, 1, 3, 1, 1)
        pixels = ((clips.float() * std + mean) * 255.0).round().clamp(0, 255).to(torch.uint8)
        pixels = pixels.permute(0, 1, 3, 4, 2).cpu().numpy()
        out = [
            normalise_landmarks(clip_landmarks(np.ascontiguousarray(c), no_face="crop_box")[0])
            for c in pixels
        ]
        return torch.from_numpy(np.stack(out))

    def appearance_part(self, features: torch.Tensor) -> torch.Tensor:
        return features[..., : self.appearance_dim]

    @torch.no_grad()
    def appearance_from_features(self, features: torch.Tensor) -> torch.Tensor:
        """``(B, T, F)`` -> the segment's appearance, the mean of its frame descriptors ``(B, D)``."""
        features = self.appearance_part(features)
        if self.dlib:  # dlib's descriptor: fc of the spatial mean of the last residual map
            maps = features.unflatten(-1, (256, DLIB_FRAME_GRID**2)).mean(dim=-1)
            return self.appearance.module.fc(maps).mean(dim=1)
        return features.mean(dim=1)

    def behaviour_from_features(self, features: torch.Tensor) -> torch.Tensor:
        """``(B, T, F)`` -> unit behaviour embeddings; ``behaviour="landmarks"`` reads only the
        landmark part of the features, never the face net's."""
        if self.behaviour_source == "landmarks":
            features = features[..., self.appearance_dim :]
        return self.behaviour(features)

    # --- enrolment
    def enrol(self, names: Sequence[str], appearance: torch.Tensor, behaviour: torch.Tensor) -> None:
        """Reference embeddings, one row per reference segment of the named identity; replaces
        any earlier enrolment."""
        if not (len(names) == len(appearance) == len(behaviour)):
            raise ValueError(
                f"enrol needs one name per reference, got {len(names)}, {len(appearance)}, {len(behaviour)}"
            )
        self.identities = sorted(set(names))
        code = {n: i for i, n in enumerate(self.identities)}
        device = self.ref_appearance.device
        self.ref_identity = torch.tensor([code[n] for n in names], dtype=torch.long, device=device)
        self.ref_appearance = appearance.detach().float().to(device)
        self.ref_behaviour = behaviour.detach().float().to(device)

    def set_distance_threshold(self, threshold: float, scale: float) -> None:
        self.distance_threshold.fill_(threshold)
        self.distance_scale.fill_(scale)

    def get_extra_state(self) -> dict:
        return {"identities": list(self.identities)}

    def set_extra_state(self, state: dict) -> None:
        self.identities = [str(n) for n in state.get("identities", [])]

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name in ("ref_identity", "ref_appearance", "ref_behaviour"):  # sized by the enrolment
            stored = state_dict.get(prefix + name)
            if stored is not None:
                setattr(self, name, getattr(self, name).new_zeros(stored.shape))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # --- decision
    def claim(self, appearance: torch.Tensor) -> torch.Tensor:
        """The enrolled identity each appearance is nearest to, if within ``appearance_threshold``,
        else -1."""
        claimed = torch.full((len(appearance),), UNKNOWN, dtype=torch.long, device=appearance.device)
        if not len(self.ref_appearance):
            return claimed
        d = torch.cdist(appearance.float(), self.ref_appearance.float())
        nearest, index = d.min(dim=1)
        found = nearest <= self.appearance_threshold
        claimed[found] = self.ref_identity[index[found]]
        return claimed

    def behaviour_distance(self, behaviour: torch.Tensor, claimed: torch.Tensor) -> torch.Tensor:
        """Euclidean distance of each (unit) behaviour embedding to the nearest behaviour reference
        of its claimed identity; NaN where none is claimed."""
        if not len(self.ref_behaviour):
            return behaviour.new_full((len(behaviour),), float("nan"))
        d = torch.cdist(behaviour, self.ref_behaviour.to(behaviour.dtype))
        same = claimed[:, None] == self.ref_identity[None, :]
        nearest = d.masked_fill(~same, float("inf")).min(dim=1).values
        return torch.where(claimed >= 0, nearest, torch.full_like(nearest, float("nan")))

    def decide_from_features(self, features: torch.Tensor) -> ABNetDecision:
        claimed = self.claim(self.appearance_from_features(features))
        if features.shape[1] < self.min_frames:  # a still, or too short: no behaviour to compare
            claimed = torch.full_like(claimed, UNKNOWN)
        distance = self.behaviour_distance(self.behaviour_from_features(features), claimed)
        unknown = claimed < 0
        logits = (distance - self.distance_threshold) * self.distance_scale
        return ABNetDecision(logits, claimed, distance, unknown)

    def decide(self, clips: torch.Tensor) -> ABNetDecision:
        """Normalised clips -> the decision, with the claimed identity (``identities[claimed]``)."""
        return self.decide_from_features(self.frame_features(clips))

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """P(fake) logits ``(B,)``; NaN for clips whose identity is unknown (no references)."""
        return self.decide(clips).logits
