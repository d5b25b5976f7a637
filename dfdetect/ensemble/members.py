"""Ensemble members: trained detectors loaded from checkpoints and frozen."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dfdetect.models.lightning.checkpoint import load_detector


class FrozenMembers(nn.Module):
    """Detectors that stay in eval mode with no gradients, whatever mode the ensemble is in."""

    def __init__(self, detectors: Sequence[nn.Module]):
        super().__init__()
        if not detectors:
            raise ValueError("an ensemble needs at least one member checkpoint")
        self.detectors = nn.ModuleList(detectors)
        for p in self.detectors.parameters():
            p.requires_grad_(False)
        self.detectors.eval()

    def train(self, mode: bool = True) -> FrozenMembers:
        super().train(mode)
        self.detectors.eval()
        return self

    @torch.no_grad()
    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """uint8 clips ``(B, T, C, H, W)`` -> member logits ``(B, M)``."""
        return torch.stack([d(clips) for d in self.detectors], dim=1)


def load_members(paths: Sequence[str]) -> FrozenMembers:
    """Each member through the safe checkpoint loader (``dfdetect.models.lightning.checkpoint``)."""
    return FrozenMembers([load_detector(p) for p in paths])
