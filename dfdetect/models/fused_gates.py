"""The ConvLSTM gate arithmetic as two fused CPU kernels (``csrc/convlstm_gates.cpp``), built once.

Unfused, one step's gates take about ten passes over memory forward and fifteen backward (clip,
tanh, products, masks), each a separate torch op; fused, one pass each way. The kernels are
compiled on first use with torch's C++ extension builder (a C++ compiler and ninja are needed;
about a minute on 2 cores) and cached in ``TORCH_EXTENSIONS_DIR`` (default
``~/.cache/torch_extensions``), one build per CPU vector width. Where the build fails, the
ConvLSTM falls back to the unfused torch ops with one warning; ``DFDETECT_FUSED_GATES=0`` skips
the kernels altogether. They take float32 and float64 CPU tensors; autocast's bf16/fp16 and GPU
tensors always use the torch ops.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import torch

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("csrc") / "convlstm_gates.cpp"
ENV_SWITCH = "DFDETECT_FUSED_GATES"

# compiler flags per torch CPU capability: the same vector width torch's own kernels use here
_CAPABILITY_FLAGS = {
    "AVX512": ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mfma", "-DCPU_CAPABILITY_AVX512"],
    "AVX2": ["-mavx2", "-mfma", "-DCPU_CAPABILITY_AVX2"],
}

_lock = threading.Lock()
_module = None
_failed = False


def _capability() -> str:
    capability = torch.backends.cpu.get_cpu_capability()
    return capability if capability in _CAPABILITY_FLAGS else "DEFAULT"


def _build():
    from torch.utils.cpp_extension import load

    capability = _capability()
    flags = ["-O3", f"-DCPU_CAPABILITY={capability}", *_CAPABILITY_FLAGS.get(capability, [])]
    log.info("building the fused ConvLSTM gate kernels (%s; once, about a minute)", capability)
    return load(
        name=f"dfdetect_convlstm_gates_{capability.lower()}",
        sources=[str(SOURCE)],
        extra_cflags=flags,
        verbose=False,
    )


def kernels():
    """The built extension module, or None where it is switched off or cannot be built."""
    global _module, _failed
    if _module is not None or _failed:
        return _module
    if os.environ.get(ENV_SWITCH, "1") == "0":
        return None
    with _lock:
        if _module is None and not _failed:
            try:
                _module = _build()
            except Exception as error:  # no compiler, no ninja, unsupported platform: stay unfused
                _failed = True
                log.warning("fused ConvLSTM gate kernels unavailable, using torch ops: %s", error)
    return _module


def applies(gates: torch.Tensor) -> bool:
    """Whether the fused kernels take these gates (CPU, float32/float64, and the kernels built)."""
    return (
        gates.device.type == "cpu" and gates.dtype in (torch.float32, torch.float64) and kernels() is not None
    )


def per_sample_contiguous(x: torch.Tensor) -> torch.Tensor:
    """``x (B, C, H, W)`` with each sample one contiguous block (any stride between samples)."""
    if x.shape[0] == 0 or x[0].is_contiguous():
        return x
    return x.contiguous()
