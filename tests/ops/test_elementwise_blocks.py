"""Big elementwise ops run in blocks over the threads: the same values, bit for bit, as one
NumPy call, for every operand form (scalar either side, same shape, and the broadcasts that
keep to one call: a per-channel gate, a row), in either memory layout, and for Clamp; NaN,
infinities and signed zeros included."""

import numpy as np
import pytest

from juanji.ops import elementwise

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # 0 / 0, inf - inf

OPS = {elementwise.Add: np.add, elementwise.Sub: np.subtract, elementwise.Mul: np.multiply,
       elementwise.Div: np.true_divide}


def _big(layout):
    a = np.random.default_rng(0).standard_normal((4, 16, 128, 128)).astype(np.float32)
    a.reshape(-1)[:5] = [np.nan, np.inf, -np.inf, -0.0, 0.0]
    if layout == "channels_last":
        a = np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    return a


def _bits_equal(got, want):
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(np.ascontiguousarray(got).view(np.uint8),
                                  np.ascontiguousarray(want).view(np.uint8))


def _forward(op, *args, **params):
    fn = op()
    fn.needs_grad = (False,) * len(args)
    return fn.forward(*args, **params)


@pytest.mark.parametrize("op", OPS, ids=lambda op: op.__name__)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("other", ["scalar32", "scalar64", "gate", "same", "row"])
def test_threaded_binary_op_gives_the_bits_of_one_numpy_call(op, layout, other):
    a = _big(layout)
    assert a.size >= elementwise._THREADED_SIZE
    b = {"scalar32": np.array(3.0, np.float32), "scalar64": np.array(0.1),
         "gate": np.random.default_rng(1).standard_normal((4, 16, 1, 1)).astype(np.float32),
         "same": a[::-1].copy(), "row": a[0, 0, 0]}[other]
    _bits_equal(_forward(op, a, b), OPS[op](a, b))
    _bits_equal(_forward(op, b, a), OPS[op](b, a))


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("lo, hi", [(0.0, 6.0), (None, 6.0), (-1.0, None), (2.0, 1.0)])
def test_threaded_clamp_gives_the_bits_of_np_clip(layout, lo, hi):
    a = _big(layout)
    _bits_equal(_forward(elementwise.Clamp, a, lo=lo, hi=hi), np.clip(a, lo, hi))
