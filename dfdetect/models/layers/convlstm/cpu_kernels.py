"""dfdetect's C++ CPU kernels (``csrc/``), built once on first use, with torch ops as the fallback.

- ``gates_forward`` / ``gates_backward`` (``convlstm_gates.cpp``): the ConvLSTM's per-step gate
  arithmetic in one pass each way. As separate torch ops, one step's gates take about ten passes
  over memory forward and fifteen backward (clip, tanh, products, masks).

The module is compiled on first use with torch's C++ extension builder (a C++ compiler and ninja
are needed; about a minute on 2 cores) and cached in ``TORCH_EXTENSIONS_DIR`` (default
``~/.cache/torch_extensions``), one build per CPU vector width. Where the build fails, callers use
torch ops instead, after one warning; ``DFDETECT_CPU_KERNELS=0`` skips the kernels altogether. The
kernels take float32 and float64 CPU tensors; autocast's bf16/fp16 and GPU tensors always use the
torch ops.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path

import torch

log = logging.getLogger(__name__)

SOURCE_DIR = Path(__file__).with_name("csrc")
SOURCES = [SOURCE_DIR / name for name in ("module.cpp", "convlstm_gates.cpp")]
ENV_SWITCH = "DFDETECT_CPU_KERNELS"

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


def _csrc_hash() -> str:
    digest = hashlib.sha256()
    for path in sorted(SOURCE_DIR.iterdir()):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def _build():
    from torch.utils.cpp_extension import load

    capability = _capability()
    # -fopenmp: at::parallel_for splits work over torch's OpenMP threads only when compiled with it;
    # the hash of every file in csrc/ rebuilds the module when a header changes (torch's builder
    # hashes only the sources it is given)
    flags = [
        "-O3",
        "-fopenmp",
        f"-DCPU_CAPABILITY={capability}",
        f"-DDFDETECT_CSRC_HASH={_csrc_hash()}",
        *_CAPABILITY_FLAGS.get(capability, []),
    ]
    log.info("building dfdetect's CPU kernels (%s; once, about a minute)", capability)
    return load(
        name=f"dfdetect_cpu_kernels_{capability.lower()}",
        sources=[str(source) for source in SOURCES],
        extra_cflags=flags,
        extra_ldflags=["-fopenmp"],
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
            except Exception as error:  # no compiler, no ninja, unsupported platform: torch ops
                _failed = True
                log.warning("dfdetect's CPU kernels unavailable, using torch ops: %s", error)
    return _module


KERNEL_DTYPES = (torch.float32, torch.float64)


def for_tensor(tensor: torch.Tensor):
    """The built module if its kernels take this tensor (CPU, float32 or float64), else None."""
    if tensor.device.type != "cpu" or tensor.dtype not in KERNEL_DTYPES:
        return None
    return kernels()


def per_sample_contiguous(x: torch.Tensor) -> torch.Tensor:
    """``x (B, C, H, W)`` with each sample one contiguous block (any stride between samples)."""
    if x.shape[0] == 0 or x[0].is_contiguous():
        return x
    return x.contiguous()
