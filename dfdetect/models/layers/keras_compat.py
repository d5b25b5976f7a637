"""Keras / TensorFlow behaviour in PyTorch, written once for every net that follows Keras code:
``padding='same'`` for convolutions and max-pooling (TensorFlow puts the odd pad pixel after),
BatchNormalization constants, the default initialisers and ``kernel_regularizer=l2(...)``."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

KERAS_BN_EPS = 1e-3
KERAS_BN_MOMENTUM = 0.01  # Keras momentum=0.99, in PyTorch's convention
KERAS_TRUNCATED_NORMAL_STD = 0.87962566103423978  # std of a unit normal truncated to [-2, 2]


def same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow ``same`` padding of one axis: (before, after), the odd pixel after."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def conv2d_same(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int
) -> torch.Tensor:
    """``F.conv2d`` with TensorFlow ``same`` padding (a padded copy only where it is uneven)."""
    top, bottom = same_pads(x.shape[-2], weight.shape[-2], stride)
    left, right = same_pads(x.shape[-1], weight.shape[-1], stride)
    if top == bottom and left == right:
        return F.conv2d(x, weight, bias, stride, (top, left))
    return F.conv2d(F.pad(x, (left, right, top, bottom)), weight, bias, stride)


class TFSamePad2d(nn.Module):
    """The zero padding TensorFlow's ``padding='same'`` adds for a strided convolution."""

    def __init__(self, kernel: int, stride: int):
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left, right = same_pads(x.shape[-1], self.kernel, self.stride)
        top, bottom = same_pads(x.shape[-2], self.kernel, self.stride)
        return F.pad(x, [left, right, top, bottom])


class SameMaxPool2d(nn.Module):
    """``MaxPooling2D(pool_size=k, padding='same')`` of TensorFlow: stride k, pad split low/high."""

    def __init__(self, kernel_size: int):
        super().__init__()
        self.kernel_size = kernel_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # TensorFlow pads total <= k - 1, the odd pixel after: PyTorch's implicit -inf padding of
        # total // 2 on both sides plus ceil_mode, which keeps the last window that overhangs by
        # one, gives the same windows without a padded copy
        k = self.kernel_size
        pads = [same_pads(size, k, k)[0] for size in x.shape[-2:]]
        return F.max_pool2d(x, k, k, padding=pads, ceil_mode=True)


def keras_glorot_(module: nn.Module) -> None:
    """Keras defaults for every convolution and dense layer: glorot-uniform kernels, zero biases."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def he_normal_(weight: torch.Tensor) -> None:
    """Keras ``he_normal``: normal truncated at two standard deviations, variance 2 / fan_in."""
    std = math.sqrt(2.0 / weight[0].numel()) / KERAS_TRUNCATED_NORMAL_STD
    nn.init.trunc_normal_(weight, std=std, a=-2 * std, b=2 * std)


class _AddL2Gradient(torch.autograd.Function):
    """Identity on a kernel whose backward adds d(l2 * sum(w**2))/dw = 2 * l2 * w."""

    @staticmethod
    def forward(ctx, weight: torch.Tensor, l2: float) -> torch.Tensor:
        ctx.save_for_backward(weight)
        ctx.l2 = l2
        return weight.view_as(weight)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (weight,) = ctx.saved_tensors
        return grad + 2.0 * ctx.l2 * weight, None


def with_l2(weight: torch.Tensor, l2: float) -> torch.Tensor:
    """Keras ``kernel_regularizer=l2(l2)`` as a gradient term, added whenever autograd records."""
    return _AddL2Gradient.apply(weight, l2) if l2 and torch.is_grad_enabled() else weight


class L2Conv2d(nn.Conv2d):
    def __init__(self, *args, kernel_l2: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.kernel_l2 = kernel_l2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, with_l2(self.weight, self.kernel_l2), self.bias)


class L2Linear(nn.Linear):
    def __init__(self, *args, kernel_l2: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.kernel_l2 = kernel_l2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, with_l2(self.weight, self.kernel_l2), self.bias)
