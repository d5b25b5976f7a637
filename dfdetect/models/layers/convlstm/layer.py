"""Keras 2's ``ConvLSTM2D(return_sequences=True)`` for batch-first clips ``(B, T, C, H, W)``.

Gates in Keras order (input, forget, cell, output), with ``*`` a convolution::

    i = hard_sigmoid(W_xi * x_t + W_hi * h + b_i)        f and o alike
    c' = f c + i tanh(W_xc * x_t + W_hc * h + b_c)
    h' = o tanh(c')

``hard_sigmoid`` is Keras 2's ``clip(0.2 x + 0.5, 0, 1)``, not PyTorch's ``x / 6 + 1 / 2``. The input
convolution has the layer's stride and TensorFlow ``same`` padding (odd pad pixel after); the
recurrent one has the same kernel size, stride 1 and ``same`` padding. h and c start at zero.

``ConvLSTM2d`` convolves the inputs of all T steps in one call (T folded into the batch,
time-major), runs only the recurrent convolution step by step, skips it at t = 0 (h = 0), and
differentiates the whole time loop by hand (see ``_ConvLSTMRecurrence``). The 0.2 and 0.5 of
``hard_sigmoid`` are folded into the i, f, o rows of the kernels and the bias, so the loop only
clips. On CPU, each step's gate arithmetic runs in fused C++ kernels where they build
(``cpu_kernels``; otherwise the same torch ops as ``_activate_gates`` and ``_gate_grads``), and 7×7
recurrent kernels take their gradients through the FFT (``spectral_conv_grad``).
``NaiveConvLSTM2d`` is the textbook cell, kept as the reference it is tested and benchmarked
against.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dfdetect.models.layers.convlstm import cpu_kernels
from dfdetect.models.layers.convlstm.spectral_conv_grad import SpectralConvGrad
from dfdetect.models.layers.keras_compat import conv2d_same, with_l2

HARD_SIGMOID_SLOPE = 0.2


def hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    return (x * HARD_SIGMOID_SLOPE + 0.5).clamp(0.0, 1.0)


def _memory_format(clips: torch.Tensor) -> torch.memory_format:
    channels_last = clips.flatten(0, 1).is_contiguous(memory_format=torch.channels_last)
    return torch.channels_last if channels_last else torch.contiguous_format


def _tanh_backward(
    grad: torch.Tensor, tanh_out: torch.Tensor, out: torch.Tensor | None = None
) -> torch.Tensor:
    """``grad * (1 - tanh_out**2)`` in one pass."""
    if out is None:
        return torch.ops.aten.tanh_backward(grad, tanh_out)
    return torch.ops.aten.tanh_backward.grad_input(grad, tanh_out, grad_input=out)


def _hardtanh_backward(grad, out_value, low: float, high: float, out: torch.Tensor) -> torch.Tensor:
    """``grad`` where ``low < out_value < high``, else 0, in one pass (the clip's output works as its input)."""
    return torch.ops.aten.hardtanh_backward.grad_input(grad, out_value, low, high, grad_input=out)


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last)


def _is_channels_last(weight: torch.Tensor) -> bool:
    return not weight.is_contiguous() and weight.is_contiguous(memory_format=torch.channels_last)


# frames of at least this many pixels run the recurrent convolution (kernel > 1) in channels-last
# layout; smaller ones (CLRNet-lite's 3x3 layers at 22x22 and below) were 0.3-3 ms faster in NCHW
CHANNELS_LAST_MIN_PIXELS = 32 * 32


