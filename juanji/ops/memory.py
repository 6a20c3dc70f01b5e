"""Will an array fit? The bytes an output of a given shape needs against the memory available,
checked before allocating, so a size parameter gone wrong (padding=100000, scale_factor=1e6)
is a ValueError naming it rather than a MemoryError, or the kernel's OOM killer, later.

Only host memory is consulted (MemAvailable of /proc/meminfo, else os.sysconf's free pages);
outputs under `ALWAYS_FITS` are not checked, so ordinary calls never read the file.
"""

import math
import os

import numpy as np

ALWAYS_FITS = 1 << 30  # bytes: outputs this small skip the check


def available_bytes():
    """Bytes of memory the system can give now without swapping, or None when unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # the file counts kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def output_bytes(shape, dtype=np.float32):
    """Bytes an array of `shape` and `dtype` needs."""
    return math.prod(int(n) for n in shape) * np.dtype(dtype).itemsize


def human_bytes(count):
    """1.5e11 -> '140 GiB' (three significant digits, binary units)."""
    value, units = float(count), ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
    for unit in units:
        if value < 1024 or unit == units[-1]:
            return f"{value:.3g} {unit}"
        value /= 1024


def check_fits(shape, dtype, what, available=None, kind="output"):
    """Raise ValueError if an array of `shape` and `dtype` needs more bytes than are available.

    `what` names the parameter(s) that sized it, e.g. "padding=100000", and `kind` the array:
    `padding=100000 would make a 1x1x200002x200002 output (149 GiB); have 23 GiB`.
    `available` (bytes) overrides `available_bytes()`; when neither is known nothing is checked.
    """
    needed = output_bytes(shape, dtype)
    if needed <= ALWAYS_FITS and available is None:
        return
    have = available_bytes() if available is None else available
    if have is not None and needed > have:
        size = "x".join(str(int(n)) for n in shape)
        raise ValueError(f"{what} would make a {size} {kind} ({human_bytes(needed)}); have "
                         f"{human_bytes(have)}")
