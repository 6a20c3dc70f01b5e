"""The one global random generator (parameter init, dropout, shuffling defaults)."""

import numpy as np

_generator = np.random.default_rng()


def manual_seed(seed):
    """Reseed juanji's global generator so runs repeat exactly; returns the generator."""
    global _generator
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) \
            or not 0 <= seed < 2**64:
        raise ValueError(f"seed must be an integer in [0, 2**64); got {seed!r}")
    _generator = np.random.default_rng(int(seed))
    return _generator


def default_generator():
    """The global `numpy.random.Generator` juanji draws from."""
    return _generator
