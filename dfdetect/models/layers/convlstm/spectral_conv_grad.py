"""Gradients of a stride-1 ``same`` convolution computed in the Fourier domain, for the ConvLSTM's
backward pass through time.

``conv2d(h, weight, padding=k // 2)`` with an odd kernel ``k`` is a circular cross-correlation of
``h``, zero-padded to ``L >= max(size + k // 2, k)`` on each axis, with the kernel placed centre-at-origin.
With ``G`` the gradient of its output and ``^`` the 2-D real FFT of size ``L``:

    input gradient   dh^[c]  = sum_o G^[o] K^[o, c]          (a circular convolution)
    kernel gradient  dK^[o, c] = sum_n conj(G^[n, o]) h^[n, c]   (a circular cross-correlation)

Per frequency these are small matrix products: the input gradient's a complex batched product,
the kernel gradient's a real one over (real, imaginary) pairs, whose four partial sums give
``conj(G^) h^``. One FFT of each step's gate gradient serves both gradients,
and the kernel gradient is accumulated in the Fourier domain over the steps and transformed back
once. On CPU, for CLRNet's 7x7 kernels this is faster than oneDNN's backward-data and
backward-weight (docs/benchmarks.md, "ConvLSTM"); results agree with them to float rounding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def fft_size(n: int) -> int:
    """The smallest ``2^a 3^b 5^c >= n``: lengths the FFT libraries transform fastest."""
    size = max(n, 1)
    while True:
        rest = size
        for factor in (2, 3, 5):
            while rest % factor == 0:
                rest //= factor
        if rest == 1:
            return size
        size += 1


def _frequency_major(spectrum: torch.Tensor) -> torch.Tensor:
    """``(N, C, Lh, Lw')`` complex -> contiguous ``(Lh * Lw', N, C)``.

    complex64 is moved as int64, whose transposing copy is about 3x faster than a complex or a
    (real, imaginary) one (the bits are only moved, never computed on)."""
    n, c = spectrum.shape[:2]
    if spectrum.dtype == torch.complex64:
        moved = spectrum.view(torch.int64).permute(2, 3, 0, 1).contiguous().view(torch.complex64)
    else:
        moved = spectrum.permute(2, 3, 0, 1).contiguous()
    return moved.view(-1, n, c)


def _spatial_major(spectrum: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Inverse of ``_frequency_major``: ``(Lh * Lw', N, C)`` -> ``(N, C, Lh, Lw')``."""
    f, n, c = spectrum.shape
    grid = spectrum.view(height, width, n, c)
    if spectrum.dtype == torch.complex64:
        return grid.view(torch.int64).permute(2, 3, 0, 1).contiguous().view(torch.complex64)
    return grid.permute(2, 3, 0, 1).contiguous()


def _as_real(spectrum: torch.Tensor) -> torch.Tensor:
    """``(F, N, C)`` complex -> ``(F, N, 2C)`` real, each number as (real, imaginary)."""
    return torch.view_as_real(spectrum).flatten(-2)


class SpectralConvGrad:
    """Input and kernel gradients of ``conv2d(h_t, weight, padding=k // 2)`` over the steps of a
    sequence, all steps sharing ``weight (O, C, k, k)`` and the frame size ``(height, width)``.

    ``input_grad(grad_out, h)`` returns one step's input gradient and adds the step's share of the
    kernel gradient; ``weight_grad()`` returns the kernel gradient summed over the steps given.
    """

    def __init__(self, weight: torch.Tensor, height: int, width: int):
        out_channels, in_channels, k, k_w = weight.shape
        if k != k_w or k % 2 == 0:
            raise ValueError(f"needs a square odd kernel, got {k}x{k_w}")
        self.kernel_size, self.pad = k, k // 2
        self.frame = (height, width)
        self.size = (fft_size(max(height + self.pad, k)), fft_size(max(width + self.pad, k)))
        self.half_width = self.size[1] // 2 + 1
        centred = F.pad(weight.contiguous(), (0, self.size[1] - k, 0, self.size[0] - k))
        centred = centred.roll((-self.pad, -self.pad), dims=(-2, -1))
        self.kernel = _frequency_major(torch.fft.rfft2(centred))  # (F, O, C)
        frequencies = self.kernel.shape[0]
        self.products = weight.new_zeros(frequencies, 2 * out_channels, 2 * in_channels)

    def _spectrum(self, x: torch.Tensor) -> torch.Tensor:
        return _frequency_major(torch.fft.rfft2(x, s=self.size))

    def input_grad(self, grad_out: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """Gradient for ``h (N, C, H, W)`` of the convolution's output gradient ``grad_out``."""
        grad_spectrum = self._spectrum(grad_out)
        # conj(G^) h^ summed over samples, from the real products of their (real, imaginary) pairs
        self.products.baddbmm_(_as_real(grad_spectrum).transpose(1, 2), _as_real(self._spectrum(h)))
        product = torch.bmm(grad_spectrum, self.kernel)
        grad_h = torch.fft.irfft2(_spatial_major(product, self.size[0], self.half_width), s=self.size)
        return grad_h[..., : self.frame[0], : self.frame[1]]

    def weight_grad(self) -> torch.Tensor:
        """The kernel gradient ``(O, C, k, k)`` summed over every ``input_grad`` call so far."""
        f, two_o, two_c = self.products.shape
        parts = self.products.view(f, two_o // 2, 2, two_c // 2, 2)
        # sum over steps of conj(G^) h^: real gr hr + gi hi, imaginary gr hi - gi hr
        real = parts[:, :, 0, :, 0] + parts[:, :, 1, :, 1]
        imag = parts[:, :, 0, :, 1] - parts[:, :, 1, :, 0]
        spectrum = _spatial_major(torch.complex(real, imag), self.size[0], self.half_width)
        lags = torch.fft.irfft2(spectrum, s=self.size).roll((self.pad, self.pad), dims=(-2, -1))
        return lags[..., : self.kernel_size, : self.kernel_size].contiguous()
