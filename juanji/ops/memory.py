"""Will an array fit? The bytes an output of a given shape needs against the memory available,
checked before allocating, so a size parameter gone wrong (padding=100000, scale_factor=1e6)
is a ValueError naming it rather than a MemoryError, or the kernel's OOM killer, later.

Available memory comes from juanji.memory (MemAvailable, capped by a cgroup limit); outputs
under `ALWAYS_FITS` are not checked, so ordinary calls never read it.
"""

import math

import numpy as np

from juanji.memory import available_bytes, human_bytes

ALWAYS_FITS = 1 << 30  # bytes: outputs this small skip the check


def output_bytes(shape, dtype=np.float32):
    """Bytes an array of `shape` and `dtype` needs."""
    return math.prod(int(n) for n in shape) * np.dtype(dtype).itemsize


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
