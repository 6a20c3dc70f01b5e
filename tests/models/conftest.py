"""Fixtures for the model-zoo tests: hand-derived torchvision keys, and a no-op initialiser
for tests that only look at shapes (VGG's 100M-weight Linear takes seconds to fill)."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))  # torchvision_keys


@pytest.fixture
def skip_init(monkeypatch):
    """Make every random initialiser a no-op: weights are allocated but left unfilled."""
    from juanji.nn import init

    monkeypatch.setattr(init, "uniform_", lambda tensor, *args, **kwargs: tensor)
    monkeypatch.setattr(init, "normal_", lambda tensor, *args, **kwargs: tensor)
