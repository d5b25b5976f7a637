"""The end-to-end FR model: dlib's ResNet with a linear identity head, every layer fine-tuned on the
training chips (cross-entropy, Adam, horizontal flips). Each ``fit`` starts from a fresh copy of
the trained backbone and a zero head."""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dfdetect.puface.faceid.features import DLIB_SIZE, to_net_input


class EndToEnd:
    def __init__(self, net: nn.Module, epochs: int = 3, lr: float = 1e-4, head_lr: float = 1e-2,
                 batch_size: int = 32, device: str = "cpu", seed: int = 0, input_size: int = DLIB_SIZE):  # fmt: skip
        self.net, self.epochs, self.lr, self.head_lr = net, epochs, lr, head_lr
        self.batch_size, self.device, self.seed, self.size = batch_size, device, seed, input_size

    def fit(self, chips: torch.Tensor, labels) -> EndToEnd:
        labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
        gen = torch.Generator().manual_seed(self.seed)
        self.model = nn.Sequential(copy.deepcopy(self.net), nn.Linear(128, int(labels.max()) + 1)).to(
            self.device
        )
        nn.init.zeros_(self.model[1].weight)
        nn.init.zeros_(self.model[1].bias)
        for p in self.model.parameters():
            p.requires_grad_(True)
        opt = torch.optim.Adam([
            {"params": self.model[0].parameters(), "lr": self.lr},
            {"params": self.model[1].parameters(), "lr": self.head_lr},
        ])  # fmt: skip
        self.model.train()
        for _ in range(self.epochs):
            order = torch.randperm(len(chips), generator=gen)
            for i in range(0, len(chips), self.batch_size):
                idx = order[i : i + self.batch_size]
                x = to_net_input(chips[idx].to(self.device), self.size)
                flip = torch.rand(len(idx), generator=gen) < 0.5
                x[flip] = x[flip].flip(-1)
                # the head sees unit-scale descriptors times 10 (dlib's are ~unit norm)
                loss = F.cross_entropy(self.model[1](10 * self.model[0](x)), labels[idx].to(self.device))
                opt.zero_grad()
                loss.backward()
                opt.step()
        self.model.eval()
        return self

    @torch.no_grad()
    def predict(self, chips: torch.Tensor) -> np.ndarray:
        out = [
            self.model[1](10 * self.model[0](to_net_input(chips[i : i + 64].to(self.device), self.size)))
            .argmax(1)
            .cpu()
            for i in range(0, len(chips), 64)
        ]
        return torch.cat(out).numpy()
