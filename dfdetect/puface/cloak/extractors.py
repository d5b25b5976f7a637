"""The face networks cloaks are computed against: each maps float ``[0, 255]`` chips of any size to
descriptors (resized to its input size inside, so gradients reach the chip's pixels)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from dfdetect.models.nets.dlib_face import dlib_resnet


class Extractor(nn.Module):
    def __init__(self, net: nn.Module, size: int):
        super().__init__()
        self.net, self.size = net.eval(), size
        for p in self.net.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return self.net(x)


def build_extractors(names: Sequence[str] = ("dlib",), dlib_weights: str = "installed") -> list[Extractor]:
    """``dlib``: dlib's trained ResNet (150x150). Other trained nets can be given as ``Extractor``s."""
    out = []
    for name in names:
        if name != "dlib":
            raise ValueError(f"unknown extractor {name!r}; available: dlib")
        out.append(Extractor(dlib_resnet(dlib_weights), 150))
    return out


class ThroughPurifier(nn.Module):
    """An extractor seen through a differentiable purifier (``[0, 1]`` images in and out, such as
    PuFace's RedNet): ``f(255 P(x / 255))``. An attack run against these extractors is the adaptive
    attacker of FaceCure, ``x' = argmax loss(F(P(x')))`` within the attack's own budget."""

    def __init__(self, extractor: nn.Module, purifier: nn.Module):
        super().__init__()
        self.extractor, self.purifier = extractor, purifier.eval()
        for p in self.purifier.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.extractor(255 * self.purifier(x / 255))


def through_purifier(extractors: Sequence[nn.Module], purifier: nn.Module) -> list[ThroughPurifier]:
    return [ThroughPurifier(f, purifier) for f in extractors]


def adaptive_extractors(
    extractors: Sequence[nn.Module], purifier: nn.Module, ensemble: bool = False
) -> list[nn.Module]:
    """What the adaptive attacker optimises against: ``f∘P`` (it knows the defender purifies), or
    with ``ensemble`` both ``f`` and ``f∘P`` (it does not know whether the defender purifies; the
    attacks average their loss over extractors)."""
    return [*(extractors if ensemble else []), *through_purifier(extractors, purifier)]
