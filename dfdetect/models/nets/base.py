"""Contract every detector net follows.

A net maps a float clip batch ``(B, T, C, H, W)``, already normalised with the net's own
``mean``/``std`` (on the 0-1 scale), to one P(fake) logit per clip, shape ``(B,)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from dfdetect.models.nets.registry import NetInfo


class ClipDetector(nn.Module):
    """Base of all detector nets. Subclasses set the attributes below and implement forward."""

    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    input_size: int | None = None  # frames are resized to this on the device when set
    channels_last: bool = False  # frames enter the convolutions in channels-last layout
    takes_uint8: bool = False  # True for nets (ensembles) that normalise for themselves
    info: NetInfo | None = None  # a registered net's facts, its mean and std (set by register_net)

    def native_input_size(self, input_size: int | None) -> int | None:
        """``input_size``, or the registered net's native input size when it is None."""
        return self.info.input_size if input_size is None and self.info is not None else input_size

    def resize(self, frames: torch.Tensor) -> torch.Tensor:
        if self.input_size is None or frames.shape[-2:] == (self.input_size, self.input_size):
            return frames
        return F.interpolate(
            frames,
            size=(self.input_size, self.input_size),
            mode="bilinear",
            align_corners=False,
            antialias=True,
        )

    def clip_frames(self, clips: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        """A clip batch ``(B, T, C, H, W)`` as frames ``(B*T, C, H, W)`` at the net's input size and
        layout, with B and T."""
        if clips.ndim != 5:
            raise ValueError(f"expected a clip batch (B, T, C, H, W), got shape {tuple(clips.shape)}")
        b, t = clips.shape[:2]
        frames = self.resize(clips.flatten(0, 1))
        if self.channels_last:
            frames = frames.contiguous(memory_format=torch.channels_last)
        return frames, b, t


class FrameDetector(ClipDetector):
    """A single-frame detector: T is folded into the batch and the frame logits are averaged."""

    def forward_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` -> ``(N,)`` logits."""
        raise NotImplementedError

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        frames, b, t = self.clip_frames(clips)
        logits = self.forward_frames(frames)
        return logits.view(b, t).mean(dim=1)
