"""dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1``) in PyTorch.

The network of dlib's ``dnn_face_recognition_ex.cpp`` (a ResNet-34 with layers removed and the
filters halved; 29 convolutions), layer for layer:

- input: 150x150 RGB, each plane ``(pixel - mean) / 256`` with dlib's means (122.782, 117.001,
  104.298); our ``forward`` takes pixel values in [0, 255] (float, or uint8);
- stem: 7x7/2 convolution (no padding, 32 filters) -> affine -> ReLU -> 3x3/2 max-pool (no padding);
- 14 residual blocks (``FACE_BLOCKS``: 3x32, 4x64, 3x128, 3x256 and a last 256): conv3x3 -> affine
  -> ReLU -> conv3x3 -> affine, plus the skip, then ReLU. A block of stride 2 has no padding in its
  first convolution and a 2x2/2 average-pooled skip; where the two branches differ in channels or
  size, dlib's ``add_prev`` zero-pads the smaller at the end of each dimension (the 8x8 -> 3x3
  convolution is padded to the pool's 4x4, the 4x4 -> 1x1 one to 2x2);
- global average pool, then a 256 -> 128 projection without bias: the 128-d descriptor that dlib
  compares at Euclidean distance 0.6.

"affine" is dlib's inference form of batch norm: a per-channel scale and shift (no statistics).
Weights come from dlib's own ``.dat`` (``dfdetect.models.weights.dlib_dat``), never downloaded.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dfdetect.facts.dlib import (  # noqa: F401  (the nets and face backbones read them from here)
    DLIB_DISTANCE_THRESHOLD,
    DLIB_EMBEDDING_DIM,
    DLIB_INPUT_SIZE,
    DLIB_MIN_INPUT_SIZE,
    FACE_BLOCKS,
    FACE_MEANS,
)

# dlib's input normalisation, (pixel - mean) / 256, written as a detector's mean/std on the 0-1 scale
DLIB_MEAN_01 = tuple(m / 255 for m in FACE_MEANS)
DLIB_STD_01 = (256 / 255,) * 3


class Affine(nn.Module):
    """Per-channel ``x * weight + bias`` (dlib's ``affine`` layer)."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1, 1, 1)
        return x * self.weight.view(shape).to(x.dtype) + self.bias.view(shape).to(x.dtype)


def add_zero_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's ``add_prev``: the sum over the larger shape, each input zero-padded at the end."""
    if a.shape == b.shape:
        return a + b
    c, h, w = (max(a.shape[i], b.shape[i]) for i in (1, 2, 3))

    def grow(t: torch.Tensor) -> torch.Tensor:
        return F.pad(t, (0, w - t.shape[3], 0, h - t.shape[2], 0, c - t.shape[1]))

    return grow(a) + grow(b)


class Stem(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 32, 7, stride=2)
        self.affine = Affine(32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(F.relu(self.affine(self.conv(x))), 3, 2)


class ResidualBlock(nn.Module):
    """dlib's ``ares`` (stride 1) or ``ares_down`` (stride 2) block."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.stride = stride
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1 if stride == 1 else 0)
        self.affine1 = Affine(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.affine2 = Affine(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.affine2(self.conv2(F.relu(self.affine1(self.conv1(x)))))
        skip = F.avg_pool2d(x, 2, 2) if self.stride == 2 else x
        return F.relu(add_zero_padded(y, skip))


class DlibResNet(nn.Module):
    """The 128-d face descriptor network, randomly initialised or from ``state`` (the arrays of
    ``dfdetect.models.weights.dlib_dat.load_face_recognition_weights``; ``dfdetect.models.nets.
    dlib_face.dlib_resnet`` builds it from the installed ``.dat`` or a path).

    ``normalised_input=True``: ``forward`` takes frames already normalised with ``DLIB_MEAN_01`` /
    ``DLIB_STD_01`` (what a detector's module feeds its net), i.e. ``(pixel - mean) / 256``.
    Named layers (for activations): ``stem``, ``blocks.0`` ... ``blocks.13`` (after each block's
    ReLU), ``fc`` (the descriptor); ``layer_names()`` lists them in forward order."""

    def __init__(
        self, state: Mapping[str, np.ndarray | torch.Tensor] | None = None, normalised_input: bool = False
    ):
        super().__init__()
        self.normalised_input = normalised_input
        self.register_buffer("mean", torch.tensor(FACE_MEANS, dtype=torch.float32).view(1, 3, 1, 1))
        self.stem = Stem()
        blocks, cin = [], 32
        for cout, stride in FACE_BLOCKS:
            blocks.append(ResidualBlock(cin, cout, stride))
            cin = cout
        self.blocks = nn.ModuleList(blocks)
        self.fc = nn.Linear(cin, DLIB_EMBEDDING_DIM, bias=False)
        if state is not None:
            self.load_state_dict({k: torch.as_tensor(np.asarray(v)) for k, v in state.items()}, strict=True)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last block's ReLU output, ``(B, 256, 2, 2)`` at 150x150."""
        if x.dtype == torch.uint8:
            x = x.float()
        if not self.normalised_input:
            x = (x - self.mean.to(x.dtype)) / 256.0
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, 150, 150)`` RGB pixels in [0, 255] -> ``(B, 128)`` descriptors."""
        return self.fc(self.features(x).mean(dim=(2, 3)))

    def layer_names(self) -> list[str]:
        return ["stem", *(f"blocks.{i}" for i in range(len(self.blocks))), "fc"]


def parameter_counts(net: DlibResNet) -> dict[str, int]:
    """Parameters by kind, as the reference counts them: conv (weights + biases), affine, fc."""
    counts = {"conv": 0, "affine": 0, "fc": 0}
    for module in net.modules():
        kind = {nn.Conv2d: "conv", Affine: "affine", nn.Linear: "fc"}.get(type(module))
        if kind:
            counts[kind] += sum(p.numel() for p in module.parameters())
    counts["total"] = sum(counts.values())
    return counts