def _per_sample_product(h: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether a 1x1 kernel runs best as one matrix product per sample (reading the kernel once
    per sample) rather than one product over all pixels (reading the frames in NHWC order, a copy
    each way): the former when a sample has enough pixels for its kernel size."""
    return weight.shape[-1] == 1 and 2 * h.shape[-2] * h.shape[-1] >= weight.shape[1]


def _add_per_sample_product(
    addend: torch.Tensor, matrix: torch.Tensor, x: torch.Tensor, out: torch.Tensor | None = None
) -> torch.Tensor:
    """``addend + matrix @ x_n`` for every sample of ``x (N, C, H, W)``, its pixels flattened: a
    1x1 convolution as one matrix product per sample (``addend`` broadcasts)."""
    matrices = matrix.expand(x.shape[0], -1, -1)
    return torch.baddbmm(addend, matrices, x.flatten(2), out=out)


def _add_recurrent_conv(
    x: torch.Tensor, h: torch.Tensor, weight: torch.Tensor, out: torch.Tensor
) -> torch.Tensor:
    """``out = x + conv(h, weight)``: the recurrent convolution (stride 1, ``same``) added to the
    input gates; a 1x1 kernel runs as a matrix product (which adds ``x`` as it goes, per sample).

    A channels-last kernel (the recurrence converts it once, for large frames) makes the
    convolution run in channels-last layout: oneDNN's NCHW kernels are much slower on the few
    channels of CLRNet's 7x7 stem (docs/benchmarks.md, "ConvLSTM").
    """
    if _per_sample_product(h, weight):
        _add_per_sample_product(x.flatten(2), weight.flatten(1), h, out=out.view(*out.shape[:2], -1))
        return out
    if weight.shape[-1] == 1:
        recurrent = F.linear(h.permute(0, 2, 3, 1), weight.flatten(1)).permute(0, 3, 1, 2)
    else:
        if _is_channels_last(weight):
            h = _channels_last(h)
        recurrent = F.conv2d(h, weight, None, 1, weight.shape[-1] // 2)
    return torch.add(x, recurrent, out=out)


def _input_conv(frames: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, stride: int) -> torch.Tensor:
    """The input convolution of all frames. On CPU, a 1x1 kernel on frames with enough pixels for
    its channels runs as one matrix product per frame, adding the bias as it goes: 1.5-2x faster
    than oneDNN's 1x1 convolution, forward and backward, on CLRNet-lite's larger layers."""
    sampled = frames[..., ::stride, ::stride]  # what a 1x1 kernel with TensorFlow same padding reads
    if frames.device.type != "cpu" or not _per_sample_product(sampled, weight):
        return conv2d_same(frames, weight, bias, stride)
    gates = _add_per_sample_product(bias.view(1, -1, 1), weight.flatten(1), sampled)
    return gates.view(*gates.shape[:2], *sampled.shape[-2:])


def _add_recurrent_conv_input_grad(
    grad_h: torch.Tensor, grad: torch.Tensor, h: torch.Tensor, weight: torch.Tensor
) -> torch.Tensor:
    """``grad_h`` plus the recurrent convolution's input gradient for the gate gradient ``grad``."""
    if _per_sample_product(h, weight):
        return _add_per_sample_product(grad_h.flatten(2), weight.flatten(1).t(), grad).view_as(h)
    if weight.shape[-1] == 1:
        return F.linear(grad.permute(0, 2, 3, 1), weight.flatten(1).t()).permute(0, 3, 1, 2).add_(grad_h)
    return _conv_backward(grad, h, weight, input_grad=True).add_(grad_h)


# on CPU, kernels of at least this size take both gradients of the recurrent convolution through
# the FFT (CLRNet's 7x7 stem; 3x3 kernels on small frames are faster in oneDNN)
SPECTRAL_MIN_KERNEL = 5


def _spectral_grads(grad: torch.Tensor, weight: torch.Tensor) -> bool:
    return (
        weight.shape[-1] >= SPECTRAL_MIN_KERNEL
        and grad.device.type == "cpu"
        and grad.dtype in (torch.float32, torch.float64)
    )


def _recurrent_conv_weight_grad(grad: torch.Tensor, h: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    if weight.shape[-1] == 1:
        return torch.einsum("nchw,ndhw->cd", grad, h).view_as(weight)
    if _is_channels_last(weight):
        grad, h = _channels_last(grad), _channels_last(h)
    return _conv_backward(grad, h, weight).contiguous()


def _conv_backward(grad_out, x, weight, input_grad: bool = False) -> torch.Tensor:
    """Gradient of a stride-1 ``same`` ``conv2d(x, weight)`` for its input, or else its weight."""
    pad = weight.shape[-1] // 2
    grads = torch.ops.aten.convolution_backward(
        grad_out,
        x,
        weight,
        None,
        (1, 1),
        (pad, pad),
        (1, 1),
        False,
        (0, 0),
        1,
        (input_grad, not input_grad, False),
    )
    return grads[0] if input_grad else grads[1]


def _activate_gates(act: torch.Tensor, cell_prev, cell: torch.Tensor, hidden: torch.Tensor) -> None:
    """One step's gates, unfused: ``act`` (i, f, g, o; i, f, o already ``0.2 x + 0.5``) activated
    in place, the cell and hidden state written (``cpu_kernels`` does this in one pass)."""
    n = cell.shape[1]
    act[:, : 2 * n].clamp_(0.0, 1.0)
    act[:, 3 * n :].clamp_(0.0, 1.0)
    act[:, 2 * n : 3 * n].tanh_()
    i, f, g, o = act.split(n, dim=1)
    c = torch.mul(i, g, out=cell)
    if cell_prev is not None:
        c.addcmul_(f, cell_prev)
    torch.mul(o, torch.tanh(c), out=hidden)


def _gate_grads(act, cell, cell_prev, grad_h, grad_cell_next, grad: torch.Tensor) -> torch.Tensor:
    """One step's gate gradients, unfused, into ``grad``; returns the cell gradient times the
    forget gate, which the step before adds to its own (``grad_cell_next``, None at the last step)."""
    n = cell.shape[1]
    i, f, g, o = act.split(n, dim=1)
    tanh_c = torch.tanh(cell)
    grad_c = _tanh_backward(grad_h * o, tanh_c)
    if grad_cell_next is not None:
        grad_c += grad_cell_next
    torch.mul(grad_c, g, out=grad[:, :n])
    if cell_prev is not None:
        torch.mul(grad_c, cell_prev, out=grad[:, n : 2 * n])
    else:
        grad[:, n : 2 * n] = 0.0
    _tanh_backward(grad_c * i, g, out=grad[:, 2 * n : 3 * n])
    torch.mul(grad_h, tanh_c, out=grad[:, 3 * n :])
    for part in (slice(0, 2 * n), slice(3 * n, 4 * n)):
        _hardtanh_backward(grad[:, part], act[:, part], 0.0, 1.0, out=grad[:, part])
    return grad_c.mul_(f)


class _ConvLSTMRecurrence(torch.autograd.Function):
    """The time loop as one autograd node: time-major x_gates ``(T, B, 4F, H, W)``, weight_hh ->
    h ``(T, B, F, H, W)``. The i, f, o rows of x_gates and weight_hh come scaled by 0.2 and the
    bias shifted by 0.5 (``ConvLSTM2d._hard_sigmoid_affine``): a clip makes them Keras' hard_sigmoid.

    Forward runs the recurrent convolution step by step without building a graph. Backward walks
    back through time computing only input gradients per step; the recurrent kernel's gradient is
    one convolution-weight gradient over all steps at once. On CPU, kernels of 5 and up (CLRNet's
    7x7 stem) take both gradients through the FFT instead (``SpectralConvGrad``): one transform of
    each step's gate gradient serves both. Gates, cells and hidden states live in
    time-major NCHW buffers, where each gate of a step is one contiguous block per sample.
    """

    @staticmethod
    def forward(ctx, x_gates: torch.Tensor, weight_hh: torch.Tensor) -> torch.Tensor:
        # under autocast the gates arrive in bf16/fp16: run the recurrence in their dtype, and give
        # the kernel its gradient in its own dtype (backward runs outside autocast)
        ctx.weight_dtype = weight_hh.dtype
        weight_hh = weight_hh.to(x_gates.dtype)
        t, b, _, height, width = x_gates.shape
        if weight_hh.shape[-1] > 1 and height * width >= CHANNELS_LAST_MIN_PIXELS:
            weight_hh = _channels_last(weight_hh)
        n = weight_hh.shape[1]
        acts = x_gates.new_empty(t, b, 4 * n, height, width)
        cells = x_gates.new_empty(t, b, n, height, width)
        hidden = x_gates.new_empty(t, b, n, height, width)
        kernels = cpu_kernels.for_tensor(x_gates)
        for step in range(t):
            act = acts[step]
            if step == 0:
                act.copy_(x_gates[step])
            else:
                _add_recurrent_conv(x_gates[step], hidden[step - 1], weight_hh, out=act)
            cell_prev = cells[step - 1] if step > 0 else None
            if kernels is not None:
                kernels.gates_forward(act, cell_prev, cells[step], hidden[step])
            else:
                _activate_gates(act, cell_prev, cells[step], hidden[step])
        ctx.save_for_backward(weight_hh, acts, cells, hidden)
        return hidden

    @staticmethod
    def backward(ctx, grad_hidden: torch.Tensor):
        weight_hh, acts, cells, hidden = ctx.saved_tensors
        grad_hidden = grad_hidden.to(acts.dtype)
        steps = acts.shape[0]
        grad_gates = torch.empty_like(acts)
        spectral = None
        if steps > 1 and _spectral_grads(acts, weight_hh):
            spectral = SpectralConvGrad(weight_hh, *acts.shape[-2:])
        # a channels-last kernel convolves channels-last gate gradients: each step's is converted
        # once, into the buffer its kernel gradient is then computed from
        grad_in = grad_gates[1:]
        convert = _is_channels_last(weight_hh) and steps > 1 and spectral is None
        if convert:
            grad_in = torch.empty(
                ((steps - 1) * acts.shape[1], *acts.shape[2:]),
                dtype=acts.dtype,
                device=acts.device,
                memory_format=torch.channels_last,
            ).unflatten(0, (steps - 1, acts.shape[1]))
        kernels = cpu_kernels.for_tensor(acts)
        grad_cell = torch.empty_like(cells[0]) if kernels is not None else None
        grad_h = grad_hidden[steps - 1]
        for step in reversed(range(steps)):
            grad = grad_gates[step]
            cell_prev = cells[step - 1] if step > 0 else None
            if kernels is not None:
                grad_h = cpu_kernels.per_sample_contiguous(grad_h)
                has_next = step < steps - 1
                kernels.gates_backward(acts[step], cells[step], cell_prev, grad_h, has_next, grad, grad_cell)
            else:
                grad_cell = _gate_grads(acts[step], cells[step], cell_prev, grad_h, grad_cell, grad)
            if step == 0:
                break
            if spectral is not None:
                grad_h = spectral.input_grad(grad, hidden[step - 1]).add_(grad_hidden[step - 1])
            else:
                if convert:
                    grad = grad_in[step - 1].copy_(grad)
                grad_h = _add_recurrent_conv_input_grad(
                    grad_hidden[step - 1], grad, hidden[step - 1], weight_hh
                )
        grad_weight = None
        if ctx.needs_input_grad[1]:
            if steps == 1:
                grad_weight = torch.zeros_like(weight_hh)
            elif spectral is not None:
                grad_weight = spectral.weight_grad()
            else:
                grad_weight = _recurrent_conv_weight_grad(
                    grad_in.flatten(0, 1), hidden[:-1].flatten(0, 1), weight_hh
                )
            grad_weight = grad_weight.to(ctx.weight_dtype)
        return grad_gates, grad_weight


class ConvLSTM2d(nn.Module):
    """Fast ConvLSTM. Parameters: ``weight_ih (4F, C, k, k)``, ``weight_hh (4F, F, k, k)``, ``bias (4F,)``.
    ``kernel_l2``: Keras' ``kernel_regularizer=l2(...)`` on the input kernel, as a gradient term."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        return_sequences: bool = True,
        kernel_l2: float = 0.0,
    ):
        super().__init__()
        self.kernel_l2 = kernel_l2
        if kernel_size % 2 == 0:
            raise ValueError(f"ConvLSTM2d needs an odd kernel size, got {kernel_size}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = kernel_size, stride
        self.return_sequences = return_sequences
        k, n = kernel_size, out_channels
        self.weight_ih = nn.Parameter(torch.empty(4 * n, in_channels, k, k))
        self.weight_hh = nn.Parameter(torch.empty(4 * n, n, k, k))
        self.bias = nn.Parameter(torch.empty(4 * n))
        self.reset_parameters()

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        )

    def reset_parameters(self) -> None:
        """Keras defaults: glorot-uniform kernel, orthogonal recurrent kernel, forget bias 1."""
        if self.bias.is_meta:
            return
        nn.init.xavier_uniform_(self.weight_ih)
        nn.init.orthogonal_(self.weight_hh)
        with torch.no_grad():
            self.bias.zero_()
            self.bias[self.out_channels : 2 * self.out_channels] = 1.0

    @torch.no_grad()
    def load_keras_weights(self, kernel: np.ndarray, recurrent_kernel: np.ndarray, bias: np.ndarray) -> None:
        """Keras arrays: kernel ``(k, k, C, 4F)``, recurrent kernel ``(k, k, F, 4F)``, bias ``(4F,)``."""
        for param, array in ((self.weight_ih, kernel), (self.weight_hh, recurrent_kernel)):
            tensor = torch.as_tensor(np.asarray(array)).permute(3, 2, 0, 1)
            if tensor.shape != param.shape:
                raise ValueError(f"Keras kernel of shape {np.shape(array)} does not fit {tuple(param.shape)}")
            param.copy_(tensor)
        self.bias.copy_(torch.as_tensor(np.asarray(bias)))

    def _hard_sigmoid_affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Keras' hard_sigmoid(x) = clip(0.2 x + 0.5, 0, 1): the 0.2 (slope) and 0.5 (offset) of the
        i, f and o gates, folded into the kernels and the bias so the recurrence only clips."""
        n = self.out_channels
        slope = self.bias.new_full((4 * n,), HARD_SIGMOID_SLOPE)
        slope[2 * n : 3 * n] = 1.0
        offset = self.bias.new_full((4 * n,), 0.5)
        offset[2 * n : 3 * n] = 0.0
        return slope, offset

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5:
            raise ValueError(f"expected clips (B, T, C, H, W), got shape {tuple(x.shape)}")
        b, t = x.shape[:2]
        # time-major frames: a view when x is the output of a ConvLSTM2d (possibly through
        # TimeBatchNorm, ReLU, dropout, residual adds), so no layer transposes its input or gradient
        frames = x.transpose(0, 1).reshape(t * b, *x.shape[2:])
        slope, offset = self._hard_sigmoid_affine()
        bias = torch.addcmul(offset, self.bias, slope)
        slope = slope.view(-1, 1, 1, 1)
        weight_ih = with_l2(self.weight_ih, getattr(self, "kernel_l2", 0.0))
        x_gates = _input_conv(frames, weight_ih * slope, bias, self.stride).unflatten(0, (t, b))
        hidden = _ConvLSTMRecurrence.apply(x_gates, self.weight_hh * slope).transpose(0, 1)
        return hidden if self.return_sequences else hidden[:, -1]


class NaiveConvLSTM2d(nn.Module):
    """Reference cell: each step convolves ``[x_t, h]`` with one kernel ``weight (4F, C + F, k, k)``.

    With stride > 1, x_t and h differ in size, so the two halves of the kernel run as two
    convolutions at each step. ``load_state_dict`` accepts a ``ConvLSTM2d`` state dict.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        return_sequences: bool = True,
    ):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = kernel_size, stride
        self.return_sequences = return_sequences
        k, n = kernel_size, out_channels
        self.weight = nn.Parameter(torch.empty(4 * n, in_channels + n, k, k))
        self.bias = nn.Parameter(torch.zeros(4 * n))
        if not self.bias.is_meta:
            nn.init.xavier_uniform_(self.weight)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        if prefix + "weight_ih" in state_dict:
            w_ih, w_hh = state_dict.pop(prefix + "weight_ih"), state_dict.pop(prefix + "weight_hh")
            state_dict[prefix + "weight"] = torch.cat([w_ih, w_hh], dim=1)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _, height, width = x.shape
        size = (math.ceil(height / self.stride), math.ceil(width / self.stride))
        h = x.new_zeros(b, self.out_channels, *size).contiguous(memory_format=_memory_format(x))
        c = torch.zeros_like(h)
        w_x, w_h = self.weight.split([self.in_channels, self.out_channels], dim=1)
        outputs = []
        for step in range(t):
            if self.stride == 1:
                gates = conv2d_same(torch.cat([x[:, step], h], dim=1), self.weight, self.bias, 1)
            else:
                gates = conv2d_same(x[:, step], w_x, self.bias, self.stride) + conv2d_same(h, w_h, None, 1)
            i, f, g, o = gates.chunk(4, dim=1)
            c = hard_sigmoid(f) * c + hard_sigmoid(i) * torch.tanh(g)
            h = hard_sigmoid(o) * torch.tanh(c)
            outputs.append(h)
        return torch.stack(outputs, dim=1) if self.return_sequences else h
