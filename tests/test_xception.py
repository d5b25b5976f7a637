"""Xception: timm's legacy_xception with a one-logit head, loading local FF++ / timm state dicts."""

from __future__ import annotations

import pytest
import timm
import torch

from dfdetect.models.nets import create_net
from dfdetect.models.nets.xception import TIMM_NAME

SIZE = 64


def test_timm_still_ships_the_legacy_xception():
    assert TIMM_NAME in timm.list_models("*xception*")


def test_parameter_count_at_299_is_keras_xception_with_one_output():
    # Keras Xception: 22,855,952 trainable with the 1000-way head; 2048 * 1000 + 1000 -> 2048 + 1
    with torch.device("meta"):
        net = create_net("xception")
    assert net.input_size == 299 and net.mean == net.std == (0.5, 0.5, 0.5)
    assert sum(p.numel() for p in net.parameters() if p.requires_grad) == 22_855_952 - 2_049_000 + 2_049


def test_faceforensics_two_class_head_becomes_the_log_odds_of_its_softmax(tmp_path):
    torch.manual_seed(0)
    ffpp = timm.create_model(TIMM_NAME, pretrained=False, num_classes=2).eval()
    with torch.no_grad():
        ffpp.fc.weight.normal_(0, 0.05)
        ffpp.fc.bias.copy_(torch.tensor([0.3, -0.2]))
    state = {f"model.{k}".replace("model.fc.", "model.last_linear."): v for k, v in ffpp.state_dict().items()}
    torch.save(state, tmp_path / "ffpp.pth")
    net = create_net("xception", input_size=SIZE, weights=str(tmp_path / "ffpp.pth")).eval()
    frames = torch.rand(2, 3, SIZE, SIZE)
    with torch.no_grad():
        expected = torch.softmax(ffpp(frames * 2 - 1), dim=1)[:, 1]  # FF++ class 1 = fake
        ours = torch.sigmoid(net((frames * 2 - 1).unsqueeze(1)))
    assert torch.allclose(ours, expected, atol=1e-5)


def test_imagenet_weights_load_the_backbone_and_keep_a_fresh_head(tmp_path):
    imagenet = timm.create_model(TIMM_NAME, pretrained=False, num_classes=1000)
    state = imagenet.state_dict()
    pointwise = "block1.rep.0.pointwise.weight"
    state[pointwise] = state[pointwise][:, :, 0, 0]  # Cadene's original files store 1x1 kernels as 2-D
    torch.save(state, tmp_path / "imagenet.pth")
    net = create_net("xception", input_size=SIZE, weights=str(tmp_path / "imagenet.pth"))
    assert torch.equal(net.model.block5.rep[1].pointwise.weight, imagenet.block5.rep[1].pointwise.weight)
    assert torch.equal(net.model.state_dict()[pointwise], imagenet.state_dict()[pointwise])
    assert net.model.fc.weight.shape == (1, 2048)


def test_state_dict_of_another_net_is_refused_naming_the_file(tmp_path):
    torch.save(create_net("meso4").state_dict(), tmp_path / "meso.pth")
    with pytest.raises(ValueError, match="meso.pth"):
        create_net("xception", input_size=SIZE, weights=str(tmp_path / "meso.pth"))
    with pytest.raises(FileNotFoundError, match="absent.pth"):
        create_net("xception", input_size=SIZE, weights=str(tmp_path / "absent.pth"))
