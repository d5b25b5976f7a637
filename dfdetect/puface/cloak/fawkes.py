"""Fawkes (Shan et al., USENIX Security 2020), batched: every image of a batch is optimised at once
with its own budget, optimiser state and best-so-far image.

v0.3, targeted (the version PuFace attacks): per image
``c * max(DSSIM(x, x') - rho, 0)^2 + sum_m ||t_m - f_m(x')|| / ||t_m||``, with
``x' = 255 (tanh(w + delta) / (2 - 1e-6) + 0.5)``, Adadelta on ``delta``. The aim point is Fawkes
v0.3's (``differentiator.py`` at tag v0.3, ``calculate_direction``): ``t_m = f_m(x) + 2 (mean
f_m(x_T) - mean f_m(x))``, the means over the images optimised together: one image with Fawkes'
default ``--batch-size 1`` (``aim_group="image"``, the default here) or one user's images in a
batch (``aim_group="user"``, ``groups`` telling users apart); ``mimic=0`` aims at ``f_m(x_T)``
itself, dfdetect's earlier reading. The learning rate is multiplied by 0.8 after the update of
every iteration that is a positive multiple of ``steps // 3``. The target
identity is drawn at random among the 20 farthest from the user (max-min feature distance) of a
public pool of identities, and each image is paired with one of up to 10 of its images. Kept: the
iterate of least feature loss whose DSSIM is within ``budget_slack * rho``.

v1.0, untargeted: ``c * max(DSSIM - rho, 0)^2 - c_diff * sum_m ||g_m(x') - g_m(x)||^2 / ||g_m(x)||``
(``g`` = L2-normalised descriptors), ``x'`` kept within +-15 of ``x``, ``delta`` starting at
U(-1, 1) 1e-4 and one signed step of 0.01, ``c_diff`` adapted per image (doubled while DSSIM is
under 0.9 rho, up to 129; halved while over 1.1 rho; back to 1 when it crosses sides); kept: the
iterate of largest feature distance with DSSIM within ``budget_slack * rho``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from dfdetect.puface.cloak.ssim import dssim

TANH_SCALE = 2 - 1e-6
# mode: (rho, steps, Adadelta learning rate)
V03_MODES = {"min": (0.002, 20, 40.0), "low": (0.003, 50, 35.0), "mid": (0.005, 200, 20.0),
             "high": (0.008, 500, 10.0), "ultra": (0.01, 1000, 8.0)}  # fmt: skip
V10_MODES = {"low": (0.004, 40, 25.0), "mid": (0.012, 75, 20.0), "high": (0.017, 150, 15.0)}


def to_tanh_space(x: torch.Tensor) -> torch.Tensor:
    return torch.atanh((x / 255 - 0.5) * TANH_SCALE)


def from_tanh_space(w: torch.Tensor) -> torch.Tensor:
    return 255 * (torch.tanh(w) / TANH_SCALE + 0.5)


def _mode(modes: Mapping, mode: str, rho, steps, lr) -> tuple[float, int, float]:
    if mode not in modes:
        raise ValueError(f"unknown mode {mode!r}; one of {sorted(modes)}")
    m_rho, m_steps, m_lr = modes[mode]
    return (float(rho if rho is not None else m_rho), int(steps if steps is not None else m_steps),
            float(lr if lr is not None else m_lr))  # fmt: skip


def _adadelta(params, lr):
    return torch.optim.Adadelta(params, lr=lr, rho=0.95, eps=1e-8)


def aim_points(
    src: torch.Tensor, tgt: torch.Tensor, groups: torch.Tensor | None = None, mimic: float = 2.0
) -> torch.Tensor:
    """Fawkes v0.3's target point per image: ``src + mimic * (mean tgt - mean src)`` with the means
    over the images of the same group (one user); ``mimic=0``: ``tgt`` itself."""
    if mimic == 0:
        return tgt
    groups = (
        torch.zeros(len(src), dtype=torch.long, device=src.device)
        if groups is None
        else groups.to(src.device)
    )
    out = torch.empty_like(src)
    for g in torch.unique(groups):
        m = groups == g
        out[m] = src[m] + mimic * (tgt[m].mean(0) - src[m].mean(0))
    return out


def decayed_lr(lr: float, step: int, steps: int, factor: float = 0.8) -> float:
    """The learning rate of ``step`` (0-based) under Fawkes v0.3's schedule: after the update of every
    iteration that is a positive multiple of ``steps // 3``, the rate is multiplied by ``factor``
    (so the update of iteration ``steps // 3 + 1`` is the first with the lower rate)."""
    period = max(steps // 3, 1)
    return lr * factor ** ((step - 1) // period) if step > 0 else lr


class FawkesTargeted:
    """Fawkes v0.3. ``__call__(x, extractors, x_target)`` on float ``(B, 3, H, W)`` in [0, 255]."""

    targeted = True

    def __init__(self, mode: str = "high", rho: float | None = None, steps: int | None = None,
                 lr: float | None = None, c: float = 1e6, budget_slack: float = 1.1,
                 top_targets: int = 20, max_target_images: int = 10, mimic: float = 2.0,
                 lr_decay: float = 0.8, aim_group: str = "image"):  # fmt: skip
        if aim_group not in ("image", "user"):
            raise ValueError(f"aim_group must be image or user, got {aim_group!r}")
        self.mode, self.mimic, self.lr_decay, self.aim_group = mode, mimic, lr_decay, aim_group
        self.rho, self.steps, self.lr = _mode(V03_MODES, mode, rho, steps, lr)
        self.c, self.budget_slack = c, budget_slack
        self.top_targets, self.max_target_images = top_targets, max_target_images

    def __call__(self, x: torch.Tensor, extractors: Sequence, x_target: torch.Tensor,
                 groups: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        x = x.detach().float()
        if self.aim_group == "image":  # Fawkes' default --batch-size 1: the means are over one image
            groups = torch.arange(len(x), device=x.device)
        with torch.no_grad():
            target = [aim_points(f(x), f(x_target.float()), groups, self.mimic) for f in extractors]
        w0 = to_tanh_space(x)
        delta = torch.zeros_like(x, requires_grad=True)
        opt = _adadelta([delta], self.lr)
        best, best_loss = x.clone(), torch.full((len(x),), float("inf"), device=x.device)
        for step in range(self.steps + 1):
            xa = from_tanh_space(w0 + delta)
            d = dssim(x, xa)
            feat = sum(
                (t - f(xa)).norm(dim=1) / t.norm(dim=1) for f, t in zip(extractors, target, strict=True)
            )
            with torch.no_grad():
                better = (d <= self.budget_slack * self.rho) & (feat < best_loss)
                best[better], best_loss[better] = xa[better].detach(), feat[better].detach()
            if step == self.steps:
                break
            loss = self.c * F.relu(d - self.rho) ** 2 + feat
            for group in opt.param_groups:
                group["lr"] = decayed_lr(self.lr, step, self.steps, self.lr_decay)
            opt.zero_grad()
            loss.sum().backward()
            opt.step()
        return best


class FawkesUntargeted:
    """Fawkes v1.0. ``__call__(x, extractors, x_target=None)`` on float ``(B, 3, H, W)`` in [0, 255]."""

    targeted = False

    def __init__(self, mode: str = "high", rho: float | None = None, steps: int | None = None,
                 lr: float | None = None, c: float = 1e6, max_change: float = 15.0,
                 budget_slack: float = 1.1, c_diff_max: float = 129.0, seed: int = 0):  # fmt: skip
        self.mode = mode
        self.rho, self.steps, self.lr = _mode(V10_MODES, mode, rho, steps, lr)
        self.c, self.max_change, self.budget_slack, self.c_diff_max = c, max_change, budget_slack, c_diff_max
        self.seed = seed

    def __call__(
        self, x: torch.Tensor, extractors: Sequence, x_target: torch.Tensor | None = None
    ) -> torch.Tensor:
        x = x.detach().float()
        with torch.no_grad():
            ref = [F.normalize(f(x), dim=1) for f in extractors]
        gen = torch.Generator(device="cpu").manual_seed(self.seed)
        w0 = to_tanh_space(x)
        delta = ((torch.rand(x.shape, generator=gen) * 2 - 1) * 1e-4).to(x.device).requires_grad_(True)
        opt = _adadelta([delta], self.lr)
        c_diff = torch.ones(len(x), device=x.device)
        side = torch.zeros(len(x), device=x.device)
        best, best_dist = x.clone(), torch.full((len(x),), -1.0, device=x.device)
        for step in range(self.steps + 1):
            xa = torch.minimum(
                torch.maximum(from_tanh_space(w0 + delta), x - self.max_change), x + self.max_change
            )
            d = dssim(x, xa)
            dist = sum(
                ((F.normalize(f(xa), dim=1) - r) ** 2).sum(1) / r.norm(dim=1)
                for f, r in zip(extractors, ref, strict=True)
            )
            with torch.no_grad():
                better = (d <= self.budget_slack * self.rho) & (dist > best_dist)
                best[better], best_dist[better] = xa[better].detach(), dist[better].detach()
                now = torch.where(d <= 0.9 * self.rho, 1.0, torch.where(d >= 1.1 * self.rho, -1.0, 0.0))
                flipped = (now * side) < 0
                c_diff = torch.where(flipped, torch.ones_like(c_diff), c_diff)
                c_diff = torch.where(now > 0, (c_diff * 2).clamp(max=self.c_diff_max), c_diff)
                c_diff = torch.where(now < 0, c_diff / 2, c_diff)
                side = torch.where(now != 0, now, side)
            if step == self.steps:
                break
            loss = self.c * F.relu(d - self.rho) ** 2 - c_diff * dist
            opt.zero_grad()
            loss.sum().backward()
            if step == 0:
                with torch.no_grad():
                    delta -= 0.01 * delta.grad.sign()
            else:
                opt.step()
        return best


def select_target(
    user_feats: torch.Tensor,
    candidates: Mapping[str, torch.Tensor],
    top: int = 20,
    rng: np.random.Generator | None = None,
) -> str:
    """Fawkes v0.3's target: per candidate identity, the least distance from any of the user's
    descriptors to the candidate's mean descriptor; one drawn at random among the ``top`` largest."""
    if not candidates:
        raise ValueError("no candidate target identities")
    rng = rng or np.random.default_rng(0)
    names = sorted(candidates)
    centroids = torch.stack([candidates[n].float().mean(0) for n in names])
    score = torch.cdist(user_feats.float(), centroids).min(0).values
    order = torch.argsort(score, descending=True)[: max(1, top)].tolist()
    return names[int(rng.choice(order))]


def pair_targets(
    n_user: int, n_target: int, max_images: int = 10, rng: np.random.Generator | None = None
) -> np.ndarray:
    """For each user image, the index of its target image: up to ``max_images`` of the target
    identity's images, paired at random."""
    rng = rng or np.random.default_rng(0)
    pool = rng.permutation(n_target)[: max(1, min(max_images, n_target))]
    return rng.choice(pool, size=n_user)
