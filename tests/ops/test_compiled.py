"""The compiled kernels (ops/compiled.py, with numba) against the NumPy path they replace: the
same bits, NaN and infinities included, for every geometry the NumPy path takes."""

import numpy as np
import pytest

from juanji.ops import compiled, kernels
from juanji.ops.activation import IN_PLACE

pytest.importorskip("numba")

# (N, C, M, H, W, kernel, stride, dilation)
DEPTHWISE = [
    (2, 5, 1, 9, 8, (3, 3), (1, 1), (1, 1)),
    (1, 4, 1, 11, 9, (3, 3), (2, 2), (1, 1)),  # batch 1, strided
    (2, 3, 2, 8, 10, (3, 2), (1, 2), (2, 1)),  # depth multiplier 2, dilated, asymmetric
    (3, 6, 1, 7, 7, (5, 5), (1, 1), (1, 1)),
]


@pytest.mark.parametrize("case", DEPTHWISE)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("block_bytes", [None, 64])  # 64: one output row per block
@pytest.mark.parametrize("bias, activation", [(False, None), (True, None), (True, "relu"),
                                              (False, "relu"), (True, "hardswish")])
def test_depthwise_rows_gives_the_bits_of_the_numpy_passes(case, dtype, block_bytes, bias,
                                                          activation, monkeypatch):
    if block_bytes is not None:
        monkeypatch.setattr(kernels, "_BLOCK_BYTES", block_bytes)
    n, c, m, h, w, kernel, stride, dilation = case
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    x.reshape(-1)[:3] = [np.nan, np.inf, -np.inf]
    xpad = kernels.pad_nhwc(x, (1, 1), (1, 0))
    taps = rng.standard_normal((*kernel, c, m)).astype(dtype).transpose(0, 1, 2, 3)
    out = [(xpad.shape[1] - dilation[0] * (kernel[0] - 1) - 1) // stride[0] + 1,
           (xpad.shape[2] - dilation[1] * (kernel[1] - 1) - 1) // stride[1] + 1]
    b = rng.standard_normal(c * m).astype(dtype) if bias else None
    finish = None if activation is None else IN_PLACE[activation]
    got = kernels.depthwise_nhwc(xpad, taps, stride, dilation, out, b, finish)
    monkeypatch.setattr(compiled, "depthwise_rows", None)  # the NumPy passes
    monkeypatch.setattr(compiled, "hard_gate", None)
    monkeypatch.setattr(compiled, "hard_gate_in_place", None)
    want = kernels.depthwise_nhwc(xpad, taps, stride, dilation, out, b, finish)
    assert got.dtype == want.dtype == dtype and np.isnan(want).any()
    assert activation != "relu" or (want == 0).any()
    np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))


def test_compiled_kernels_are_off_without_numba_or_when_asked(monkeypatch):
    import importlib

    monkeypatch.setenv("JUANJI_COMPILED", "0")
    try:
        assert importlib.reload(compiled).depthwise_rows is None
    finally:
        monkeypatch.delenv("JUANJI_COMPILED")
        importlib.reload(compiled)
    assert compiled.depthwise_rows is not None


@pytest.mark.parametrize("times_x", [True, False])  # hardswish, hardsigmoid
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "strided"])
def test_hard_gate_gives_the_bits_of_the_numpy_passes(times_x, dtype, layout, monkeypatch):
    from juanji.ops import activation

    rng = np.random.default_rng(1)
    x = (rng.standard_normal((3, 4, 5, 6)) * 4).astype(dtype)
    x.reshape(-1)[:9] = [np.nan, np.inf, -np.inf, -3.0, 3.0, -0.0, 0.0, -2.9999, 6.0]
    if layout == "channels_last":
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    elif layout == "strided":  # not one block of memory: the NumPy passes run instead
        x = x[:, ::2]
    got = activation.hard_gate(x, times_x)
    monkeypatch.setattr(compiled, "hard_gate", None)
    monkeypatch.setattr(compiled, "hard_gate_in_place", None)
    want = activation.hard_gate(x, times_x)
    assert np.isnan(want).any()
    np.testing.assert_array_equal(np.ascontiguousarray(got).view(np.uint8),
                                  np.ascontiguousarray(want).view(np.uint8))


@pytest.mark.parametrize("times_x", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_hard_gate_in_place_gives_the_bits_of_the_numpy_passes(times_x, dtype, monkeypatch):
    from juanji.ops import activation

    x = (np.random.default_rng(2).standard_normal((7, 33)) * 4).astype(dtype)
    x.reshape(-1)[:7] = [np.nan, np.inf, -np.inf, -3.0, 3.0, -0.0, 0.0]
    got, want = x.copy(), x.copy()
    activation.hard_gate_in_place(got, times_x)
    monkeypatch.setattr(compiled, "hard_gate_in_place", None)
    activation.hard_gate_in_place(want, times_x)
    np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))
