"""The ConvLSTM layer (Keras ``ConvLSTM2D`` semantics) with its CPU kernels (``csrc/``, built by
``cpu_kernels``) and its FFT gradients (``spectral_conv_grad``)."""

from dfdetect.models.layers.convlstm.layer import ConvLSTM2d, NaiveConvLSTM2d, hard_sigmoid

__all__ = ["ConvLSTM2d", "NaiveConvLSTM2d", "hard_sigmoid"]
