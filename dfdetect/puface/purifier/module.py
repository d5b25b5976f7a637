"""The purifier's training: natural chips and their cloaked versions; each step amplifies each
cloak by its own ``k`` (uniform in ``k_range``, or 0, the natural image, with ``natural_prob``),
purifies ``x_k`` and pulls the result to the natural image:

    loss = MSE(P(x_k), x) [+ ssim_weight * (1 - SSIM(P(x_k), x))] + feature_weight * ||F(P(x_k)) - F(x)||^2

on the [0, 1] scale, ``F`` the frozen trained face network (dlib's ResNet, descriptors of unit
scale). ``feature_weight=0`` is the image-loss-only autoencoder of the evaluation. Batches are
``(natural uint8 (B, 3, S, S), cloaked uint8 (B, 3, S, S))``.
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from dfdetect.models.lightning.detector_module import CONFIG_KEY
from dfdetect.models.nets.dlib_face import dlib_resnet
from dfdetect.puface.cloak.amplify import amplify
from dfdetect.puface.cloak.ssim import ssim


class PurifierModule(pl.LightningModule):
    def __init__(self, net: nn.Module, optimizer, scheduler=None, feature_weight: float = 0.05,
                 ssim_weight: float = 0.0, k_range: tuple[float, float] = (1.0, 10.0),
                 natural_prob: float = 0.2, face_weights: str | None = "installed",
                 face_net: nn.Module | None = None):  # fmt: skip
        super().__init__()
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.net = net
        self.model_config: dict | None = None  # stored in checkpoints (scripts/purify.py rebuilds the net)
        self.feature_weight, self.ssim_weight = float(feature_weight), float(ssim_weight)
        self.k_range, self.natural_prob = (float(k_range[0]), float(k_range[1])), float(natural_prob)
        self._face = None
        if self.feature_weight > 0:
            face = face_net if face_net is not None else dlib_resnet(face_weights)
            for p in face.parameters():
                p.requires_grad_(False)
            self._face = [face.eval()]  # in a list: frozen and not part of the checkpoint

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 or [0, 255] float chips -> purified float chips in [0, 255]."""
        return 255 * self.net(x.float() / 255)

    def draw_k(self, n: int) -> torch.Tensor:
        lo, hi = self.k_range
        k = lo + (hi - lo) * torch.rand(n, device=self.device)
        return torch.where(torch.rand(n, device=self.device) < self.natural_prob, torch.zeros_like(k), k)

    def losses(
        self, natural: torch.Tensor, cloaked: torch.Tensor, k: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        x = natural.float() / 255
        xk = amplify(natural.float(), cloaked.float(), k) / 255
        out = self.net(xk)
        image = F.mse_loss(out, x)
        if self.ssim_weight > 0:
            image = image + self.ssim_weight * (1 - ssim(out, x, max_val=1.0)).mean()
        feature = torch.zeros((), device=x.device)
        if self._face is not None:
            face = self._face[0].to(x.device)
            with torch.no_grad():
                ref = face(255 * x)
            feature = ((face(255 * out) - ref) ** 2).sum(1).mean()
        return {"loss": image + self.feature_weight * feature, "image": image, "feature": feature}

    def training_step(self, batch, batch_idx):
        natural, cloaked = batch
        out = self.losses(natural, cloaked, self.draw_k(len(natural)))
        self.log_dict({f"train/{k}": v for k, v in out.items()}, prog_bar=True, batch_size=len(natural))
        return out["loss"]

    def validation_step(self, batch, batch_idx):
        natural, cloaked = batch
        k = torch.linspace(*self.k_range, len(natural), device=self.device)  # fixed: comparable across epochs
        out = self.losses(natural, cloaked, k)
        self.log_dict({f"val/{k}": v for k, v in out.items()}, prog_bar=True, batch_size=len(natural))

    def configure_optimizers(self):
        opt = self.optimizer_factory(params=self.net.parameters())
        if self.scheduler_factory is None:
            return opt
        return {
            "optimizer": opt,
            "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer=opt), "interval": "epoch"},
        }

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self.model_config is not None:
            checkpoint[CONFIG_KEY] = self.model_config
