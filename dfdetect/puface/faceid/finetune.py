"""The end-to-end FR model: dlib's ResNet with a linear identity head, every layer fine-tuned on the
training chips (cross-entropy, Adam, horizontal flips). Each ``fit`` starts from a fresh copy of
the trained backbone and a zero head."""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dfdetect.puface.faceid.features import DLIB_SIZE, embed, to_net_input


class EndToEnd:
    """``probe_steps`` > 0: the head is first fitted on the frozen descriptors (full-batch Adam at
    ``head_lr``), then every layer is fine-tuned (linear probe, then fine-tune: the backbone's
    features are not pulled about by a head that starts at zero)."""

    def __init__(self, net: nn.Module, epochs: int = 3, lr: float = 1e-4, head_lr: float = 1e-2,
                 batch_size: int = 32, device: str = "cpu", seed: int = 0, input_size: int = DLIB_SIZE,
                 probe_steps: int = 0):  # fmt: skip
        self.net, self.epochs, self.lr, self.head_lr = net, epochs, lr, head_lr
        self.batch_size, self.device, self.seed, self.size = batch_size, device, seed, input_size
        self.probe_steps = int(probe_steps)

    def recipe(self) -> dict:
        """What decides the fitted model besides the data and the seed (kept beside cached rows)."""
        return {"epochs": self.epochs, "lr": self.lr, "head_lr": self.head_lr, "batch_size": self.batch_size,
                "input_size": self.size, "probe_steps": self.probe_steps}  # fmt: skip

    def _probe(self, chips: torch.Tensor, labels: torch.Tensor, features) -> None:
        self.model[0].eval()
        if features is None or self.size != DLIB_SIZE:
            features = embed(self.model[0], chips, device=self.device, size=self.size)
        feats = 10 * torch.as_tensor(np.asarray(features), dtype=torch.float32).to(self.device)
        opt = torch.optim.Adam(self.model[1].parameters(), lr=self.head_lr)
        for _ in range(self.probe_steps):
            loss = F.cross_entropy(self.model[1](feats), labels.to(self.device))
            opt.zero_grad()
            loss.backward()
            opt.step()

    def fit(self, chips: torch.Tensor, labels, features=None) -> EndToEnd:
        """``features``: the untouched net's descriptors of ``chips`` at dlib's input size, where the
        caller holds them already (the probe's input; computed here when None)."""
        labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
        gen = torch.Generator().manual_seed(self.seed)
        self.model = nn.Sequential(copy.deepcopy(self.net), nn.Linear(128, int(labels.max()) + 1)).to(
            self.device
        )
        nn.init.zeros_(self.model[1].weight)
        nn.init.zeros_(self.model[1].bias)
        if self.probe_steps:
            self._probe(chips, labels, features)
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
