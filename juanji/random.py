"""The one global random generator (parameter init, dropout, shuffling defaults)."""

import numpy as np

_generator = np.random.default_rng()


def manual_seed(seed):
    """Reseed juanji's global generator so runs repeat exactly; returns the generator."""
    global _generator
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    _generator = np.random.default_rng(int(seed))
    return _generator


def default_generator():
    """The global `numpy.random.Generator` juanji draws from."""
    return _generator
