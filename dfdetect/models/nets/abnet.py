"""ABNet: deepfake detection from appearance and behaviour (Agarwal, El-Gaaly, Farid & Lim,
WIFS 2020, arXiv 2004.14491), for 5-frame clips. The authors' code is not public; docs/models.md
("ABNet") records what we took from the paper and what we chose.

- Appearance: a face-recognition embedding (InceptionResnetV1, see ``face_backbone``) of every
  frame, averaged over the clip -- who the face looks like.
- Behaviour: per-frame facial features and their frame-to-frame change, fed to a temporal CNN
  -- how the face moves.
- Decision: both embeddings are projected into one identity space; a real clip looks like and
  moves like the same person, a face swap looks like the target and moves like the source. The
  P(fake) logit grows as the two projections disagree: ``softplus(s) * (m - cos)``. The
  metric-learning term that shapes the identity space lives in ``ABNetModule``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from dfdetect.models.layers.face_backbone import (
    EMBEDDING_DIM,
    FACENET_MEAN,
    FACENET_STD,
    FULL_REPEATS,
    NATIVE_INPUT_SIZE,
    build_face_backbone,
    face_embeddings,
    face_input_size,
)
from dfdetect.models.layers.frozen import Frozen
from dfdetect.models.nets.base import ClipDetector
from dfdetect.models.nets.registry import NetInfo, register_net

_INITIAL_SCALE = 10.0  # softplus(raw) of the logit's slope at start


class ABNetEmbeddings(NamedTuple):
    appearance: torch.Tensor  # (B, 512) face-recognition embedding, L2-normalised
    behaviour: torch.Tensor  # (B, behaviour_dim), L2-normalised
    appearance_identity: torch.Tensor  # (B, identity_dim), both projections in one space
    behaviour_identity: torch.Tensor


def conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class BehaviourEncoder(nn.Module):
    """Frames -> per-frame facial features (pose, expression) and their change between frames ->
    temporal convolutions -> mean over time -> one L2-normalised behaviour embedding."""

    def __init__(self, frame_size: int = 64, frame_dim: int = 128, dim: int = 128, temporal_dim: int = 256):
        super().__init__()
        self.frame_size = frame_size
        self.frames = nn.Sequential(
            conv_bn_relu(3, 32),
            conv_bn_relu(32, 64),
            conv_bn_relu(64, 128),
            conv_bn_relu(128, frame_dim),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.temporal = nn.Sequential(
            nn.Conv1d(2 * frame_dim, temporal_dim, 3, padding=1, bias=False),
            nn.BatchNorm1d(temporal_dim),
            nn.ReLU(inplace=True),
            nn.Conv1d(temporal_dim, temporal_dim, 3, padding=1),
            nn.ReLU(inplace=True),
        )
        self.out = nn.Linear(temporal_dim, dim)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        b, t = clips.shape[:2]
        frames = clips.flatten(0, 1)
        if frames.shape[-2:] != (self.frame_size, self.frame_size):
            frames = F.interpolate(
                frames, size=(self.frame_size,) * 2, mode="bilinear", align_corners=False, antialias=True
            )
        feats = self.frames(frames).view(b, t, -1)
        motion = feats - torch.cat([feats[:, :1], feats[:, :-1]], dim=1)  # zero at the first frame
        x = self.temporal(torch.cat([feats, motion], dim=2).transpose(1, 2))
        return F.normalize(self.out(x.mean(dim=2)), dim=1)


@register_net(
    "abnet",
    NetInfo(
        paper="Agarwal, El-Gaaly, Farid & Lim, Appearance and Behavior, CVPR-W 2020",
        code="none published; appearance net: facenet-pytorch InceptionResnetV1",
        input_size=160,
        mean=FACENET_MEAN,
        std=FACENET_STD,
        kind="clip",
        params=24_232_866,
        weight_formats=("facenet_state_dict",),
    ),
)
class ABNet(ClipDetector):
    """Appearance + behaviour detector. ``weights``: a local facenet-pytorch state dict for the
    appearance net; it is then frozen unless ``freeze_appearance=False``. Without weights the
    appearance net is trained with the rest (unless ``freeze_appearance=True``)."""

    mean = FACENET_MEAN
    std = FACENET_STD

    def __init__(
        self,
        input_size: int = NATIVE_INPUT_SIZE,
        weights: str | Path | None = None,
        freeze_appearance: bool | None = None,
        block_repeats: Sequence[int] = FULL_REPEATS,
        behaviour_size: int = 64,
        behaviour_dim: int = 128,
        identity_dim: int = 128,
    ):
        super().__init__()
        self.input_size = face_input_size(input_size)
        backbone = build_face_backbone(weights, block_repeats)
        frozen = weights is not None if freeze_appearance is None else freeze_appearance
        self.appearance = Frozen(backbone) if frozen else backbone
        self.behaviour = BehaviourEncoder(behaviour_size, dim=behaviour_dim)
        self.appearance_to_identity = nn.Linear(EMBEDDING_DIM, identity_dim)
        self.behaviour_to_identity = nn.Linear(behaviour_dim, identity_dim)
        self.raw_scale = nn.Parameter(torch.tensor(_INITIAL_SCALE))  # softplus(10) ~ 10
        self.margin = nn.Parameter(torch.tensor(0.5))

    def embeddings(self, clips: torch.Tensor) -> ABNetEmbeddings:
        """Normalised clips ``(B, T, C, H, W)`` -> the four embeddings."""
        frames, b, t = self.clip_frames(clips)
        appearance = face_embeddings(self.appearance, frames.unflatten(0, (b, t)))
        behaviour = self.behaviour(clips)
        return ABNetEmbeddings(
            appearance,
            behaviour,
            F.normalize(self.appearance_to_identity(appearance), dim=1),
            F.normalize(self.behaviour_to_identity(behaviour), dim=1),
        )

    def logits(self, emb: ABNetEmbeddings) -> torch.Tensor:
        """P(fake) logits ``(B,)``: large when who it looks like and who it moves like differ."""
        agreement = (emb.appearance_identity * emb.behaviour_identity).sum(dim=1)
        return F.softplus(self.raw_scale) * (self.margin - agreement)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.logits(self.embeddings(clips))
