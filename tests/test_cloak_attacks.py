"""Cloaking attacks against dlib's trained ResNet: each raises the feature distance it aims at and
keeps its budget (Fawkes: DSSIM within 1.1 rho; LowKey: its L-infinity bound); amplification is
exact. Few steps on a few real faces, so that each test takes seconds."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from dfdetect.puface.cloak.amplify import amplify
from dfdetect.puface.cloak.extractors import build_extractors
from dfdetect.puface.cloak.fawkes import FawkesTargeted, FawkesUntargeted, pair_targets, select_target
from dfdetect.puface.cloak.lowkey import LowKey, gaussian_smooth
from dfdetect.puface.cloak.ssim import dssim, ssim
from tests.conftest import SHARED, requires_shared

FACES = SHARED / "data/samples/celebfom"


@pytest.fixture(scope="module")
def dlib():
    torch.set_num_threads(1)
    return build_extractors(["dlib"])


def faces(names, size=150):
    out = []
    for n in names:
        img = cv2.cvtColor(cv2.imread(str(FACES / n)), cv2.COLOR_BGR2RGB)
        out.append(cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float()


def test_ssim_is_one_on_equal_images_and_falls_with_noise():
    x = torch.rand(2, 3, 32, 32) * 255
    assert torch.allclose(ssim(x, x), torch.ones(2))
    noisy = (x + torch.randn_like(x) * torch.tensor([5.0, 40.0]).view(2, 1, 1, 1)).clamp(0, 255)
    d = dssim(x, noisy)
    assert 0 < d[0] < d[1] < 0.5


@requires_shared("data", "samples", "celebfom")
@pytest.mark.parametrize("mode", ["low", "high"])
def test_fawkes_targeted_moves_towards_the_target_within_its_budget(dlib, mode):
    (f,) = dlib
    x = faces(["Emma Stone_real.png", "Miley Cyrus_real.png"])
    xt = faces(["Will Smith_real.png", "Will Smith_real.png"])
    attack = FawkesTargeted(mode, steps=25)
    xc = attack(x, dlib, xt)
    with torch.no_grad():
        before, after = (f(x) - f(xt)).norm(dim=1), (f(xc) - f(xt)).norm(dim=1)
    assert (after < before - 0.05).all(), (before, after)
    assert (dssim(x, xc) <= 1.1 * attack.rho).all() and (dssim(x, xc) > 0).all()
    assert xc.min() >= 0 and xc.max() <= 255


@requires_shared("data", "samples", "celebfom")
def test_fawkes_untargeted_pushes_away_within_its_budget_and_change_cap(dlib):
    (f,) = dlib
    x = faces(["Emma Stone_real.png", "Kate Winslet_real.png"])
    attack = FawkesUntargeted("high", steps=15)
    xc = attack(x, dlib)
    with torch.no_grad():
        moved = (torch.nn.functional.normalize(f(xc)) - torch.nn.functional.normalize(f(x))).norm(dim=1)
    assert (moved > 0.1).all(), moved
    assert (dssim(x, xc) <= 1.1 * attack.rho).all()
    assert (xc - x).abs().max() <= 15 + 1e-3


@requires_shared("data", "samples", "celebfom")
def test_lowkey_pushes_away_within_its_linf_bound(dlib):
    (f,) = dlib
    x = faces(["Amir Khan_real.png", "Emma Stone_real.png"])
    attack = LowKey(steps=10)
    xc = attack(x, dlib)
    with torch.no_grad():
        moved = (torch.nn.functional.normalize(f(xc)) - torch.nn.functional.normalize(f(x))).norm(dim=1)
    assert (moved > 0.1).all(), moved
    assert (xc - x).abs().max() / 255 <= attack.linf_bound + 1e-5
    assert attack.linf_bound == pytest.approx(0.005 + 10 * 0.0025)
    bounded = LowKey(steps=10, epsilon=0.01)(x, dlib)
    assert (bounded - x).abs().max() / 255 <= 0.01 + 1e-5


def test_gaussian_smoothing_keeps_constants_and_blurs_edges():
    flat = torch.full((1, 3, 20, 20), 0.3)
    assert torch.allclose(gaussian_smooth(flat), flat, atol=1e-6)
    edge = torch.zeros(1, 1, 20, 20)
    edge[..., 10:] = 1
    out = gaussian_smooth(edge)
    assert 0 < out[0, 0, 5, 9] < 0.5 < out[0, 0, 5, 10] < 1


def test_amplification_is_exact():
    x = torch.tensor([[[[10, 250, 100, 0]]]], dtype=torch.uint8)
    xc = torch.tensor([[[[12, 253, 97, 1]]]], dtype=torch.uint8)
    assert torch.equal(amplify(x, xc, 0), x) and torch.equal(amplify(x, xc, 1), xc)
    assert amplify(x, xc, 3).tolist() == [[[[16, 255, 91, 3]]]]
    assert amplify(x, xc, 10).tolist() == [[[[30, 255, 70, 10]]]]
    per_image = amplify(torch.cat([x, x]), torch.cat([xc, xc]), torch.tensor([2.0, 5.0]))
    assert per_image[:, 0, 0, 0].tolist() == [14, 20]
    xf = x.float()
    assert torch.allclose(amplify(xf, xc.float(), 2.5), (xf + 2.5 * (xc.float() - xf)).clamp(0, 255))
    with pytest.raises(ValueError, match="differ in shape"):
        amplify(x, xc[..., :2], 2)


def test_target_is_drawn_among_the_farthest_identities():
    user = torch.zeros(3, 2)
    cands = {f"id{i}": torch.full((2, 2), float(i)) for i in range(6)}
    picks = {select_target(user, cands, top=2, rng=np.random.default_rng(s)) for s in range(30)}
    assert picks == {"id5", "id4"}
    assert select_target(user, cands, top=1) == "id5"
    idx = pair_targets(7, 30, max_images=10, rng=np.random.default_rng(0))
    assert len(idx) == 7 and len(set(idx)) <= 10 and idx.max() < 30


def test_lpips_from_user_files_and_lowkey_with_it(tmp_path):
    from torchvision.models import alexnet

    from dfdetect.puface.cloak.lpips import CHANNELS, LPIPS
    from dfdetect.utils.errors import UserError

    torch.manual_seed(0)
    torch.save(alexnet(weights=None).state_dict(), tmp_path / "alex.pth")
    torch.save(
        {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate(CHANNELS)},
        tmp_path / "lin.pth",
    )
    lp = LPIPS.from_files(tmp_path / "alex.pth", tmp_path / "lin.pth")
    x = torch.rand(2, 3, 64, 64)
    assert torch.allclose(lp(x, x), torch.zeros(2))
    assert (lp(x, (x + 0.2 * torch.randn_like(x)).clamp(0, 1)) > 0).all()
    attack = LowKey(steps=1, perceptual="lpips", lpips_alexnet=str(tmp_path / "alex.pth"),
                    lpips_linear=str(tmp_path / "lin.pth"))  # fmt: skip
    assert attack._penalty(x, x.flip(-1)).shape == (2,)
    with pytest.raises(UserError, match="lpips_alexnet"):
        LowKey(perceptual="lpips")


def test_an_untargeted_cloak_of_a_folder_needs_no_store_and_a_targeted_one_names_the_command(tmp_path):
    import cv2
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from dfdetect.puface.cloak.command import cloak_from_config
    from dfdetect.utils.errors import UserError
    from tests.conftest import CONF_DIR

    def compose_config(name, overrides, root):
        GlobalHydra.instance().clear()
        with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
            return compose(config_name=name, overrides=[f"paths.root_dir={root}", *overrides])

    (tmp_path / "in").mkdir()
    face = np.full((160, 160, 3), 128, np.uint8)
    cv2.imwrite(str(tmp_path / "in" / "me.png"), face)
    overrides = [f"images={tmp_path / 'in'}", f"out={tmp_path / 'out'}", "data.chipper=null",
                 "device=cpu"]  # fmt: skip
    cfg = compose_config("cloak.yaml", ["cloak=lowkey", "cloak.steps=1", *overrides], tmp_path)
    summary = cloak_from_config(cfg)
    assert (tmp_path / "out" / "me.png").is_file() and summary["no_face"] == []
    cfg = compose_config("cloak.yaml", ["cloak=fawkes_high", *overrides], tmp_path)
    with pytest.raises(UserError, match=r"no clip store .* python scripts/preprocess.py data=ffpp_mini"):
        cloak_from_config(cfg)
