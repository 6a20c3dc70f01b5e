"""Array backend dispatch: NumPy always, CuPy when installed.

This is the only module that may import cupy. Ops call `xp_of(array)` to get the module that
owns an array and build new arrays with it, so the same op code runs on either backend.
"""

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
