"""The attacks as their authors wrote them, on hand-made tiny cases: Fawkes v0.3's aim point
(2x past the target's centroid, per user) and learning-rate schedule; LowKey's objective equal to
the formula of its ``util/attack_utils.py`` (mean over batch x ensemble x dimensions, LPIPS's batch
sum over the batch size), written out literally here."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dfdetect.puface.cloak.fawkes import FawkesTargeted, aim_points, decayed_lr
from dfdetect.puface.cloak.lowkey import LowKey, gaussian_smooth
from dfdetect.puface.cloak.ssim import dssim


def test_aim_point_is_twice_past_the_target_centroid_per_user():
    src = torch.tensor([[0.0, 0.0], [2.0, 0.0], [10.0, 10.0]])
    tgt = torch.tensor([[1.0, 1.0], [3.0, 1.0], [10.0, 14.0]])
    groups = torch.tensor([0, 0, 1])
    aim = aim_points(src, tgt, groups, mimic=2.0)
    # user 0: mean src (1, 0), mean tgt (2, 1): direction 2 * (1, 1) = (2, 2) added to each image
    assert torch.allclose(aim[:2], torch.tensor([[2.0, 2.0], [4.0, 2.0]]))
    # user 1 alone: (10, 10) + 2 * (0, 4)
    assert torch.allclose(aim[2], torch.tensor([10.0, 18.0]))
    assert torch.equal(aim_points(src, tgt, groups, mimic=0.0), tgt)


def test_learning_rate_falls_by_0_8_every_third_of_the_steps():
    # Fawkes v0.3 multiplies LR by 0.8 after the update of iterations 3 and 6 (of 9)
    lrs = [decayed_lr(10.0, s, 9) for s in range(9)]
    assert lrs == pytest.approx([10, 10, 10, 10, 8, 8, 8, 6.4, 6.4])
    # Fawkes-high: 500 steps, period 166: iterations 167, 333 and 499 are the first at each lower rate
    assert decayed_lr(10.0, 166, 500) == 10.0 and decayed_lr(10.0, 167, 500) == pytest.approx(8.0)
    assert decayed_lr(10.0, 498, 500) == pytest.approx(6.4) and decayed_lr(10.0, 499, 500) == pytest.approx(
        5.12
    )


class _Tiny(nn.Module):
    """A fixed linear 'face net' on 16x16 images: float [0, 255] in, D-dim descriptor out."""

    def __init__(self, seed: int, dim: int = 5):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w = nn.Parameter(torch.randn(3 * 16 * 16, dim, generator=g) / 40, requires_grad=False)

    def forward(self, x):
        return torch.tanh(x.flatten(1) / 255 @ self.w * 4) + 0.1


def _original_loss(x, xa, models, c_sim, kernel=3, sigma=1.0):
    """LowKey's Attack.execute loss, literally: ensemble = [smoothed, plain] per model; features
    (B, 2M, D); dir_vec = plain features of x repeated twice; torch.mean over everything; LPIPS
    stand-in DSSIM summed over the batch and divided by the batch size."""

    def feat(f, v):
        return nn.functional.normalize(f(255 * v) + f(255 * v.flip(-1)), dim=1)

    adv = torch.stack([feat(f, v) for f in models for v in (gaussian_smooth(xa, kernel, sigma), xa)], 1)
    dir_vec = torch.repeat_interleave(torch.stack([feat(f, x) for f in models], 1), 2, 1)
    dir_norm = dir_vec.norm(dim=2).unsqueeze(2)
    loss = torch.mean((adv - dir_vec) ** 2 / dir_norm)
    return loss - c_sim * dssim(255 * x, 255 * xa).sum() / len(x)


def test_lowkey_objective_equals_the_original_formula():
    torch.manual_seed(0)
    models = [_Tiny(1), _Tiny(2)]
    x = torch.rand(3, 3, 16, 16)
    xa = (x + 0.05 * torch.randn_like(x)).clamp(0, 1)
    attack = LowKey(steps=1, blur_kernel=3, blur_sigma=1.0, perceptual_weight=0.05)
    with torch.no_grad():
        ref = [nn.functional.normalize(f(255 * x) + f(255 * x.flip(-1)), dim=1) for f in models]
        ours = attack.objective(x, xa, ref, models).mean()
        original = _original_loss(x, xa, models, 0.05, 3, 1.0)
    assert ours.item() == pytest.approx(original.item(), rel=1e-5)
    summed = LowKey(steps=1, blur_kernel=3, blur_sigma=1.0, perceptual_weight=0.0, reduce="sum")
    meaned = LowKey(steps=1, blur_kernel=3, blur_sigma=1.0, perceptual_weight=0.0)
    with torch.no_grad():
        ratio = summed.objective(x, xa, ref, models) / meaned.objective(x, xa, ref, models)
    assert torch.allclose(ratio, torch.full((3,), 5.0))  # D = 5: the sum is D times the mean


def test_lowkey_clamps_once_at_the_end_and_keeps_its_linf_bound():
    models = [_Tiny(3)]
    x = torch.rand(2, 3, 16, 16) * 255
    out = LowKey(steps=4, blur_kernel=3, blur_sigma=1.0)(x, models)
    assert out.min() >= 0 and out.max() <= 255
    assert (out - x).abs().max() <= 255 * (0.005 + 4 * 0.0025) + 1e-3


@pytest.mark.parametrize("aim_group", ["image", "user"])
def test_fawkes_targeted_moves_towards_its_aim_point(aim_group):
    models = [_Tiny(4)]
    x = torch.rand(2, 3, 16, 16) * 200 + 20
    xt = torch.rand(2, 3, 16, 16) * 200 + 20
    attack = FawkesTargeted("low", steps=6, lr=5.0, c=1.0, rho=1.0, aim_group=aim_group)
    out = attack(x, models, xt, torch.tensor([0, 0]))
    f = models[0]
    # per image (Fawkes' --batch-size 1): 2 f(x_T) - f(x); per user: the user's means
    aim = aim_points(f(x), f(xt), torch.arange(2) if aim_group == "image" else torch.tensor([0, 0]))
    assert ((f(out) - aim).norm(dim=1) < (f(x) - aim).norm(dim=1)).all()
    with torch.no_grad():
        assert torch.allclose(aim_points(f(x), f(xt), torch.arange(2)), 2 * f(xt) - f(x), atol=1e-6)
