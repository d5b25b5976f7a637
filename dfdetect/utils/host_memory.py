"""Keep freed host memory in the process instead of handing it back to the OS (glibc only).

PyTorch allocates CPU tensors with ``malloc``. glibc serves every block over 32 MiB with a fresh
``mmap`` and unmaps it on ``free``, so a training step that allocates such blocks (ConvLSTM gate
buffers of a whole clip batch, for one) touches new pages every time: tens of thousands of page
faults per step. On the benchmark VM that was 0.17-0.2 s of system CPU per CLRNet-lite step
(docs/benchmarks.md, "Host memory"). Serving large blocks from the heap and not trimming it makes
the steps after the first reuse the same pages, as jemalloc or tcmalloc (which PyTorch's CPU
tuning guide recommends preloading) would.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import platform

log = logging.getLogger(__name__)

# mallopt parameters, from glibc's malloc.h
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4

DEFAULT_TRIM_THRESHOLD = 1 << 30


def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


def retain_freed_host_memory(trim_threshold: int = DEFAULT_TRIM_THRESHOLD) -> bool:
    """Serve every allocation from the heap (no per-block ``mmap``) and keep up to
    ``trim_threshold`` bytes of free heap top. Process-wide; forked workers inherit it.

    Returns False, changing nothing, where the C library is not glibc.
    """
    libc = _glibc()
    if libc is None:
        log.info("not glibc: host allocator left as it is")
        return False
    if not (libc.mallopt(M_MMAP_MAX, 0) and libc.mallopt(M_TRIM_THRESHOLD, int(trim_threshold))):
        raise OSError("glibc mallopt refused the host memory settings")
    return True
