"""ShallowNet V1, V2 and V3 (Tariq et al., MPS 2018 and SAC 2019), as the authors' released Keras code.

Layer lists follow ``shahroztariq/ShallowNet`` ``src/models.py`` (see docs/models.md, ShallowNet):
every unit is conv -> [BatchNorm] -> ReLU -> [max-pool] -> Dropout(0.25), then Flatten -> Dense ->
[ReLU] -> BatchNorm -> Dropout -> output. Keras details kept: ``same`` padding as TensorFlow pads
(odd pad pixel after), ``valid`` pooling, BatchNormalization eps 1e-3, Glorot initialisation and
an L2 penalty of 1e-4 on every convolution kernel and the hidden dense kernel (not on biases,
BatchNorm or the output layer). The Keras output is ``Dense(2, sigmoid)``; ours is one P(fake)
logit. Features are flattened in PyTorch (C, H, W) order. Input: 128x128 scaled to [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import NamedTuple

import torch
from torch import nn

from dfdetect.models.layers.keras_compat import (
    KERAS_BN_EPS,
    KERAS_BN_MOMENTUM,
    L2Conv2d,
    L2Linear,
    TFSamePad2d,
    keras_glorot_,
)
from dfdetect.models.nets.base import FrameDetector
from dfdetect.models.nets.registry import UNIT_SCALE, NetInfo, register_net


class Unit(NamedTuple):
    channels: int
    kernel: int
    stride: int = 1
    pool: tuple[int, int] | None = None  # (size, stride) of a 'valid' max-pool after the ReLU


def unit_layers(
    c_in: int, unit: Unit, padding: str, bn_momentum: float | None, dropout: float, kernel_l2: float
) -> list:
    k, s = unit.kernel, unit.stride
    layers: list[nn.Module] = []
    if padding == "same" and s > 1:
        layers.append(TFSamePad2d(k, s))
    pad = k // 2 if padding == "same" and s == 1 else 0
    layers.append(L2Conv2d(c_in, unit.channels, k, s, padding=pad, kernel_l2=kernel_l2))
    if bn_momentum is not None:
        layers.append(nn.BatchNorm2d(unit.channels, eps=KERAS_BN_EPS, momentum=bn_momentum))
    layers.append(nn.ReLU(inplace=True))
    if unit.pool is not None:
        layers.append(nn.MaxPool2d(*unit.pool))
    layers.append(nn.Dropout(dropout))
    return layers


def feature_side(size: int, units: Iterable[Unit], padding: str) -> int:
    """Side of the last feature map for a square input of ``size``; 0 when the input is too small."""
    for unit in units:
        if padding == "same":
            size = math.ceil(size / unit.stride)
        elif size < unit.kernel:
            return 0
        else:
            size = (size - unit.kernel) // unit.stride + 1
        if unit.pool is not None:
            if size < unit.pool[0]:
                return 0
            size = (size - unit.pool[0]) // unit.pool[1] + 1
    return size


class _ShallowNet(FrameDetector):
    units: tuple[Unit, ...]
    padding: str
    conv_batch_norm: bool
    hidden: int
    hidden_relu: bool

    def __init__(
        self,
        input_size: int | None = None,
        dropout: float = 0.25,
        kernel_l2: float = 1e-4,
        bn_momentum: float = KERAS_BN_MOMENTUM,
    ):
        super().__init__()
        input_size = self.native_input_size(input_size)
        side = feature_side(input_size, self.units, self.padding)
        if side < 1:
            smallest = next(s for s in range(1, 4096) if feature_side(s, self.units, self.padding) > 0)
            raise ValueError(f"{type(self).__name__} needs input_size >= {smallest}, got {input_size}")
        self.input_size = input_size
        layers, c_in = [], 3
        for unit in self.units:
            bn = bn_momentum if self.conv_batch_norm else None
            layers += unit_layers(c_in, unit, self.padding, bn, dropout, kernel_l2)
            c_in = unit.channels
        self.features = nn.Sequential(*layers)
        hidden = L2Linear(c_in * side * side, self.hidden, kernel_l2=kernel_l2)
        self.head = nn.Sequential(
            nn.Flatten(),
            hidden,
            *([nn.ReLU(inplace=True)] if self.hidden_relu else []),
            nn.BatchNorm1d(self.hidden, eps=KERAS_BN_EPS, momentum=bn_momentum),
            nn.Dropout(dropout),
            nn.Linear(self.hidden, 1),
        )
        keras_glorot_(self)

    def forward_frames(self, frames: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(frames)).squeeze(1)


def _block(channels: int, last_stride: int = 1, pool: tuple[int, int] | None = None) -> tuple[Unit, ...]:
    """Three 3x3 units of one width, as V1's and V2's blocks."""
    return (Unit(channels, 3), Unit(channels, 3), Unit(channels, 3, last_stride, pool))


@register_net(
    "shallownet_v1",
    NetInfo(
        paper="Tariq et al., MPS 2018 (ShallowNet V1)",
        code="github.com/shahroztariq/ShallowNet src/models.py",
        input_size=128,
        mean=UNIT_SCALE[0],
        std=UNIT_SCALE[1],
        kind="frame",
        params=26_268_860,
    ),
)
class ShallowNetV1(_ShallowNet):
    """Five blocks of three 3x3 conv-BN-ReLU units with 3/2 max-pooling, then 3x3 + 1x1 units of 437."""

    units = (
        *(u for c in (96, 192, 257, 311, 396) for u in _block(c, pool=(3, 2))),
        Unit(437, 3),
        Unit(437, 1),
    )
    padding = "same"
    conv_batch_norm = True
    hidden = 3933
    hidden_relu = False


@register_net(
    "shallownet_v2",
    NetInfo(
        paper="Tariq et al., SAC 2019 (ShallowNet V2)",
        code="github.com/shahroztariq/ShallowNet src/models.py",
        input_size=128,
        mean=UNIT_SCALE[0],
        std=UNIT_SCALE[1],
        kind="frame",
        params=202_698_497,
    ),
)
class ShallowNetV2(_ShallowNet):
    """Two blocks of three 3x3 conv-ReLU units, the third with stride 2, then a 3x3 and a 1x1 unit."""

    units = (*_block(96, last_stride=2), *_block(192, last_stride=2), Unit(192, 3), Unit(192, 1))
    padding = "same"
    conv_batch_norm = False
    hidden = 1024
    hidden_relu = True


@register_net(
    "shallownet_v3",
    NetInfo(
        paper="Tariq et al., SAC 2019 (ShallowNet V3)",
        code="github.com/shahroztariq/ShallowNet src/models.py",
        input_size=128,
        mean=UNIT_SCALE[0],
        std=UNIT_SCALE[1],
        kind="frame",
        params=25_803_553,
    ),
)
class ShallowNetV3(_ShallowNet):
    """Unpadded conv + two 1x1 units with 2x2 pooling, twice, then a 3x3 and a 1x1 unit."""

    units = (
        Unit(32, 5),
        Unit(32, 1),
        Unit(32, 1, pool=(2, 2)),
        Unit(64, 3),
        Unit(64, 1),
        Unit(64, 1, pool=(2, 2)),
        Unit(128, 3),
        Unit(32, 1),
    )
    padding = "valid"
    conv_batch_norm = False
    hidden = 1024
    hidden_relu = True
