"""The adaptive attacker (issue #26): the same attack run against the extractor seen through a
differentiable purifier raises the feature loss *after* purification, where the oblivious cloak
(optimised against the bare extractor) is mostly removed by the purifier. Tiny hand-made nets."""

from __future__ import annotations

import torch
from torch import nn

from dfdetect.puface.cloak.extractors import ThroughPurifier, adaptive_extractors, through_purifier
from dfdetect.puface.cloak.lowkey import LowKey, gaussian_smooth


class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(7)
        self.w = nn.Parameter(torch.randn(3 * 16 * 16, 6, generator=g) / 10, requires_grad=False)

    def forward(self, x):
        return x.flatten(1) / 255 @ self.w


class _Smoother(nn.Module):
    """A stand-in purifier in [0, 1]: a strong blur (removes pixel-wise noise), differentiable."""

    def forward(self, x):
        return gaussian_smooth(gaussian_smooth(x, 7, 3.0), 7, 3.0).clamp(0, 1)


def _distance_after(purifier, f, x, xa):
    with torch.no_grad():
        return (f(255 * purifier(xa / 255)) - f(255 * purifier(x / 255))).norm(dim=1)


def test_adaptive_attack_raises_the_feature_loss_through_the_purifier():
    torch.manual_seed(0)
    f, purifier = _Tiny(), _Smoother()
    # a checkerboard-dominated oblivious cloak: LowKey without its own smoothing view
    x = torch.rand(4, 3, 16, 16) * 155 + 50
    attack = LowKey(steps=20, blur_kernel=1, blur_sigma=1.0, perceptual="none")
    oblivious = attack(x, [f])
    adaptive = attack(x, through_purifier([f], purifier))
    d_obl, d_ada = _distance_after(purifier, f, x, oblivious), _distance_after(purifier, f, x, adaptive)
    assert (d_ada > d_obl).all(), (d_ada, d_obl)
    assert (d_ada > 0.05).all()
    # same budget: LowKey's L-infinity bound holds for both
    bound = 255 * attack.linf_bound + 1e-3
    assert (adaptive - x).abs().max() <= bound and (oblivious - x).abs().max() <= bound


def test_through_purifier_freezes_the_purifier_and_passes_gradients():
    net = nn.Conv2d(3, 3, 3, padding=1)
    wrapped = ThroughPurifier(_Tiny(), net)
    x = (torch.rand(2, 3, 16, 16) * 255).requires_grad_(True)
    wrapped(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(not p.requires_grad for p in net.parameters())


def test_adaptive_extractors_are_f_through_p_or_both():
    f, purifier = _Tiny(), _Smoother()
    alone = adaptive_extractors([f], purifier)
    both = adaptive_extractors([f], purifier, ensemble=True)
    assert [type(e) for e in alone] == [ThroughPurifier]
    assert both[0] is f and isinstance(both[1], ThroughPurifier) and len(both) == 2


def test_the_ensemble_attacker_works_with_and_without_the_purifier():
    """The attacker who does not know whether the defender purifies: one cloak against f and f∘P.
    Without the purifier it beats the f∘P-only cloak; through it, the oblivious cloak."""
    torch.manual_seed(0)
    f, purifier = _Tiny(), _Smoother()
    x = torch.rand(4, 3, 16, 16) * 155 + 50
    attack = LowKey(steps=20, blur_kernel=1, blur_sigma=1.0, perceptual="none")
    oblivious = attack(x, [f])
    through = attack(x, adaptive_extractors([f], purifier))
    ensemble = attack(x, adaptive_extractors([f], purifier, ensemble=True))
    identity = nn.Identity()
    assert (_distance_after(identity, f, x, ensemble) > _distance_after(identity, f, x, through)).all()
    assert (_distance_after(purifier, f, x, ensemble) > _distance_after(purifier, f, x, oblivious)).all()
    assert (ensemble - x).abs().max() <= 255 * attack.linf_bound + 1e-3
