"""PuFace's purifier: RedNet's shape and skips, the image + feature loss falling over a few training
steps, amplified cloaks drawn per image, and the checkpoint loaded back through the safe loader."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from dfdetect.models.lightning.checkpoint import UnsafeCheckpointError
from dfdetect.models.lightning.detector_module import CONFIG_KEY
from dfdetect.puface.purifier.load import load_purifier
from dfdetect.puface.purifier.module import PurifierModule
from dfdetect.puface.purifier.rednet import RedNet

NET_CFG = {"_target_": "dfdetect.puface.purifier.rednet.RedNet", "channels": 8, "layers": 4}


def tiny_face_net():
    """A stand-in face network: fixed random features of 4x4 blocks (input [0, 255])."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.AvgPool2d(4), nn.Conv2d(3, 8, 3), nn.Tanh(), nn.Flatten(), nn.LazyLinear(16))
    net(torch.zeros(1, 3, 24, 24))
    return _Scaled(net)


class _Scaled(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net((x - 128) / 64)


def pairs(n=8, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(n, 3, 1, 1, generator=g) * 200 + 20
    ramp = torch.linspace(0, 30, size).view(1, 1, 1, size) * torch.rand(n, 3, 1, 1, generator=g)
    natural = (
        (base + ramp).expand(n, 3, size, size).to(torch.uint8).contiguous()
    )  # smooth faces, noisy cloaks
    cloak = (torch.rand(n, 3, size, size, generator=g) - 0.5) * 8
    return natural, (natural.float() + cloak).clamp(0, 255).round().to(torch.uint8)


def test_rednet_keeps_the_shape_and_starts_as_the_identity():
    net = RedNet(channels=8, layers=5)
    x = torch.rand(2, 3, 150, 150)
    y = net(x)
    assert y.shape == x.shape and torch.equal(y, x)
    assert RedNet(channels=8, layers=4)(torch.rand(1, 3, 33, 31)).shape == (1, 3, 33, 31)
    with pytest.raises(ValueError, match="at least 2"):
        RedNet(layers=1)


def train_steps(module, natural, cloaked, steps):
    opt = module.configure_optimizers()
    for _ in range(steps):
        loss = module.losses(natural, cloaked, module.draw_k(len(natural)))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()


@pytest.mark.parametrize("feature_weight, lr", [(0.1, 3e-3), (0.0, 1e-3)])
def test_image_and_feature_loss_fall_in_a_few_steps(feature_weight, lr):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    module = PurifierModule(RedNet(channels=16, layers=4), functools.partial(torch.optim.Adam, lr=lr),
                            feature_weight=feature_weight, natural_prob=0.0, face_net=tiny_face_net())  # fmt: skip
    natural, cloaked = pairs(size=24)
    k = torch.linspace(1, 10, len(natural))
    with torch.no_grad():
        start = module.losses(natural, cloaked, k)
    assert start["image"] > 0 and (start["feature"] > 0) == (feature_weight > 0)
    train_steps(module, natural, cloaked, 80)
    with torch.no_grad():
        end = module.losses(natural, cloaked, k)
    assert end["loss"] < 0.95 * start["loss"], (start, end)
    assert end["image"] < start["image"]
    if feature_weight > 0:
        assert end["feature"] < 0.8 * start["feature"]
    else:
        assert end["image"] < 0.7 * start["image"]


def test_k_is_drawn_per_image_in_range_and_zero_for_natural_images():
    module = PurifierModule(RedNet(8, 2), functools.partial(torch.optim.Adam), feature_weight=0.0,
                            k_range=(2.0, 4.0), natural_prob=0.5)  # fmt: skip
    torch.manual_seed(1)
    k = module.draw_k(2000)
    natural = k == 0
    assert 0.45 < natural.float().mean() < 0.55
    assert k[~natural].min() >= 2 and k[~natural].max() <= 4 and k[~natural].std() > 0.4


def test_checkpoint_round_trip_and_refusal(tmp_path):
    module = PurifierModule(
        RedNet(channels=8, layers=4), functools.partial(torch.optim.Adam), feature_weight=0.0
    )
    with torch.no_grad():
        module.net.decoder[-1].bias.fill_(0.01)
    config = {"_target_": "dfdetect.puface.purifier.module.PurifierModule", "net": NET_CFG,
              "optimizer": {"_target_": "torch.optim.Adam", "_partial_": True}, "feature_weight": 0.0}  # fmt: skip
    torch.save({"state_dict": module.state_dict(), CONFIG_KEY: config}, tmp_path / "p.ckpt")
    purifier = load_purifier(tmp_path / "p.ckpt")
    x = torch.randint(0, 256, (2, 3, 20, 20), dtype=torch.uint8)
    assert torch.allclose(purifier(x), module(x).detach(), atol=1e-4)
    bad = {**config, "net": {"_target_": "os.system", "command": "true"}}
    torch.save({"state_dict": module.state_dict(), CONFIG_KEY: bad}, tmp_path / "bad.ckpt")
    with pytest.raises(UnsafeCheckpointError, match="os.system"):
        load_purifier(tmp_path / "bad.ckpt")


def test_a_detector_checkpoint_given_as_purifier_is_refused_in_one_line(tmp_path):
    from dfdetect.models.lightning.checkpoint import CheckpointError, build_detector
    from dfdetect.utils.errors import UserError

    detector = build_detector({"_target_": "dfdetect.models.lightning.DetectorModule",
                               "net": {"_target_": "dfdetect.models.nets.create_net", "name": "meso4"},
                               "optimizer": {"_target_": "torch.optim.Adam", "_partial_": True}})  # fmt: skip
    torch.save({"state_dict": detector.state_dict(), CONFIG_KEY: detector.model_config}, tmp_path / "d.ckpt")
    with pytest.raises(CheckpointError, match=r"DetectorModule, not of a purifier; .*experiment=puface") as e:
        load_purifier(tmp_path / "d.ckpt")
    assert isinstance(e.value, UserError) and "\n" not in str(e.value)
