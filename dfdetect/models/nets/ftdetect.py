"""FTDetect, i.e. FakeTalkerDetect (Jeon, Bang & Woo, ICCV workshops 2019), after the authors'
Keras code (GitHub cutz-j/FakeTalkerDetect: ``main.ipynb`` of commit 89db8ba, ``model/alexnet.py``,
``model/siamesenet.py``, ``utils/generators.py``, ``evaluate.py``).

Stage 1, a base classifier: the authors' AlexNet variant (``backbone="alexnet"``, default; 224 px,
4,802,593 parameters, frames scaled to [0, 1] as their ``ImageDataGenerator(1/255)``), then
``Dense(4096) -> ReLU -> Dense(1)`` (sigmoid = P(fake)). Stage 2, few-shot Siamese fine-tuning:
everything but the last ``Dense(1)`` is frozen, both Siamese branches share the net, a branch's
output is the sigmoid score, pairs of real images are pulled together (distance -> 0), and a test
image is scored by its distance to real reference images. ``FTDetectModule`` runs the stages; this
net holds the reference embeddings, the distance threshold and scale (buffers) and, once
``siamese_ready``, answers with ``(distance - threshold) * scale``.

``backbone="face"`` (our option) puts a face-recognition embedding (``face_net``
``"inception_resnet_v1"``, a user's weights or random, or ``"dlib_resnet"``, dlib's trained
ResNet; see ``face_backbone``) under the same head, fine-tuned in stage 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from dfdetect.models.layers.face_backbone import (
    FULL_REPEATS,
    INCEPTION,
    face_input_size,
    face_net_facts,
)
from dfdetect.models.layers.keras_compat import TFSamePad2d, keras_glorot_
from dfdetect.models.nets.base import FrameDetector
from dfdetect.models.nets.dlib_face import build_face_net
from dfdetect.models.nets.registry import NetInfo, register_net

BACKBONES = ("face", "alexnet")
ALEXNET_MIN_INPUT = 57  # below this the third 3x3 stride-2 max-pool sees less than 3x3
ALEXNET_INPUT = 224  # the authors' notebook (main.ipynb); their later main.py uses 64


def conv_relu(c_in: int, c_out: int, kernel: int, stride: int = 1) -> list[nn.Module]:
    """Keras ``Conv2D(padding='same', use_bias=False)`` + ReLU."""
    pad = TFSamePad2d(kernel, stride) if stride > 1 else nn.ZeroPad2d(kernel // 2)
    return [pad, nn.Conv2d(c_in, c_out, kernel, stride=stride, bias=False), nn.ReLU(inplace=True)]


class AuthorsAlexNet(nn.Sequential):
    """``model/alexnet.py`` of FakeTalkerDetect up to its global average pooling: 256 features."""

    out_dim = 256

    def __init__(self):
        super().__init__(
            *conv_relu(3, 96, 11, stride=4),
            *conv_relu(96, 256, 5),
            nn.MaxPool2d(3, 2),
            *conv_relu(256, 384, 3),
            nn.MaxPool2d(3, 2),
            *conv_relu(384, 384, 3),
            *conv_relu(384, 256, 3),
            nn.MaxPool2d(3, 2),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )


@register_net(
    "ftdetect",
    NetInfo(
        paper="Jeon, Bang & Woo, FakeTalkerDetect, ICCV-W 2019",
        code="github.com/cutz-j/FakeTalkerDetect main.ipynb (commit 89db8ba), model/alexnet.py",
        input_size=ALEXNET_INPUT,
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),
        kind="frame",
        params=4_802_593,
        weight_formats=("facenet_state_dict", "dlib_dat"),
    ),
)
class FTDetect(FrameDetector):
    def __init__(
        self,
        input_size: int | None = None,
        backbone: str = "alexnet",
        weights: str | Path | None = None,
        face_net: str = INCEPTION,
        block_repeats: Sequence[int] = FULL_REPEATS,
        hidden: int = 4096,
    ):
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, got {backbone!r}")
        if backbone == "face":
            facts = face_net_facts(face_net)
            self.mean, self.std = facts.mean, facts.std
            self.input_size = face_input_size(input_size, face_net)
            self.features = build_face_net(face_net, weights, block_repeats)
            feature_dim = facts.embedding_dim
        else:
            if weights is not None:
                raise ValueError("weights apply to the face backbone; the AlexNet base trains from scratch")
            self.mean, self.std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
            self.input_size = max(int(input_size or ALEXNET_INPUT), ALEXNET_MIN_INPUT)
            self.features = AuthorsAlexNet()
            feature_dim = AuthorsAlexNet.out_dim
        self.hidden = nn.Sequential(nn.Linear(feature_dim, hidden), nn.ReLU(inplace=True))
        self.final = nn.Linear(hidden, 1)
        keras_glorot_(self.hidden)
        keras_glorot_(self.final)
        if backbone == "alexnet":
            keras_glorot_(self.features)
        self.frozen_below_final = False
        self.register_buffer("reference_embeddings", torch.zeros(0, 1))
        self.register_buffer("distance_threshold", torch.tensor(0.0))
        self.register_buffer("distance_scale", torch.tensor(1.0))
        self.register_buffer("siamese_ready", torch.tensor(False))

    # --- stage 1: the base classifier
    def clip_features(self, clips: torch.Tensor) -> torch.Tensor:
        """Normalised clips ``(B, T, C, H, W)`` -> the input of the last layer, ``(B, T, hidden)``."""
        frames, b, t = self.clip_frames(clips)
        return self.hidden(self.features(frames)).unflatten(0, (b, t))

    def base_logits(self, features: torch.Tensor) -> torch.Tensor:
        return self.final(features).squeeze(-1).mean(dim=1)

    # --- stage 2: the Siamese branch output and the distance to real references
    def embeddings(self, features: torch.Tensor) -> torch.Tensor:
        """``(B, T, hidden)`` -> the Siamese branch output, the frames' mean sigmoid score, ``(B, 1)``."""
        return torch.sigmoid(self.final(features)).mean(dim=1)

    def reference_distances(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Mean Euclidean distance of each embedding to the reference (real) embeddings, ``(B,)``."""
        return torch.cdist(embeddings, self.reference_embeddings).mean(dim=1)

    def distance_logits(self, distances: torch.Tensor) -> torch.Tensor:
        return (distances - self.distance_threshold) * self.distance_scale

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        features = self.clip_features(clips)
        if bool(self.siamese_ready):
            return self.distance_logits(self.reference_distances(self.embeddings(features)))
        return self.base_logits(features)

    def freeze_below_final(self) -> None:
        """Stage 2: only the last layer trains; the layers below it run in eval mode."""
        for p in self.parameters():
            p.requires_grad_(False)
        for p in self.final.parameters():
            p.requires_grad_(True)
        self.frozen_below_final = True
        self.train(self.training)

    def train(self, mode: bool = True) -> FTDetect:
        super().train(mode)
        if self.frozen_below_final:
            self.features.eval()
            self.hidden.eval()
        return self

    def set_references(self, embeddings: torch.Tensor) -> None:
        self.reference_embeddings = embeddings.detach().to(self.reference_embeddings)
        self.siamese_ready.fill_(len(embeddings) > 0)

    def set_distance_threshold(self, threshold: float, scale: float) -> None:
        self.distance_threshold.fill_(threshold)
        self.distance_scale.fill_(scale)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        stored = state_dict.get(prefix + "reference_embeddings")
        if stored is not None:  # the bank's size is set by the run that filled it
            self.reference_embeddings = self.reference_embeddings.new_zeros(stored.shape)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
