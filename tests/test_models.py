"""One parametrised test per registered net (timm style), plus MesoNet's Keras facts."""

from __future__ import annotations

import inspect
from pathlib import Path

import hydra
import pytest
import torch

from dfdetect.models.layers.keras_compat import SameMaxPool2d
from dfdetect.models.nets import (
    FrameDetector,
    NetInfo,
    create_net,
    detector_table,
    list_nets,
    net_info,
    register_net,
)
from tests.conftest import compose_config

SMALL = 64
# nets too big for the fast suite run in `-m slow` only (clrnet: 248 M parameters, about a minute
# to initialise on CPU and several GB of memory per instance)
SLOW_NETS = {"clrnet"}


# nets that score only identities they hold references of (NaN = unknown): the contract tests
# enrol one first (tests/test_abnet.py covers enrolment and "unknown")
ENROLLING_NETS = {"abnet"}


def enrolled(name: str, net: torch.nn.Module, clips: torch.Tensor) -> torch.nn.Module:
    if name in ENROLLING_NETS:
        from tests.test_abnet import enrol_self

        enrol_self(net, clips)
    return net


def registered_nets() -> list:
    return [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_NETS else n for n in list_nets()]


@pytest.mark.parametrize("name", registered_nets())
@pytest.mark.parametrize("t", [5, 1])
def test_forward_shape_and_finite(name, t):
    net = create_net(name, input_size=SMALL).eval()
    clips = torch.rand(2, t, 3, 80, 80)
    out = enrolled(name, net, clips)(clips)
    assert out.shape == (2,)
    if name in ENROLLING_NETS and t == 1:
        assert torch.isnan(out).all()  # a still has no behaviour: unknown, not a guess
        return
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", registered_nets())
def test_every_parameter_gets_a_gradient(name):
    torch.manual_seed(0)
    net = create_net(name, input_size=SMALL).train()
    clips = torch.randn(4, 2, 3, SMALL, SMALL)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(
        enrolled(name, net, clips)(clips), torch.tensor([0.0, 1.0, 0.0, 1.0])
    )
    loss.backward()
    for pname, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", registered_nets())
def test_state_dict_round_trip_gives_identical_outputs(name, tmp_path):
    net = create_net(name, input_size=SMALL).eval()
    x = torch.rand(2, 3, 3, SMALL, SMALL)
    torch.save(enrolled(name, net, x).state_dict(), tmp_path / "w.pt")
    other = create_net(name, input_size=SMALL).eval()
    other.load_state_dict(torch.load(tmp_path / "w.pt"))
    assert torch.equal(net(x), other(x)) and torch.isfinite(other(x)).all()


@pytest.mark.parametrize("name, count", [("meso4", 27_977), ("mesoinception4", 28_615)])
def test_mesonet_parameter_counts_match_keras(name, count):
    net = create_net(name, input_size=256)
    assert sum(p.numel() for p in net.parameters() if p.requires_grad) == count


def test_unknown_net_names_the_known_ones():
    with pytest.raises(KeyError, match="mesoinception4"):
        create_net("mesonet9")


def test_same_max_pool_pads_like_tensorflow():
    # TF 'same' pooling of width 6 with k=4: 2 windows, pad 1 before and 1 after
    x = torch.tensor([[[[1.0, 9.0, 2.0, 3.0, 4.0, 5.0]]]])
    out = SameMaxPool2d(4)(x.expand(1, 1, 4, 6).contiguous())
    assert out.shape == (1, 1, 1, 2)
    assert out.flatten().tolist() == [9.0, 5.0]
    x = torch.arange(5.0).view(1, 1, 1, 5).expand(1, 1, 2, 5).contiguous()
    assert SameMaxPool2d(2)(x).flatten().tolist() == [1.0, 3.0, 4.0]


@pytest.mark.parametrize("name", [n for n in list_nets() if n not in SLOW_NETS])
def test_real_data_configs_give_each_net_its_native_input_size(name, tmp_path):
    """data=ffpp_mini sets no working resolution (net_input_size: null): nets keep their own, or
    the size their authors' recipe gives (RECIPE_INPUT_SIZE)."""
    model = "experiment=ftdetect" if name == "ftdetect" else f"model={name}"
    cfg = compose_config("train.yaml", ["data=ffpp_mini", model], tmp_path)
    assert cfg.data.net_input_size is None
    net = hydra.utils.instantiate(cfg.model.net)
    assert net.input_size == RECIPE_INPUT_SIZE.get(name, type(net)().input_size)


# the Tariq lab trains Keras' Xception at 240 px (issue #19); the net's own default is FF++'s 299
RECIPE_INPUT_SIZE = {"xception": 240}


def trainable_parameters(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


@pytest.mark.parametrize("name", registered_nets())
def test_registry_record_states_the_facts_of_the_net(name):
    """Each net's record (beside its definition) holds for the net built with its defaults."""
    info = net_info(name)
    assert info.name == name
    net = create_net(name)
    assert net.input_size == info.input_size
    assert tuple(net.mean) == pytest.approx(info.mean) and tuple(net.std) == pytest.approx(info.std)
    assert isinstance(net, FrameDetector) == (info.kind == "frame")
    assert trainable_parameters(net) == info.params
    takes_weights = "weights" in inspect.signature(type(net)).parameters
    assert takes_weights == bool(info.weight_formats)
    assert info.paper and info.code


def test_registry_refuses_a_second_net_of_the_same_name_and_bad_records():
    info = net_info("meso4")
    with pytest.raises(ValueError, match="registered twice"):
        register_net("meso4", info)(torch.nn.Identity)
    with pytest.raises(ValueError, match="kind"):
        NetInfo(**{**info.__dict__, "kind": "video"})
    with pytest.raises(ValueError, match="weight formats"):
        NetInfo(**{**info.__dict__, "weight_formats": ("onnx",)})


def test_readme_detector_table_is_the_registry():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    expected = detector_table()
    assert expected in readme, (
        "README's detector table differs from the registry; it should read:\n" + expected
    )
