"""The paper's defense settings (§6) as nets over uint8 clips.

DD1 passes one detector's score through; DD2 calls a clip fake when any member does ("all
members say real" to pass), i.e. the maximum member probability; DD3 is a deep stacking
ensemble: a linear stack of the members' logits (starting as their mean) plus an MLP correction
over those logits and a learned embedding of the clip itself (starting at zero), so that fitting
starts from plain averaging and can only move away from it where validation data supports it.

A member may abstain on a clip (a NaN logit: ABNet on an identity it holds no references of). DD2
decides on the members that answered (NaN only when none did); DD3 reads an abstention as logit 0.
"""

from __future__ import annotations

import torch
from torch import nn

from dfdetect.ensemble.members import FrozenMembers
from dfdetect.models.nets.base import ClipDetector


class RuleEnsemble(ClipDetector):
    takes_uint8 = True
    RULES = ("single", "all_real")

    def __init__(self, members: FrozenMembers, rule: str):
        super().__init__()
        if rule not in self.RULES:
            raise ValueError(f"unknown ensemble rule {rule!r}; known: {self.RULES}")
        if rule == "single" and len(members.detectors) != 1:
            raise ValueError(f"DD1 takes exactly one member, got {len(members.detectors)}")
        self.members = members
        self.rule = rule

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        logits = self.members(clips)
        if self.rule == "single":
            return logits[:, 0]
        # a monotone map, so max logit = logit of the max probability; abstaining members left out
        answered = ~torch.isnan(logits)
        top = logits.masked_fill(~answered, float("-inf")).max(dim=1).values
        return torch.where(answered.any(dim=1), top, torch.full_like(top, float("nan")))


class ClipEmbedder(nn.Module):
    """A small CNN over the frames of a clip, averaged over time: ``(B, T, C, H, W) -> (B, D)``."""

    def __init__(self, dim: int = 16, width: int = 16, size: int = 64):
        super().__init__()
        self.size = size
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, stride=2, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, stride=2, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, dim, 3, stride=2, padding=1),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        b, t = clips.shape[:2]
        frames = clips.flatten(0, 1).float() / 255.0
        frames = nn.functional.interpolate(
            frames, size=(self.size, self.size), mode="bilinear", antialias=True
        )
        return self.features(frames).view(b, t, -1).mean(dim=1)


class StackingEnsemble(ClipDetector):
    takes_uint8 = True

    def __init__(
        self,
        members: FrozenMembers,
        embed_dim: int = 16,
        embed_width: int = 16,
        embed_size: int = 64,
        hidden: int = 32,
        dropout: float = 0.2,
    ):
        super().__init__()
        self.members = members
        n = len(members.detectors)
        self.embedder = ClipEmbedder(embed_dim, embed_width, embed_size)
        # a linear stack of the member logits, starting as their mean ...
        self.combine = nn.Linear(n, 1)
        nn.init.constant_(self.combine.weight, 1.0 / n)
        nn.init.zeros_(self.combine.bias)
        # ... plus a non-linear correction from the scores and the clip itself, starting at zero
        self.meta = nn.Sequential(
            nn.Linear(n + embed_dim, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, 1),
        )
        nn.init.zeros_(self.meta[-1].weight)
        nn.init.zeros_(self.meta[-1].bias)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        scores = torch.nan_to_num(self.members(clips), nan=0.0)
        correction = self.meta(torch.cat([scores, self.embedder(clips)], dim=1))
        return (self.combine(scores) + correction).squeeze(1)
