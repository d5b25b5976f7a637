"""CLRNet (Tariq, Lee & Woo 2020, arXiv 2009.07480): a ResNet-50 v2 whose convolutions are ConvLSTMs.

Layer for layer as the authors' Keras code (shahroztariq/CLRNet ``src/CLRNet_convlstm.py``, built in
their notebooks with input (5, 240, 240, 3), ``classes=2, dropout=0.25, include_top=False``):

- stem: ConvLSTM 7x7 stride 2, BN, ReLU, max-pool (1, 3, 3) with stride 3 (Keras' ``strides=None``
  means the pool size), TensorFlow ``same`` padding everywhere;
- stages of pre-activation bottlenecks [3, 4, 6, 3] with 64, 128, 256, 512 filters: units
  BN-ReLU-ConvLSTM 1x1 -> 3x3 -> 1x1 (4x filters) with dropout between them; the first block of
  every stage, stage 0 included, strides 2; the net's very first unit is a bare 3x3 ConvLSTM; a
  ConvLSTM 1x1 (strided) + BN shortcut wherever the shape changes;
- head: BN (no ReLU), global average over (T, H, W), dropout, Dense(2) softmax whose index 1 is
  real. We return its logit of P(fake), ``z_fake - z_real``, so the Keras head is kept exactly.

Keras details: BN eps 1e-3 (momentum 0.99, i.e. 0.01 here, by default), he-normal input kernels,
orthogonal recurrent kernels, forget-gate bias 1, frames scaled to [0, 1]. ``kernel_l2`` is the
authors' ``l2(1e-4)`` on every ConvLSTM input kernel (default 0 in the net; the configs set 1e-4),
applied as a gradient term inside the layer (``keras_compat.with_l2``). 248,107,394 trainable
parameters at full size; Keras' "Total params" (248,160,514) also counts BN moving statistics.
"""

from __future__ import annotations

import torch
from torch import nn

from dfdetect.models.layers.convlstm.layer import ConvLSTM2d, NaiveConvLSTM2d
from dfdetect.models.layers.keras_compat import KERAS_BN_EPS, KERAS_BN_MOMENTUM, SameMaxPool2d, he_normal_
from dfdetect.models.nets.base import ClipDetector
from dfdetect.models.nets.registry import UNIT_SCALE, NetInfo, register_net

Cell = type[ConvLSTM2d] | type[NaiveConvLSTM2d]


def per_frame(module_forward, x: torch.Tensor) -> torch.Tensor:
    """Apply a frame-wise op to ``(B, T, C, H, W)`` in whichever order (batch- or time-major) the
    frames lie in memory, so a ConvLSTM's time-major output is not copied into batch-major order."""
    b, t = x.shape[:2]
    if not x.is_contiguous() and x.transpose(0, 1).is_contiguous():
        return module_forward(x.transpose(0, 1).flatten(0, 1)).unflatten(0, (t, b)).transpose(0, 1)
    return module_forward(x.flatten(0, 1)).unflatten(0, (b, t))


class TimeBatchNorm(nn.BatchNorm2d):
    """Keras BatchNormalization of a 5-D ``(B, T, C, H, W)`` tensor: one statistic per channel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return per_frame(super().forward, x)


class TimeMaxPool(SameMaxPool2d):
    """``MaxPooling3D(pool_size=(1, k, k), padding='same')``: every frame pooled alone, stride k."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return per_frame(super().forward, x)


def batch_norm(channels: int, momentum: float) -> TimeBatchNorm:
    return TimeBatchNorm(channels, eps=KERAS_BN_EPS, momentum=momentum)


