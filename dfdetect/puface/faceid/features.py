"""Descriptors of uint8 chips from a frozen face network (dlib's ResNet by default)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dfdetect.facts.dlib import DLIB_INPUT_SIZE as DLIB_SIZE
from dfdetect.models.nets.dlib_face import dlib_resnet


def frozen_dlib(weights: str | None = "installed") -> nn.Module:
    net = dlib_resnet(weights).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def to_net_input(x: torch.Tensor, size: int = DLIB_SIZE) -> torch.Tensor:
    """uint8 or float [0, 255] ``(B, 3, H, W)`` as float [0, 255] at the net's size."""
    x = x.float()
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x


@torch.no_grad()
def embed(
    net: nn.Module,
    chips: torch.Tensor,
    batch: int = 64,
    device: str | torch.device = "cpu",
    size: int = DLIB_SIZE,
) -> torch.Tensor:
    """``(N, 128)`` float descriptors of ``(N, 3, H, W)`` chips (uint8 or float in [0, 255])."""
    net = net.to(device)
    out = [
        net(to_net_input(chips[i : i + batch].to(device), size)).float().cpu()
        for i in range(0, len(chips), batch)
    ]
    return torch.cat(out) if out else torch.zeros(0, 128)
