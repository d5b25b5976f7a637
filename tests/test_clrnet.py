"""CLRNet and its ConvLSTM: equivalence with the textbook cell, Keras semantics, the authors' sizes."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dfdetect.models.layers.convlstm import cpu_kernels
from dfdetect.models.layers.convlstm import layer as convlstm
from dfdetect.models.layers.convlstm.layer import ConvLSTM2d, NaiveConvLSTM2d, hard_sigmoid
from dfdetect.models.layers.keras_compat import same_pads
from dfdetect.models.nets import create_net
from dfdetect.models.nets.clrnet import CLRNet, CLRNetLite

AUTHORS_PARAMETERS = 248.1e6
TRAINABLE_PARAMETERS = 248_107_394  # BN gammas and betas included
KERAS_TOTAL_PARAMETERS = 248_160_514  # Keras' summary also counts BN moving mean and variance


def make_pair(c_in, c_out, kernel, stride, seed=0):
    torch.manual_seed(seed)
    ours = ConvLSTM2d(c_in, c_out, kernel, stride).double()
    with torch.no_grad():  # larger weights drive gates into hard_sigmoid's flat parts too
        ours.weight_ih.mul_(3)
        ours.weight_hh.mul_(3)
    naive = NaiveConvLSTM2d(c_in, c_out, kernel, stride).double()
    naive.load_state_dict(ours.state_dict())
    return ours, naive


def test_hard_sigmoid_is_keras_2():
    x = torch.tensor([-5.0, -2.5, -1.0, 0.0, 1.0, 2.5, 5.0])
    assert hard_sigmoid(x).tolist() == pytest.approx([0.0, 0.0, 0.3, 0.5, 0.7, 1.0, 1.0])
    assert not torch.allclose(hard_sigmoid(x), F.hardsigmoid(x))  # PyTorch's slope is 1/6


@pytest.mark.parametrize(
    "size, kernel, stride, pads",
    [(240, 7, 2, (2, 3)), (20, 3, 2, (0, 1)), (21, 3, 2, (1, 1)), (9, 1, 2, (0, 0))],
)
def test_same_padding_puts_the_odd_pixel_after_like_tensorflow(size, kernel, stride, pads):
    assert same_pads(size, kernel, stride) == pads


@pytest.mark.parametrize(
    "c_in, c_out, kernel, stride, frames",
    [
        (3, 4, 3, 1, 5),
        (3, 4, 3, 2, 5),
        (5, 6, 7, 2, 3),
        (4, 4, 1, 2, 5),  # 1x1, many pixels per channel: a matrix product per sample
        (3, 64, 1, 2, 2),  # 1x1, few pixels per channel: one product over all pixels
        (64, 4, 1, 2, 2),  # 1x1 input convolution with few pixels for its channels: a convolution
        (4, 6, 3, 1, 1),
        (4, 4, 1, 2, 1),
    ],
)
@pytest.mark.parametrize("recurrent_layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("recurrent_grads", ["direct", "spectral"])
@pytest.mark.parametrize("gates", ["fused", "torch_ops"])
def test_convlstm_matches_the_naive_cell_forward_and_backward(
    c_in, c_out, kernel, stride, frames, recurrent_layout, recurrent_grads, gates, monkeypatch
):
    if gates == "torch_ops":
        monkeypatch.setattr(cpu_kernels, "for_tensor", lambda tensor: None)
    elif os.environ.get(cpu_kernels.ENV_SWITCH) == "0":
        pytest.skip("CPU kernels switched off")
    else:
        assert cpu_kernels.for_tensor(torch.zeros(1, dtype=torch.double)), "CPU kernels did not build"
    min_pixels = 0 if recurrent_layout == "channels_last" else 10**9
    monkeypatch.setattr(convlstm, "CHANNELS_LAST_MIN_PIXELS", min_pixels)
    monkeypatch.setattr(convlstm, "SPECTRAL_MIN_KERNEL", 3 if recurrent_grads == "spectral" else 10**9)
    ours, naive = make_pair(c_in, c_out, kernel, stride)
    x = torch.randn(2, frames, c_in, 11, 10, dtype=torch.double, requires_grad=True)
    x_naive = x.detach().clone().requires_grad_()
    out, out_naive = ours(x), naive(x_naive)
    assert out.shape == (2, frames, c_out, math.ceil(11 / stride), math.ceil(10 / stride))
    torch.testing.assert_close(out, out_naive, rtol=0, atol=1e-12)

    weights = torch.randn_like(out)
    (out * weights).sum().backward()
    (out_naive * weights).sum().backward()
    torch.testing.assert_close(x.grad, x_naive.grad, rtol=0, atol=1e-12)
    grad_ih, grad_hh = naive.weight.grad.split([c_in, c_out], dim=1)
    torch.testing.assert_close(ours.weight_ih.grad, grad_ih, rtol=0, atol=1e-11)
    torch.testing.assert_close(ours.weight_hh.grad, grad_hh, rtol=0, atol=1e-11)
    torch.testing.assert_close(ours.bias.grad, naive.bias.grad, rtol=0, atol=1e-11)
    if frames == 1:
        assert ours.weight_hh.grad.abs().sum() == 0


def test_convlstm_gives_the_same_result_in_channels_last_layout():
    ours, _ = make_pair(3, 4, 3, 2)
    x = torch.randn(2, 4, 3, 12, 12, dtype=torch.double)
    expected = ours(x)
    ours = ours.to(memory_format=torch.channels_last)
    x_cl = x.flatten(0, 1).contiguous(memory_format=torch.channels_last).unflatten(0, (2, 4))
    torch.testing.assert_close(ours(x_cl), expected, rtol=0, atol=1e-12)


def test_return_sequences_false_gives_the_last_step():
    torch.manual_seed(0)
    layer = ConvLSTM2d(3, 4, 3)
    x = torch.randn(2, 3, 3, 8, 8)
    last = ConvLSTM2d(3, 4, 3, return_sequences=False)
    last.load_state_dict(layer.state_dict())
    torch.testing.assert_close(last(x), layer(x)[:, -1])


def test_convlstm_rejects_even_kernels_and_frame_batches():
    with pytest.raises(ValueError, match="odd kernel"):
        ConvLSTM2d(3, 4, 2)
    with pytest.raises(ValueError, match=r"\(B, T, C, H, W\)"):
        ConvLSTM2d(3, 4, 3)(torch.randn(2, 3, 8, 8))


def tf_same_conv(x: np.ndarray, kernel: np.ndarray, stride: int) -> np.ndarray:
    """TensorFlow conv2d, 'same' padding, NHWC without batch: x (H, W, C), kernel (k, k, C, O)."""
    k = kernel.shape[0]
    out_h, out_w = -(-x.shape[0] // stride), -(-x.shape[1] // stride)
    pad_h = max((out_h - 1) * stride + k - x.shape[0], 0)
    pad_w = max((out_w - 1) * stride + k - x.shape[1], 0)
    x = np.pad(x, ((pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)))
    out = np.zeros((out_h, out_w, kernel.shape[-1]))
    for dy in range(k):
        for dx in range(k):
            window = x[dy : dy + stride * out_h : stride, dx : dx + stride * out_w : stride]
            out += window @ kernel[dy, dx]
    return out


def keras_convlstm2d(frames, kernel, recurrent_kernel, bias, stride):
    """Keras 2 ConvLSTM2D(return_sequences=True) on one clip (T, H, W, C), written from its equations."""

    def hard_sig(v):
        return np.clip(0.2 * v + 0.5, 0.0, 1.0)

    n = recurrent_kernel.shape[2]
    h = c = None
    outputs = []
    for x in frames:
        z = tf_same_conv(x, kernel, stride) + bias
        if h is None:
            h = c = np.zeros(z.shape[:2] + (n,))
        z = z + tf_same_conv(h, recurrent_kernel, 1)
        i, f, g, o = (z[..., q * n : (q + 1) * n] for q in range(4))
        c = hard_sig(f) * c + hard_sig(i) * np.tanh(g)
        h = hard_sig(o) * np.tanh(c)
        outputs.append(h)
    return np.stack(outputs)


@pytest.mark.parametrize("kernel_size, stride", [(3, 2), (3, 1), (1, 2)])
def test_keras_weights_give_keras_outputs(kernel_size, stride):
    rng = np.random.default_rng(0)
    c_in, n = 3, 4
    kernel = rng.normal(0, 0.5, (kernel_size, kernel_size, c_in, 4 * n))
    recurrent = rng.normal(0, 0.5, (kernel_size, kernel_size, n, 4 * n))
    bias = rng.normal(0, 0.5, 4 * n)
    frames = rng.normal(0, 1, (3, 10, 9, c_in))

    layer = ConvLSTM2d(c_in, n, kernel_size, stride).double()
    layer.load_keras_weights(kernel, recurrent, bias)
    ours = layer(torch.from_numpy(frames).permute(0, 3, 1, 2)[None])[0].permute(0, 2, 3, 1)
    np.testing.assert_allclose(
        ours.detach().numpy(), keras_convlstm2d(frames, kernel, recurrent, bias, stride), atol=1e-12
    )
    with pytest.raises(ValueError, match="does not fit"):
        layer.load_keras_weights(kernel[..., :4], recurrent, bias)


def test_full_clrnet_has_the_authors_parameter_count():
    with torch.device("meta"):
        net = create_net("clrnet")
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    bn_statistics = sum(b.numel() for name, b in net.named_buffers() if "running_" in name)
    assert trainable == TRAINABLE_PARAMETERS
    assert abs(trainable - AUTHORS_PARAMETERS) / AUTHORS_PARAMETERS < 0.01
    assert trainable + bn_statistics == KERAS_TOTAL_PARAMETERS
    assert net.input_size == 240


def test_full_clrnet_feature_maps_follow_the_authors_layout():
    with torch.device("meta"):
        net = CLRNet()
        shapes = []
        for module in (net.stem, *net.stages):
            module.register_forward_hook(lambda m, i, out: shapes.append(tuple(out.shape[1:])))
        logits = net(torch.empty(2, 2, 3, 240, 240))
    assert logits.shape == (2,)
    # 7x7/2 stem and (1, 3, 3) pool with stride 3: 240 -> 120 -> 40; every stage's first block strides 2
    assert shapes[0] == (2, 64, 40, 40)
    stage_ends = np.cumsum([3, 4, 6, 3])
    assert [shapes[i] for i in stage_ends] == [
        (2, 256, 20, 20),
        (2, 512, 10, 10),
        (2, 1024, 5, 5),
        (2, 2048, 3, 3),
    ]
    convlstms = [m for m in net.modules() if isinstance(m, ConvLSTM2d)]
    assert len(convlstms) == 1 + 3 * 16 + 4  # stem, three per bottleneck, four projection shortcuts
    assert convlstms[0].kernel_size == 7 and convlstms[0].stride == 2
    assert net.stages[0].residual[0].kernel_size == 3  # the authors' first unit is a bare 3x3


@pytest.mark.parametrize("frames", [5, 1])
def test_clrnet_lite_forward_gives_one_finite_logit_per_clip(frames):
    torch.manual_seed(0)
    net = create_net("clrnet_lite", input_size=64).eval()
    assert isinstance(net, CLRNetLite)
    logits = net(torch.rand(2, frames, 3, 80, 80))
    assert logits.shape == (2,)
    assert torch.isfinite(logits).all()


def test_clrnet_lite_sees_time():
    torch.manual_seed(0)
    net = create_net("clrnet_lite", input_size=64).eval()
    clips = torch.rand(2, 5, 3, 64, 64)
    assert not torch.allclose(net(clips), net(clips.flip(1)))


def test_clrnet_lite_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    net = create_net("clrnet_lite", input_size=64).train()
    logits = net(torch.rand(4, 5, 3, 64, 64))
    F.binary_cross_entropy_with_logits(logits, torch.tensor([0.0, 1.0, 0.0, 1.0])).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_logit_is_the_keras_softmax_probability_of_fake():
    torch.manual_seed(0)
    net = create_net("clrnet_lite", input_size=64).eval()
    scores = {}
    net.fc.register_forward_hook(lambda m, i, out: scores.setdefault("z", out))
    logits = net(torch.rand(3, 2, 3, 64, 64))
    fake_probability = torch.softmax(scores["z"], dim=1)[:, 0]  # authors' class 0 = fake, 1 = real
    torch.testing.assert_close(torch.sigmoid(logits), fake_probability)


def test_naive_clrnet_lite_loads_the_fast_weights_and_agrees():
    torch.manual_seed(0)
    ours = CLRNetLite(input_size=32, dropout=0.0).double().train()
    naive = CLRNetLite(input_size=32, dropout=0.0, cell=NaiveConvLSTM2d).double().train()
    naive.load_state_dict(ours.state_dict())
    clips = torch.rand(2, 3, 3, 32, 32, dtype=torch.double)
    ours(clips).sum().backward()
    naive(clips).sum().backward()
    torch.testing.assert_close(ours.fc.weight.grad, naive.fc.weight.grad, rtol=0, atol=1e-10)
    stem_grad = torch.cat([ours.stem[0].weight_ih.grad, ours.stem[0].weight_hh.grad], dim=1)
    torch.testing.assert_close(stem_grad, naive.stem[0].weight.grad, rtol=0, atol=1e-10)


def test_convlstm_trains_under_bf16_autocast():
    torch.manual_seed(0)
    layer = ConvLSTM2d(3, 4, kernel_size=3)
    clips = torch.rand(2, 3, 3, 8, 8)
    reference = layer(clips).sum()
    reference.backward()
    expected = {name: p.grad.clone() for name, p in layer.named_parameters()}
    layer.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(clips)
    assert out.dtype == torch.bfloat16
    out.float().sum().backward()
    for name, p in layer.named_parameters():
        assert p.grad.dtype == torch.float32, name
        torch.testing.assert_close(
            p.grad, expected[name], rtol=0.1, atol=0.1 * expected[name].abs().max().item()
        )
