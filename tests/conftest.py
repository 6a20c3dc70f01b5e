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


_FASHION_MNIST = {}


def pytest_runtest_setup(item):
    """Tests marked `data` train on the real Fashion-MNIST: where it is not on disk, they fail
    with one line saying how to get it (nothing is ever downloaded by a test)."""
    if item.get_closest_marker("data") is None:
        return
    if "problem" not in _FASHION_MNIST:
        from juanji.data import DatasetNotFoundError, FashionMNIST

        try:
            FashionMNIST(train=False, download=False)
            _FASHION_MNIST["problem"] = None
        except DatasetNotFoundError as exc:
            _FASHION_MNIST["problem"] = str(exc)
    if _FASHION_MNIST["problem"]:
        pytest.fail(f"this test needs Fashion-MNIST on disk (run tools/get-fashion-mnist): "
                    f"{_FASHION_MNIST['problem']}", pytrace=False)
