"""LPIPS (Zhang et al., CVPR 2018), AlexNet variant, from weight files you supply: LowKey's
perceptual penalty. Nothing is downloaded: ``alexnet`` is a torchvision AlexNet state dict
(ImageNet-trained, ``features.*`` keys are used), ``linear`` the LPIPS v0.1 linear layers
(``lin0.model.1.weight`` ... ``lin4.model.1.weight``, as in the lpips package's ``alex.pth``); both
are read with ``torch.load(weights_only=True)``.

distance(x, y) = sum over AlexNet's five ReLU outputs of the spatial mean of
``w_l . (n(f_l(x)) - n(f_l(y)))^2``, ``n`` = unit norm over channels; inputs in [0, 1], scaled as
LPIPS does (to [-1, 1], then shifted and scaled per channel)."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

RELU_OUTPUTS = (1, 4, 7, 9, 11)  # indices in torchvision's AlexNet.features
CHANNELS = (64, 192, 384, 256, 256)
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)


class LPIPS(nn.Module):
    def __init__(self, alexnet_state: dict, linear_state: dict):
        super().__init__()
        from torchvision.models import alexnet

        self.features = alexnet(weights=None).features[: RELU_OUTPUTS[-1] + 1]
        self.features.load_state_dict({k[len("features.") :]: v for k, v in alexnet_state.items()
                                       if k.startswith("features.") and int(k.split(".")[1]) <= RELU_OUTPUTS[-1]})  # fmt: skip
        self.lins = nn.ParameterList(
            [
                nn.Parameter(
                    linear_state[f"lin{i}.model.1.weight"].reshape(1, c, 1, 1).float(), requires_grad=False
                )
                for i, c in enumerate(CHANNELS)
            ]  # fmt: skip
        )
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1))
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    @classmethod
    def from_files(cls, alexnet: str | Path, linear: str | Path) -> LPIPS:
        return cls(torch.load(alexnet, map_location="cpu", weights_only=True),
                   torch.load(linear, map_location="cpu", weights_only=True))  # fmt: skip

    def _taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        h, taps = (2 * x - 1 - self.shift) / self.scale, []
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in RELU_OUTPUTS:
                taps.append(h / (h.norm(dim=1, keepdim=True) + 1e-10))
        return taps

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-image distance ``(B,)`` of images in [0, 1]."""
        return sum(
            (F.conv2d((a - b) ** 2, w)).mean((1, 2, 3))
            for a, b, w in zip(self._taps(x), self._taps(y), self.lins, strict=True)
        )