class PreActUnit(nn.Sequential):
    """ResNet v2 unit: BN -> ReLU -> ConvLSTM."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, bn_momentum: float, cell: Cell):
        super().__init__(
            batch_norm(c_in, bn_momentum), nn.ReLU(inplace=True), cell(c_in, c_out, kernel, stride)
        )


class Bottleneck(nn.Module):
    def __init__(
        self,
        c_in: int,
        filters: int,
        stride: int,
        first_of_net: bool,
        dropout: float,
        bn_momentum: float,
        cell: Cell,
    ):
        super().__init__()
        c_out = 4 * filters
        if first_of_net:  # the stem just ran BN -> ReLU -> pool
            entry = cell(c_in, filters, 3, stride)
        else:
            entry = PreActUnit(c_in, filters, 1, stride, bn_momentum, cell)
        self.residual = nn.Sequential(
            entry,
            nn.Dropout(dropout),
            PreActUnit(filters, filters, 3, 1, bn_momentum, cell),
            nn.Dropout(dropout),
            PreActUnit(filters, c_out, 1, 1, bn_momentum, cell),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride > 1 or c_in != c_out:
            self.shortcut = nn.Sequential(cell(c_in, c_out, 1, stride), batch_norm(c_out, bn_momentum))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.residual(x)


@register_net(
    "clrnet",
    NetInfo(
        paper="Tariq, Lee & Woo, CLRNet, arXiv 2009.07480 (2020)",
        code="github.com/shahroztariq/CLRNet src/CLRNet_convlstm.py",
        input_size=240,
        mean=UNIT_SCALE[0],
        std=UNIT_SCALE[1],
        kind="clip",
        params=248_107_394,
    ),
)
class CLRNet(ClipDetector):
    def __init__(
        self,
        input_size: int | None = None,
        blocks: tuple[int, ...] = (3, 4, 6, 3),
        filters: int = 64,
        dropout: float = 0.25,
        bn_momentum: float = KERAS_BN_MOMENTUM,
        cell: Cell = ConvLSTM2d,
        kernel_l2: float = 0.0,
    ):
        super().__init__()
        self.input_size = input_size = self.native_input_size(input_size)
        self.stem = nn.Sequential(
            cell(3, filters, 7, 2), batch_norm(filters, bn_momentum), nn.ReLU(inplace=True), TimeMaxPool(3)
        )
        stages, c_in = [], filters
        for stage, repeats in enumerate(blocks):
            width = filters * 2**stage
            for index in range(repeats):
                first = stage == 0 and index == 0
                stride = 2 if index == 0 else 1
                stages.append(Bottleneck(c_in, width, stride, first, dropout, bn_momentum, cell))
                c_in = 4 * width
        self.stages = nn.Sequential(*stages)
        self.head_norm = batch_norm(c_in, bn_momentum)
        self.head_dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(c_in, 2)  # Keras softmax order: (fake, real)
        self._keras_init()
        for m in self.modules():
            if isinstance(m, ConvLSTM2d):
                m.kernel_l2 = kernel_l2

    def _keras_init(self) -> None:
        if self.fc.weight.is_meta:
            return
        for m in self.modules():
            if isinstance(m, ConvLSTM2d):
                he_normal_(m.weight_ih)
        he_normal_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        frames, b, t = self.clip_frames(clips)
        x = self.stages(self.stem(frames.unflatten(0, (b, t))))
        features = self.head_norm(x).mean(dim=(1, 3, 4))
        z = self.fc(self.head_dropout(features))
        return z[:, 0] - z[:, 1]


@register_net(
    "clrnet_lite",
    NetInfo(
        paper="Tariq, Lee & Woo, CLRNet, arXiv 2009.07480 (2020), reduced for CPU",
        code="github.com/shahroztariq/CLRNet src/CLRNet_convlstm.py (fewer blocks and filters)",
        input_size=128,
        mean=UNIT_SCALE[0],
        std=UNIT_SCALE[1],
        kind="clip",
        params=1_442_226,
    ),
)
class CLRNetLite(CLRNet):
    """A CPU-sized CLRNet: one bottleneck per stage, 8 initial filters, 128x128 frames."""

    def __init__(
        self,
        input_size: int | None = None,
        blocks: tuple[int, ...] = (1, 1, 1, 1),
        filters: int = 8,
        dropout: float = 0.25,
        bn_momentum: float = KERAS_BN_MOMENTUM,
        cell: Cell = ConvLSTM2d,
        kernel_l2: float = 0.0,
    ):
        super().__init__(input_size, tuple(blocks), filters, dropout, bn_momentum, cell, kernel_l2)
