"""Array backend dispatch: NumPy always, CuPy when installed.

This is the only module that may import cupy. Ops call `xp_of(array)` to get the module that
owns an array and build new arrays with it, so the same op code runs on either backend.

It also sets how the C allocator treats big NumPy buffers (see `keep_freed_memory`), once, when
juanji is imported.
"""

import ctypes
import os

import numpy as np

try:  # pragma: no cover - cupy is not installed on the CPU machines
    import cupy

    HAS_CUPY = True
except ImportError:
    cupy = None
    HAS_CUPY = False


def xp_of(array):
    """Return the array module (numpy or cupy) that owns `array`."""
    if HAS_CUPY and isinstance(array, cupy.ndarray):
        return cupy
    return np


def to_device(array, device):
    """Move `array` to `device` ('cpu' or 'cuda'); raises if CUDA is requested without CuPy."""
    if device == "cpu":
        return array.get() if HAS_CUPY and isinstance(array, cupy.ndarray) else array
    if device == "cuda":
        if not HAS_CUPY:
            raise RuntimeError("device='cuda' needs cupy, which is not installed")
        return cupy.asarray(array)
    raise ValueError(f"device must be 'cpu' or 'cuda'; got {device!r}")


# glibc's mallopt() parameter numbers (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory(limit=1 << 30):
    """Let glibc's malloc serve array buffers up to `limit` bytes from its heap and keep freed
    memory there, instead of mapping fresh pages from the kernel for every big array.

    By default glibc maps each allocation above 128 KB-32 MB with mmap and unmaps it on free,
    so every im2col buffer, activation and gradient of a training step page-faults its memory
    anew (measured on a 75 MB buffer: 18 ms to allocate and fill fresh, 9 ms from the heap).
    This is a process-wide setting; juanji calls it on import unless the environment variable
    JUANJI_KEEP_FREED_MEMORY is "0". Returns True when the allocator took the setting, False
    where there is no glibc mallopt (macOS, Windows) or it refused.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # older glibc refuse an mmap threshold above 32 MB; fall back to that ceiling
    mapped = mallopt(_M_MMAP_THRESHOLD, limit) or mallopt(_M_MMAP_THRESHOLD, 32 << 20)
    return bool(mapped) and bool(mallopt(_M_TRIM_THRESHOLD, limit))


if os.environ.get("JUANJI_KEEP_FREED_MEMORY", "1") != "0":
    keep_freed_memory()
