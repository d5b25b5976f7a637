"""Meso4 and MesoInception4 (Afchar et al., WIFS 2018), layer for layer as the authors' Keras code.

Keras details kept: ``padding='same'`` everywhere (TensorFlow puts the odd pad pixel after),
BatchNormalization eps 1e-3, LeakyReLU 0.1, dropout 0.5, Glorot initialisation and a 256x256
input scaled to [0, 1]. ``bn_momentum`` defaults to Keras' 0.99 (0.01 in PyTorch's convention);
short schedules want PyTorch's 0.1, or the running statistics lag far behind the weights.
Our head emits the logit of P(fake); the Keras head's sigmoid is P(real). The dense layer reads
features flattened in PyTorch (C, H, W) order.
``weights=<file>.h5`` loads the authors' Keras weights (see ``dfdetect.models.weights.keras_h5``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from dfdetect.models.layers.keras_compat import KERAS_BN_EPS, KERAS_BN_MOMENTUM, SameMaxPool2d, keras_glorot_
from dfdetect.models.nets.base import FrameDetector
from dfdetect.models.nets.registry import UNIT_SCALE, NetInfo, register_net
from dfdetect.models.weights.keras_h5 import load_mesonet_keras


def pooled_size(size: int, pools: tuple[int, ...]) -> int:
    for k in pools:
        size = math.ceil(size / k)
    return size


class ConvReLU(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, dilation: int = 1):
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel, padding=dilation * (kernel // 2), dilation=dilation),
            nn.ReLU(inplace=True),
        )


class InceptionLayer(nn.Module):
    """MesoInception block: 1x1, 1x1->3x3, 1x1->3x3 dilation 2, 1x1->3x3 dilation 3, concatenated."""

    def __init__(self, c_in: int, a: int, b: int, c: int, d: int):
        super().__init__()
        self.branch1 = ConvReLU(c_in, a, 1)
        self.branch2 = nn.Sequential(ConvReLU(c_in, b, 1), ConvReLU(b, b, 3))
        self.branch3 = nn.Sequential(ConvReLU(c_in, c, 1), ConvReLU(c, c, 3, dilation=2))
        self.branch4 = nn.Sequential(ConvReLU(c_in, d, 1), ConvReLU(d, d, 3, dilation=3))
        self.out_channels = a + b + c + d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], dim=1)


class MesoHead(nn.Sequential):
    def __init__(self, in_features: int, dropout: float):
        super().__init__(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(in_features, 16),
            nn.LeakyReLU(0.1),
            nn.Dropout(dropout),
            nn.Linear(16, 1),
        )


def batch_norm(channels: int, momentum: float) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=KERAS_BN_EPS, momentum=momentum)


def conv_bn_pool(c_in: int, c_out: int, kernel: int, pool: int, bn_momentum: float) -> nn.Sequential:
    return nn.Sequential(ConvReLU(c_in, c_out, kernel), batch_norm(c_out, bn_momentum), SameMaxPool2d(pool))


def _meso_info(variant: str, keras_name: str, params: int) -> NetInfo:
    return NetInfo(
        paper=f"Afchar et al., MesoNet, WIFS 2018 ({variant})",
        code=f"github.com/DariusAf/MesoNet classifiers.py {keras_name}",
        input_size=256,
        mean=UNIT_SCALE[0],
        std=UNIT_SCALE[1],
        kind="frame",
        params=params,
        weight_formats=("keras_h5",),
    )


class _MesoBase(FrameDetector):
    pools = (2, 2, 2, 4)

    def __init__(self, input_size: int | None = None, dropout: float = 0.5):
        super().__init__()
        self.input_size = input_size = self.native_input_size(input_size)
        side = pooled_size(input_size, self.pools)
        self.head = MesoHead(16 * side * side, dropout)

    def initialise(self, weights: str | None) -> None:
        """Keras' initialisation, then the authors' ``.h5`` weights where given (subclasses call
        this once their layers exist)."""
        keras_glorot_(self)
        if weights is not None:
            load_mesonet_keras(self, weights)

    def forward_frames(self, frames: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(frames)).squeeze(1)


@register_net("meso4", _meso_info("Meso-4", "Meso4", params=27_977))
class Meso4(_MesoBase):
    def __init__(
        self,
        input_size: int | None = None,
        dropout: float = 0.5,
        bn_momentum: float = KERAS_BN_MOMENTUM,
        weights: str | None = None,
    ):
        super().__init__(input_size, dropout)
        m = bn_momentum
        self.features = nn.Sequential(
            conv_bn_pool(3, 8, 3, 2, m),
            conv_bn_pool(8, 8, 5, 2, m),
            conv_bn_pool(8, 16, 5, 2, m),
            conv_bn_pool(16, 16, 5, 4, m),
        )
        self.initialise(weights)


@register_net("mesoinception4", _meso_info("MesoInception-4", "MesoInception4", params=28_615))
class MesoInception4(_MesoBase):
    def __init__(
        self,
        input_size: int | None = None,
        dropout: float = 0.5,
        bn_momentum: float = KERAS_BN_MOMENTUM,
        weights: str | None = None,
    ):
        super().__init__(input_size, dropout)
        m = bn_momentum
        inc1 = InceptionLayer(3, 1, 4, 4, 2)
        inc2 = InceptionLayer(inc1.out_channels, 2, 4, 4, 2)
        self.features = nn.Sequential(
            inc1,
            batch_norm(inc1.out_channels, m),
            SameMaxPool2d(2),
            inc2,
            batch_norm(inc2.out_channels, m),
            SameMaxPool2d(2),
            conv_bn_pool(inc2.out_channels, 16, 5, 2, m),
            conv_bn_pool(16, 16, 5, 4, m),
        )
        self.initialise(weights)
