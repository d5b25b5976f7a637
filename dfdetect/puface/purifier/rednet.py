"""RedNet: a residual encoder-decoder with symmetric skip connections (Mao et al., NeurIPS 2016),
PuFace's purifier. Convolutions encode, transposed convolutions decode, and every ``skip_every``
layers an encoder output is added to the input of its mirror decoder layer. Dfdetect's choices:
the output is the input plus the decoder's residual (the last layer starts at zero, so the
purifier starts as the identity), and ``stride`` (default 1, full resolution, as RED-Net) sets
the first convolution's and last transposed convolution's stride: a stride-2 code is four times
cheaper but cannot see the high-frequency cloaks well enough to remove them (measured while
building this). Input and output: float images in [0, 1]."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class RedNet(nn.Module):
    def __init__(
        self,
        channels: int = 16,
        layers: int = 5,
        skip_every: int = 2,
        global_residual: bool = True,
        stride: int = 1,
    ):
        super().__init__()
        if layers < 2:
            raise ValueError(f"layers must be at least 2, got {layers}")
        self.layers, self.skip_every, self.global_residual = layers, skip_every, global_residual
        self.encoder = nn.ModuleList(
            [nn.Conv2d(3, channels, 3, stride=stride, padding=1)]
            + [nn.Conv2d(channels, channels, 3, padding=1) for _ in range(layers - 1)]
        )
        self.decoder = nn.ModuleList(
            [nn.ConvTranspose2d(channels, channels, 3, padding=1) for _ in range(layers - 1)]
            + [nn.ConvTranspose2d(channels, 3, 3, stride=stride, padding=1, output_padding=stride - 1)]
        )
        nn.init.zeros_(self.decoder[-1].weight)
        nn.init.zeros_(self.decoder[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, saved = x, []
        for conv in self.encoder:
            h = F.relu(conv(h))
            saved.append(h)
        for j, deconv in enumerate(self.decoder[:-1]):
            mirror = self.layers - 1 - j  # decoder layer j reads what encoder layer `mirror - 1` wrote
            if j > 0 and j % self.skip_every == 0:
                h = F.relu(h + saved[mirror])
            h = F.relu(deconv(h))
        out = self.decoder[-1](h)
        out = out[..., : x.shape[-2], : x.shape[-1]]
        return (x + out if self.global_residual else torch.sigmoid(out)).clamp(0, 1)
