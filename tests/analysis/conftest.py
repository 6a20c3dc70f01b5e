"""Fixtures for the analysis tests."""

import pytest


def _fill(tensor, *args, **kwargs):
    tensor.data.fill(0.0)  # zeros keep deep nets free of overflow warnings
    return tensor


@pytest.fixture
def build_fast(monkeypatch):
    """Build a zoo model with constant weights instead of random ones (drawing VGG's 100M
    random weights takes seconds); the analysis only needs shapes."""
    from juanji.nn import init

    def build(name, **kwargs):
        from juanji.models import MODELS

        with monkeypatch.context() as patch:
            for fn in ("uniform_", "normal_", "kaiming_uniform_", "kaiming_normal_",
                       "xavier_uniform_", "xavier_normal_", "trunc_normal_"):
                if hasattr(init, fn):
                    patch.setattr(init, fn, _fill)
            return MODELS[name](**kwargs)
    return build
