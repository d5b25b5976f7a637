"""ShallowNet V1-V3: the authors' Keras layer lists, sizes, dropout and the L2 kernel penalty."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from dfdetect.models.layers.keras_compat import TFSamePad2d
from dfdetect.models.nets import create_net

# Hand-computed in docs/models.md; the Keras originals have hidden + 1 more (a 2-way output layer).
NATIVE_COUNTS = {"shallownet_v1": 26_268_860, "shallownet_v2": 202_698_497, "shallownet_v3": 25_803_553}
FLATTENED = {"shallownet_v1": 3 * 3 * 437, "shallownet_v2": 32 * 32 * 192, "shallownet_v3": 28 * 28 * 32}
LAYERS = {"shallownet_v1": (17, 18, 18), "shallownet_v2": (8, 9, 1), "shallownet_v3": (8, 9, 1)}


def on_meta(name: str, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return create_net(name, **kwargs)


@pytest.mark.parametrize("name", NATIVE_COUNTS)
def test_parameter_count_and_flattened_features_at_128(name):
    net = on_meta(name)
    assert net.input_size == 128
    assert sum(p.numel() for p in net.parameters() if p.requires_grad) == NATIVE_COUNTS[name]
    assert net.head[1].in_features == FLATTENED[name]


@pytest.mark.parametrize("name", NATIVE_COUNTS)
def test_layer_counts_and_dropout_rate(name):
    net = on_meta(name)
    convs, dropouts, norms = LAYERS[name]
    assert sum(isinstance(m, nn.Conv2d) for m in net.modules()) == convs
    assert [m.p for m in net.modules() if isinstance(m, nn.Dropout)] == [0.25] * dropouts
    assert sum(isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d) for m in net.modules()) == norms


def test_v1_dense_width_equals_its_flattened_features_only_at_128():
    assert on_meta("shallownet_v1", input_size=128).head[1].out_features == 3933 == 3 * 3 * 437
    assert on_meta("shallownet_v1", input_size=64).head[1].in_features == 437


@pytest.mark.parametrize("name, smallest", [("shallownet_v1", 63), ("shallownet_v3", 20)])
def test_too_small_input_names_the_smallest_size(name, smallest):
    on_meta(name, input_size=smallest)
    with pytest.raises(ValueError, match=f">= {smallest}"):
        on_meta(name, input_size=smallest - 1)


def test_strided_same_padding_puts_the_odd_pixel_after_like_tensorflow():
    x = torch.arange(6.0).view(1, 1, 1, 6)
    padded = TFSamePad2d(3, 2)(x)
    assert padded.shape == (1, 1, 3, 7)  # height 1: 1 before, 1 after; width 6: 0 before, 1 after
    assert padded[0, 0, 1].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 0.0]
    assert on_meta("shallownet_v2").head[1].in_features == 32 * 32 * 192  # 128 -> 64 -> 32


def test_l2_adds_twice_lambda_w_to_kernel_gradients_only_and_survives_copies():
    clips = torch.rand(3, 1, 3, 24, 24)
    grads = {}
    for l2 in (0.0, 1e-4):
        torch.manual_seed(0)
        net = copy.deepcopy(create_net("shallownet_v3", input_size=24, kernel_l2=l2)).double().eval()
        net(clips.double()).sum().backward()
        grads[l2] = {n: (p.grad.clone(), p.detach().clone()) for n, p in net.named_parameters()}
    kernels = {n for n, p in net.named_parameters() if n.endswith("weight") and p.ndim > 1}
    kernels.discard(f"head.{len(net.head) - 1}.weight")  # the output layer carries no penalty in Keras
    assert len(kernels) == 9
    for name, (grad, weight) in grads[1e-4].items():
        extra = grad - grads[0.0][name][0]
        expected = 2e-4 * weight if name in kernels else torch.zeros_like(weight)
        assert torch.allclose(extra, expected, atol=1e-9), name
