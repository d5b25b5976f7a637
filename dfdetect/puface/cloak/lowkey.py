"""LowKey (Cherepanova et al., ICLR 2021), as reused in FaceCure, batched.

Maximise, per image, ``mean_{i,d} (g_i(x')_d - g_i(x)_d)^2 / ||g_i(x)|| - w * P(x, x')``: the
mean over the extractors ``i`` applied to ``x'`` and to its Gaussian smoothing ``G(x')`` (kernel 7,
sigma 3, reflect padding) *and over the descriptor's dimensions d* (LowKey's ``util/attack_utils.py``
takes ``torch.mean`` over batch x ensemble x dimensions and divides LPIPS's batch sum by the batch
size, so per image it is this), ``g(v) = l2norm(f(v) + f(hflip v))``, reference descriptors on the
unsmoothed ``x``; start at ``x + U(+-0.005)``, ``steps`` signed-gradient steps of ``step_size`` on
the [0, 1] scale, clamped to [0, 1] once at the end as LowKey does (``clamp_each_step`` clamps every
step instead). ``reduce="sum"`` sums over the dimensions (dfdetect's earlier reading: a penalty
``D`` times weaker). ``P``: LPIPS (AlexNet) in LowKey; its ImageNet weights cannot be downloaded here, so the
default penalty is DSSIM (``perceptual="dssim"``), and ``perceptual="lpips"`` takes user-supplied
weight files (``lpips_alexnet``, ``lpips_linear``; ``dfdetect.puface.cloak.lpips``). As in LowKey's LPIPS mode no epsilon clamp is applied unless
``epsilon`` is set: the L-infinity change is at most ``init + steps * step_size`` (0.13 by default).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from dfdetect.puface.cloak.ssim import dssim, gaussian_window
from dfdetect.utils.errors import UserError


def gaussian_smooth(x: torch.Tensor, kernel: int = 7, sigma: float = 3.0) -> torch.Tensor:
    c = x.shape[1]
    w = gaussian_window(kernel, sigma, x.device).to(x.dtype).expand(c, 1, kernel, kernel)
    return F.conv2d(F.pad(x, [kernel // 2] * 4, mode="reflect"), w, groups=c)


def _descriptor(f, v01: torch.Tensor) -> torch.Tensor:
    return F.normalize(f(255 * v01) + f(255 * v01.flip(-1)), dim=1)


def feature_gain(xa: torch.Tensor, ref: Sequence[torch.Tensor], extractors: Sequence, kernel: int = 7,
                 sigma: float = 3.0, reduce: str = "mean") -> torch.Tensor:  # fmt: skip
    """Per image: the mean over extractors x {x', G(x')} of ``(g(v) - r)^2 / ||r||`` reduced over the
    descriptor dimensions by ``reduce`` (``mean``: LowKey's; ``sum``)."""
    views = (gaussian_smooth(xa, kernel, sigma), xa)
    terms = [((_descriptor(f, v) - r) ** 2) / r.norm(dim=1, keepdim=True)
             for f, r in zip(extractors, ref, strict=True) for v in views]  # fmt: skip
    per = torch.stack([t.mean(1) if reduce == "mean" else t.sum(1) for t in terms], 1)
    return per.mean(1)


class LowKey:
    targeted = False

    def __init__(self, steps: int = 50, step_size: float = 0.0025, init: float = 0.005, blur_kernel: int = 7,
                 blur_sigma: float = 3.0, perceptual: str = "dssim", perceptual_weight: float = 0.05,
                 epsilon: float | None = None, lpips=None, lpips_alexnet: str | None = None,
                 lpips_linear: str | None = None, seed: int = 0, reduce: str = "mean",
                 clamp_each_step: bool = False):  # fmt: skip
        if reduce not in ("mean", "sum"):
            raise ValueError(f"reduce must be mean or sum, got {reduce!r}")
        self.reduce, self.clamp_each_step = reduce, clamp_each_step
        if perceptual not in ("dssim", "lpips", "none"):
            raise ValueError(f"perceptual must be dssim, lpips or none, got {perceptual!r}")
        if perceptual == "lpips" and lpips is None:
            if not (lpips_alexnet and lpips_linear):
                raise UserError(
                    "perceptual=lpips needs your weight files: lpips_alexnet=<torchvision AlexNet "
                    "state dict> lpips_linear=<LPIPS v0.1 alex.pth> (nothing is downloaded)"
                )
            from dfdetect.puface.cloak.lpips import LPIPS

            lpips = LPIPS.from_files(lpips_alexnet, lpips_linear)
        self.steps, self.step_size, self.init = steps, step_size, init
        self.blur_kernel, self.blur_sigma = blur_kernel, blur_sigma
        self.perceptual, self.perceptual_weight, self.epsilon, self.lpips = (
            perceptual,
            perceptual_weight,
            epsilon,
            lpips,
        )
        self.seed = seed

    @property
    def linf_bound(self) -> float:
        """The largest change of a pixel on the [0, 1] scale."""
        bound = self.init + self.steps * self.step_size
        return min(bound, self.epsilon) if self.epsilon is not None else bound

    def _penalty(self, x: torch.Tensor, xa: torch.Tensor) -> torch.Tensor:
        if self.perceptual == "dssim":
            return dssim(255 * x, 255 * xa)
        if self.perceptual == "lpips":
            return self.lpips.to(x.device)(x, xa)
        return torch.zeros(len(x), device=x.device)

    def __call__(
        self, x255: torch.Tensor, extractors: Sequence, x_target: torch.Tensor | None = None
    ) -> torch.Tensor:
        x = x255.detach().float() / 255
        with torch.no_grad():
            ref = [_descriptor(f, x) for f in extractors]
        gen = torch.Generator(device="cpu").manual_seed(self.seed)
        noise = (torch.rand(x.shape, generator=gen) * 2 - 1) * self.init
        xa = x + noise.to(x.device)
        for _ in range(self.steps):
            xa = xa.detach().requires_grad_(True)
            objective = self.objective(x, xa, ref, extractors)
            (grad,) = torch.autograd.grad(objective.sum(), xa)
            with torch.no_grad():
                xa = xa + self.step_size * grad.sign()
                if self.clamp_each_step:
                    xa = xa.clamp(0, 1)
                if self.epsilon is not None:
                    xa = torch.minimum(torch.maximum(xa, x - self.epsilon), x + self.epsilon)
        return 255 * xa.detach().clamp(0, 1)

    def objective(
        self, x: torch.Tensor, xa: torch.Tensor, ref: Sequence[torch.Tensor], extractors: Sequence
    ) -> torch.Tensor:
        """Per image, on the [0, 1] scale: the feature gain minus the weighted perceptual penalty."""
        gain = feature_gain(xa, ref, extractors, self.blur_kernel, self.blur_sigma, self.reduce)
        return gain - self.perceptual_weight * self._penalty(x, xa)
