"""ABNet: deepfake detection from appearance and behaviour (Agarwal, El-Gaaly, Farid & Lim,
WIFS 2020, arXiv 2004.14491), for 5-frame clips. The authors' code is not public; docs/models.md
("ABNet") records what we took from the paper and what we chose.

- Appearance: a face-recognition embedding of every frame, averaged over the clip -- who the face
  looks like. ``face_net="dlib_resnet"`` (default): dlib's trained ResNet, frozen, from the installed
  ``.dat``; ``"inception_resnet_v1"``: facenet-pytorch's net with a user's weights (see ``face_backbone``).
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

from dfdetect.models.layers.dlib_resnet import DLIB_INPUT_SIZE, DLIB_MEAN_01, DLIB_STD_01
from dfdetect.models.layers.face_backbone import (
    DLIB,
    FULL_REPEATS,
    face_embeddings,
    face_input_size,
    face_net_facts,
)
from dfdetect.models.layers.frozen import Frozen
from dfdetect.models.nets.base import ClipDetector
from dfdetect.models.nets.dlib_face import INSTALLED, build_face_net
from dfdetect.models.nets.registry import NetInfo, register_net

_INITIAL_SCALE = 10.0  # softplus(raw) of the logit's slope at start


class ABNetEmbeddings(NamedTuple):
    appearance: torch.Tensor  # (B, 128 or 512) face-recognition embedding, L2-normalised
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
        code="none published; appearance net: dlib's face-recognition ResNet (or InceptionResnetV1)",
        input_size=DLIB_INPUT_SIZE,
        mean=DLIB_MEAN_01,
        std=DLIB_STD_01,
        kind="clip",
        params=701_090,
        weight_formats=("dlib_dat", "facenet_state_dict"),
    ),
)
class ABNet(ClipDetector):
    """Appearance + behaviour detector. ``face_net``: ``"dlib_resnet"`` (``weights``: ``"installed"``,
    a ``.dat`` path, or ``None``) or ``"inception_resnet_v1"`` (``weights``: a facenet-pytorch state
    dict, or ``None``). With weights the appearance net is frozen unless ``freeze_appearance=False``;
    without, it is trained with the rest (unless ``freeze_appearance=True``)."""

    mean = DLIB_MEAN_01
    std = DLIB_STD_01

    def __init__(
        self,
        input_size: int | None = None,
        weights: str | Path | None = INSTALLED,
        freeze_appearance: bool | None = None,
        face_net: str = DLIB,
        block_repeats: Sequence[int] = FULL_REPEATS,
        behaviour_size: int = 64,
        behaviour_dim: int = 128,
        identity_dim: int = 128,
    ):
        super().__init__()
        facts = face_net_facts(face_net)
        self.mean, self.std = facts.mean, facts.std
        self.input_size = face_input_size(input_size, face_net)
        backbone = build_face_net(face_net, weights, block_repeats)
        frozen = weights is not None if freeze_appearance is None else freeze_appearance
        self.appearance = Frozen(backbone) if frozen else backbone
        self.behaviour = BehaviourEncoder(behaviour_size, dim=behaviour_dim)
        self.appearance_to_identity = nn.Linear(facts.embedding_dim, identity_dim)
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
