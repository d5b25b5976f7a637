import pytest
import torch

from dfdetect.models.layers.convlstm.spectral_conv_grad import SpectralConvGrad, fft_size


def direct_grads(grad_out, h, weight):
    pad = weight.shape[-1] // 2
    return torch.ops.aten.convolution_backward(
        grad_out, h, weight, None, (1, 1), (pad, pad), (1, 1), False, (0, 0), 1, (True, True, False)
    )[:2]


@pytest.mark.parametrize("n, size", [(1, 1), (7, 8), (11, 12), (67, 72), (97, 100), (123, 125), (128, 128)])
def test_fft_size_is_the_next_5_smooth_length(n, size):
    assert fft_size(n) == size


@pytest.mark.parametrize(
    "batch, c_in, c_out, height, width, kernel, steps",
    [
        (2, 3, 8, 9, 13, 5, 3),  # frames not square, not 5-smooth
        (1, 4, 4, 5, 4, 7, 2),  # kernel larger than the frame
        (3, 2, 6, 1, 1, 5, 2),  # a single pixel
        (2, 8, 32, 16, 16, 7, 4),
        (2, 4, 8, 6, 7, 3, 1),
        (2, 4, 4, 6, 5, 1, 2),
    ],
)
def test_gradients_equal_the_direct_convolution_backward(batch, c_in, c_out, height, width, kernel, steps):
    torch.manual_seed(0)
    weight = torch.randn(c_out, c_in, kernel, kernel, dtype=torch.double)
    spectral = SpectralConvGrad(weight, height, width)
    expected_weight_grad = torch.zeros_like(weight)
    for _ in range(steps):
        grad_out = torch.randn(batch, c_out, height, width, dtype=torch.double)
        h = torch.randn(batch, c_in, height, width, dtype=torch.double)
        input_grad, weight_grad = direct_grads(grad_out, h, weight)
        torch.testing.assert_close(spectral.input_grad(grad_out, h), input_grad, rtol=0, atol=1e-12)
        expected_weight_grad += weight_grad
    torch.testing.assert_close(spectral.weight_grad(), expected_weight_grad, rtol=0, atol=1e-11)


def test_float32_gradients_agree_to_float_rounding():
    torch.manual_seed(0)
    weight = torch.randn(32, 8, 7, 7) * 0.05
    grad_out, h = torch.randn(4, 32, 64, 64), torch.randn(4, 8, 64, 64)
    spectral = SpectralConvGrad(weight, 64, 64)
    input_grad = spectral.input_grad(grad_out, h)
    assert input_grad.dtype == torch.float32 and input_grad.shape == h.shape
    expected_input, expected_weight = direct_grads(grad_out.double(), h.double(), weight.double())
    input_error = (input_grad.double() - expected_input).abs().max() / expected_input.abs().max()
    weight_error = (
        spectral.weight_grad().double() - expected_weight
    ).abs().max() / expected_weight.abs().max()
    assert input_error < 1e-5 and weight_error < 1e-4


def test_channels_last_weight_and_inputs_give_the_same_gradients():
    torch.manual_seed(0)
    weight = torch.randn(8, 4, 5, 5, dtype=torch.double)
    grad_out, h = torch.randn(2, 8, 9, 9, dtype=torch.double), torch.randn(2, 4, 9, 9, dtype=torch.double)
    plain = SpectralConvGrad(weight, 9, 9)
    cl = SpectralConvGrad(weight.contiguous(memory_format=torch.channels_last), 9, 9)
    as_cl = [t.contiguous(memory_format=torch.channels_last) for t in (grad_out, h)]
    torch.testing.assert_close(cl.input_grad(*as_cl), plain.input_grad(grad_out, h), rtol=0, atol=1e-12)
    torch.testing.assert_close(cl.weight_grad(), plain.weight_grad(), rtol=0, atol=1e-12)


def test_weight_grad_before_any_step_is_zero_and_even_kernels_are_rejected():
    weight = torch.randn(4, 2, 3, 3)
    assert SpectralConvGrad(weight, 5, 5).weight_grad().abs().sum() == 0
    with pytest.raises(ValueError, match="odd kernel"):
        SpectralConvGrad(torch.randn(4, 2, 4, 4), 5, 5)
