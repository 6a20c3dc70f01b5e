"""Test configuration: make `tests/gradcheck.py` importable as `gradcheck`, seed everything."""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))

try:  # torch is a test dependency; keep it on the machine's two cores, quietly
    import torch

    torch.set_num_threads(2)
except ImportError:  # pragma: no cover
    torch = None


@pytest.fixture(autouse=True)
def _seed():
    import juanji

    juanji.manual_seed(0)
    np.random.seed(0)
    if torch is not None:
        torch.manual_seed(0)
