"""Pooling: max / avg / LP / adaptive / unpool, 2-D and 1-D. PyTorch parity of outputs, indices
and input gradients over grids with ceil_mode edge cases, float64 gradient checks, NaN and tie
rules, and the error messages."""

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from gradcheck import assert_close, gradcheck, to_torch

import juanji
import juanji.nn as nn
import juanji.nn.functional as F
from juanji.ops import pool as pool_ops

RTOL, ATOL = 1e-5, 1e-6  # pools sum at most a window: tight


def check_parity(ours, theirs, x, seed=0, rtol=RTOL, atol=ATOL):
    """Forward (and indices, when both return a pair) then the input gradient."""
    xj, xt = juanji.tensor(x, requires_grad=True), to_torch(x, requires_grad=True)
    y, y_ref = ours(xj), theirs(xt)
    if isinstance(y, tuple):
        assert_close(y[1], y_ref[1], 0, 0, msg="indices")
        y, y_ref = y[0], y_ref[0]
    assert_close(y, y_ref, rtol, atol, msg="forward")
    upstream = np.random.default_rng(seed).standard_normal(y.shape).astype(y.dtype)
    (y * juanji.tensor(upstream)).sum().backward()
    (y_ref * torch.tensor(upstream)).sum().backward()
    assert_close(xj.grad, xt.grad, rtol, atol, msg="input gradient")


def _x(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# (H, W, kernel, stride, padding, dilation, ceil_mode)
WINDOW_GRID = [
    (7, 9, 3, 2, 1, 1, False),
    (7, 9, 3, 2, 1, 1, True),
    (8, 8, 2, None, 0, 1, False),
    (5, 5, 2, 2, 1, 1, True),  # a window that would start in the right padding is dropped
    (6, 6, 3, 2, 1, 1, True),  # last window runs past the padding
    (7, 7, 3, 3, 0, 1, True),  # overhang of 2 cells
    (2, 2, 3, 2, 0, 1, True),  # ceil_mode lets one window exceed a 2x2 input
    (10, 11, (2, 3), (3, 2), (1, 0), (2, 1), True),  # asymmetric everything, dilation
    (9, 8, (3, 1), (4, 1), (1, 0), 1, False),  # stride > kernel
    (11, 10, 3, 1, 1, 2, False),
]


@pytest.mark.parametrize("case", WINDOW_GRID)
def test_max_pool2d_matches_torch(case):
    h, w, k, s, p, d, ceil = case
    x = _x((2, 3, h, w))
    args = dict(kernel_size=k, stride=s, padding=p, dilation=d, ceil_mode=ceil,
                return_indices=True)
    check_parity(lambda x: F.max_pool2d(x, **args), lambda x: TF.max_pool2d(x, **args), x)


@pytest.mark.parametrize("case", [c for c in WINDOW_GRID if c[5] == 1])
@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avg_pool2d_matches_torch(case, count_include_pad):
    h, w, k, s, p, _, ceil = case
    args = dict(kernel_size=k, stride=s, padding=p, ceil_mode=ceil,
                count_include_pad=count_include_pad)
    check_parity(lambda x: F.avg_pool2d(x, **args), lambda x: TF.avg_pool2d(x, **args),
                 _x((2, 3, h, w)))


@pytest.mark.parametrize("divisor", [1, 5])
def test_avg_pool2d_divisor_override(divisor):
    args = dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, divisor_override=divisor)
    check_parity(lambda x: F.avg_pool2d(x, **args), lambda x: TF.avg_pool2d(x, **args),
                 _x((1, 2, 6, 7)))


def test_pools_accept_unbatched_and_batch_one():
    x = _x((3, 7, 6))
    check_parity(lambda x: F.max_pool2d(x, 3, 2, 1, return_indices=True),
                 lambda x: TF.max_pool2d(x, 3, 2, 1, return_indices=True), x)
    check_parity(lambda x: F.avg_pool2d(x, 2), lambda x: TF.avg_pool2d(x, 2), x)
    check_parity(lambda x: F.adaptive_avg_pool2d(x, 3), lambda x: TF.adaptive_avg_pool2d(x, 3),
                 x)


def test_max_pool2d_ties_nan_and_integers_follow_torch():
    x = np.array([[[[1, np.nan, 3, np.nan], [2, 2, 2, 2], [5, 5, 1, 1], [0, 0, 0, 0]]]],
                 np.float32)
    ours, ref = F.max_pool2d(x, 2, return_indices=True), TF.max_pool2d(
        to_torch(x), 2, return_indices=True)
    np.testing.assert_array_equal(ours[0].data, ref[0].numpy())
    np.testing.assert_array_equal(ours[1].data, ref[1].numpy())  # first max, NaN wins
    ints = np.random.default_rng(1).integers(0, 255, (1, 2, 5, 5)).astype(np.uint8)
    got = F.max_pool2d(ints, 3, 2, padding=1)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got.data, TF.max_pool2d(torch.tensor(ints), 3, 2, 1).numpy())


@pytest.mark.parametrize("p", [1, 2, 3, 1.5, 4])
@pytest.mark.parametrize("ceil", [False, True])
def test_lp_pool2d_matches_torch_on_positive_input(p, ceil):
    x = np.abs(_x((2, 3, 7, 8))) + 0.1
    args = dict(norm_type=p, kernel_size=(3, 2), stride=2, ceil_mode=ceil)
    check_parity(lambda x: F.lp_pool2d(x, **args), lambda x: TF.lp_pool2d(x, **args), x,
                 rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("p", [1, 2, 3])
def test_lp_pool2d_sign_handling_matches_torch(p):
    """No abs: p = 1 sums signed values, p = 3 gives NaN for a negative window sum, p = 2 is
    the L2 norm; zero windows get zero gradient."""
    x = _x((1, 2, 6, 6))
    x[0, 0, :2, :2] = 0.0  # an all-zero window
    y = F.lp_pool2d(x, p, 2)
    y_ref = TF.lp_pool2d(to_torch(x), p, 2)
    np.testing.assert_allclose(y.data, y_ref.numpy(), rtol=1e-5, atol=1e-6, equal_nan=True)
    if p == 3:
        assert np.isnan(y.data).any()  # the sign case is really exercised
    else:
        check_parity(lambda x: F.lp_pool2d(x, p, 2), lambda x: TF.lp_pool2d(x, p, 2), x,
                     rtol=1e-5, atol=1e-5)


def test_lp_pool2d_infinite_norm_is_max_of_abs():
    x = _x((2, 2, 6, 6))
    check_parity(lambda x: F.lp_pool2d(x, float("inf"), 2, 1),
                 lambda x: TF.lp_pool2d(x, float("inf"), 2, 1), x)


ADAPTIVE_SIZES = [1, (3, 5), (4, 4), (None, 3), (9, 10), (2, None), (5, 2)]


@pytest.mark.parametrize("size", ADAPTIVE_SIZES)
def test_adaptive_pools_match_torch(size):
    x = _x((2, 3, 8, 7))
    check_parity(lambda x: F.adaptive_avg_pool2d(x, size),
                 lambda x: TF.adaptive_avg_pool2d(x, size), x)
    check_parity(lambda x: F.adaptive_max_pool2d(x, size, return_indices=True),
                 lambda x: TF.adaptive_max_pool2d(x, size, return_indices=True), x)


def test_adaptive_max_pool2d_nan_and_ties_follow_torch():
    x = np.array([[[[1, np.nan, 3, np.nan], [2, 2, 2, 2], [5, 5, 1, 1], [0, 0, 0, 0]]]],
                 np.float32)
    x[0, 0, 0, 0] = np.nan  # two NaNs in the first window: PyTorch keeps the last
    for size in [(2, 2), (3, 3), 1]:
        ours = F.adaptive_max_pool2d(x, size, return_indices=True)
        ref = TF.adaptive_max_pool2d(to_torch(x), size, return_indices=True)
        np.testing.assert_array_equal(ours[0].data, ref[0].numpy())
        np.testing.assert_array_equal(ours[1].data, ref[1].numpy())


def test_global_pool_layers_keep_dims():
    x = _x((2, 5, 6, 7))
    assert_close(nn.GlobalAvgPool2d()(x), torch.mean(to_torch(x), dim=(2, 3), keepdim=True),
                 1e-5, 1e-6)
    assert_close(nn.GlobalMaxPool2d()(x), torch.amax(to_torch(x), dim=(2, 3), keepdim=True))
    assert nn.AdaptiveAvgPool2d((None, 2))(x).shape == (2, 5, 6, 2)


@pytest.mark.parametrize("args", [
    dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=(2, 3), stride=(2, 1)), dict(kernel_size=3, stride=3, padding=1)])
def test_max_unpool2d_matches_torch(args):
    x = _x((2, 3, 7, 8))
    pooled, idx = TF.max_pool2d(to_torch(x), return_indices=True, **args)
    pooled = pooled.detach().numpy()
    unpool = dict(kernel_size=args["kernel_size"], stride=args.get("stride"),
                  padding=args.get("padding", 0), output_size=x.shape[2:])
    xj = juanji.tensor(pooled, requires_grad=True)
    xt = to_torch(pooled, requires_grad=True)
    y = F.max_unpool2d(xj, juanji.tensor(idx.numpy()), **unpool)
    y_ref = TF.max_unpool2d(xt, idx, **unpool)
    assert_close(y, y_ref, 0, 0)
    upstream = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
    (y * juanji.tensor(upstream)).sum().backward()
    (y_ref * torch.tensor(upstream)).sum().backward()
    assert_close(xj.grad, xt.grad, 0, 0)


def test_max_unpool2d_layer_with_output_size_and_round_trip():
    pool, unpool = nn.MaxPool2d(2, return_indices=True), nn.MaxUnpool2d(2)
    x = _x((1, 2, 5, 5))
    y, idx = pool(x)
    out = unpool(y, idx, output_size=(5, 5))
    ref = TF.max_unpool2d(*TF.max_pool2d(to_torch(x), 2, return_indices=True), 2,
                          output_size=(5, 5))
    assert_close(out, ref, 0, 0)
    assert out.shape == (1, 2, 5, 5)
    x6 = _x((1, 2, 6, 6))
    default = unpool(*pool(x6))  # (H - 1) * S - 2P + K = 6
    assert_close(default, TF.max_unpool2d(*TF.max_pool2d(to_torch(x6), 2, return_indices=True),
                                          2), 0, 0)
    y4, idx4 = pool(x[:, :, :4, :4])
    assert unpool(y4, idx4, output_size=[1, 2, 5, 5]).shape == (1, 2, 5, 5)


# ---- 1-D variants -------------------------------------------------------------------------

@pytest.mark.parametrize("k, s, p, d, ceil", [(3, 2, 1, 1, True), (2, None, 0, 1, False),
                                              (3, 1, 1, 2, False), (4, 3, 2, 1, True)])
def test_1d_pools_match_torch(k, s, p, d, ceil):
    x = _x((2, 3, 11))
    check_parity(lambda x: F.max_pool1d(x, k, s, p, d, ceil, return_indices=True),
                 lambda x: TF.max_pool1d(x, k, s, p, d, ceil, return_indices=True), x)
    check_parity(lambda x: F.avg_pool1d(x, k, s, p, ceil, False),
                 lambda x: TF.avg_pool1d(x, k, s, p, ceil, False), x)
    xp = np.abs(x) + 0.1
    check_parity(lambda x: F.lp_pool1d(x, 2, k, s, ceil), lambda x: TF.lp_pool1d(x, 2, k, s, ceil),
                 xp, atol=1e-5)


@pytest.mark.parametrize("size", [1, 4, 5, 13])
def test_adaptive_1d_pools_match_torch(size):
    x = _x((2, 3, 11))
    check_parity(lambda x: F.adaptive_avg_pool1d(x, size),
                 lambda x: TF.adaptive_avg_pool1d(x, size), x)
    check_parity(lambda x: F.adaptive_max_pool1d(x, size, True),
                 lambda x: TF.adaptive_max_pool1d(x, size, True), x)


def test_1d_pool_layers():
    x = _x((2, 3, 10))
    assert_close(nn.MaxPool1d(3, 2)(x), TF.max_pool1d(to_torch(x), 3, 2))
    assert_close(nn.AvgPool1d(3, 2, 1)(x), TF.avg_pool1d(to_torch(x), 3, 2, 1), RTOL, ATOL)
    assert_close(nn.AdaptiveAvgPool1d(4)(x), TF.adaptive_avg_pool1d(to_torch(x), 4), RTOL, ATOL)
    assert_close(nn.AdaptiveMaxPool1d(4)(x), TF.adaptive_max_pool1d(to_torch(x), 4))
    xp = np.abs(x)
    assert_close(nn.LPPool1d(2, 3)(xp), TF.lp_pool1d(to_torch(xp), 2, 3), RTOL, 1e-5)
    assert_close(nn.LPPool2d(2, 2)(_x((1, 2, 4, 4))),
                 TF.lp_pool2d(to_torch(_x((1, 2, 4, 4))), 2, 2), RTOL, 1e-5)


# ---- gradient checks (float64, distinct values so max pools have no ties) -----------------

def _distinct(shape, seed=0):
    rng = np.random.default_rng(seed)
    return rng.permutation(np.prod(shape)).reshape(shape) * 0.1 + rng.uniform(0, 0.01, shape)


@pytest.mark.parametrize("fn", [
    lambda x: F.max_pool2d(x, 3, 2, 1, ceil_mode=True),
    lambda x: F.max_pool2d(x, (2, 3), (1, 2), dilation=(2, 1)),
    lambda x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False),
    lambda x: F.avg_pool2d(x, 2, 3, 1, divisor_override=3),
    lambda x: F.lp_pool2d(x, 3, 2, 2, ceil_mode=True),
    lambda x: F.lp_pool2d(x, 1.5, (3, 2), 1),
    lambda x: F.adaptive_avg_pool2d(x, (3, 2)),  # uneven windows: matrix path
    lambda x: F.adaptive_avg_pool2d(x, (3, 1)),  # even windows: reshape path
    lambda x: F.adaptive_max_pool2d(x, (4, 3)),
    lambda x: F.adaptive_max_pool2d(x, (2, 2)),
    lambda x: F.adaptive_max_pool2d(x, (8, 7)),  # more outputs than inputs: overlapping
    lambda x: F.max_pool1d(x.reshape(2, 3, 30), 3, 2, 1),
], ids=["max", "max-dilated", "avg", "avg-divisor", "lp3", "lp1.5", "adaptive-avg-uneven",
        "adaptive-avg-even", "adaptive-max-uneven", "adaptive-max-even", "adaptive-max-up",
        "max1d"])
def test_pool_gradcheck(fn):
    gradcheck(fn, [_distinct((2, 3, 6, 5))])


@pytest.mark.parametrize("op, params", [
    (pool_ops.MaxPool2d, dict(kernel=(3, 2), stride=(2, 1), padding=((0, 2), (1, 0)),
                              dilation=(1, 2), ceil_mode=True)),
    (pool_ops.AvgPool2d, dict(kernel=(2, 3), stride=(1, 2), padding=((1, 0), (0, 2)),
                              dilation=(2, 1), count_include_pad=False)),
    (pool_ops.AvgPool2d, dict(kernel=2, stride=(2, 2), padding=((0, 1), (1, 1)),
                              ceil_mode=True, dilation=(1, 1))),
    (pool_ops.LpPool2d, dict(norm_type=2.5, kernel=(2, 2), stride=(1, 1),
                             padding=((1, 0), (0, 1)), dilation=(2, 1))),
], ids=["max", "avg-dilated", "avg-ceil", "lp-dilated"])
def test_pool_ops_with_onnx_geometry_gradcheck(op, params):
    """Per-side padding and dilated average pooling (reachable from ONNX, not from F)."""
    params = dict(params)
    if isinstance(params["kernel"], int):
        params["kernel"] = (params["kernel"],) * 2
    gradcheck(lambda x: op.apply(x, **params), [_distinct((1, 2, 6, 5))])


def test_max_unpool2d_gradcheck():
    idx = juanji.tensor(np.array([[[[0, 3], [9, 14]]]], np.int64))
    gradcheck(lambda x: F.max_unpool2d(x, idx, 2, output_size=(4, 4)),
              [np.random.default_rng(0).standard_normal((1, 1, 2, 2))])


# ---- errors -------------------------------------------------------------------------------

X = np.zeros((1, 2, 5, 5), np.float32)


@pytest.mark.parametrize("call, match", [
    (lambda: F.max_pool2d(X, 2, stride=0), "stride must be >= 1; got 0"),
    (lambda: F.max_pool2d(X, 3, dilation=0), "dilation must be >= 1; got 0"),
    (lambda: F.max_pool2d(X, 3, padding=-1), "padding must be >= 0; got -1"),
    (lambda: F.max_pool2d(X, 3, padding=2), "padding should be at most half of kernel_size; got "
                                            "padding=\\(2, 2\\), kernel_size=\\(3, 3\\)"),
    (lambda: F.avg_pool2d(X, 2, padding=(0, 2)), "padding should be at most half"),
    (lambda: F.max_pool2d(X, 6), "pooling window 6 \\(kernel_size=6, dilation=1\\) is larger "
                                 "than the padded input 5"),
    (lambda: F.max_pool2d(X, 3, dilation=3), "pooling window 7"),
    (lambda: F.max_pool2d(X, 0), "kernel_size must be >= 1; got 0"),
    (lambda: F.max_pool2d(np.zeros((2, 5, 5, 1, 1)), 2), "expects a \\(N, C, H, W\\) or "
                                                         "\\(C, H, W\\) input; got shape"),
    (lambda: F.avg_pool2d(X, 2, divisor_override=0), "divisor_override must be >= 1; got 0"),
    (lambda: F.lp_pool2d(X, 0, 2), "norm_type must be non-zero"),
    (lambda: F.adaptive_avg_pool2d(X, 0), "output_size must be >= 1; got 0"),
    (lambda: F.adaptive_max_pool2d(X, (1, 2, 3)), "output_size must be an int or a pair"),
    (lambda: F.max_pool1d(np.zeros((1, 2, 5, 5)), 2), "expects a \\(N, C, L\\) or \\(C, L\\)"),
    (lambda: F.max_unpool2d(X, np.zeros((1, 2, 5, 5), np.int64), 2, output_size=(13, 10)),
     "output_size \\(13, 10\\) is invalid: dim 0 must be between 9 and 11"),
    (lambda: F.max_unpool2d(X, np.full((1, 2, 5, 5), 100, np.int64), 2),
     "indices must be in \\[0, 100\\)"),
    (lambda: F.max_unpool2d(X, np.zeros((1, 2, 4, 5), np.int64), 2), "indices of the input's "
                                                                     "shape"),
    (lambda: nn.MaxPool2d(3, padding=2), "padding should be at most half of kernel_size"),
    (lambda: nn.AvgPool2d(2, stride=0), "stride must be >= 1; got 0"),
    (lambda: nn.LPPool2d(0, 2), "norm_type must be non-zero"),
])
def test_pool_errors_name_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("kernel", [3, 17])  # 17 x 17 taps need more than uint8 tap numbers
def test_max_pool2d_without_grad_and_with_large_windows_match_torch(kernel):
    x = _x((2, 3, 20, 19), seed=kernel)
    args = dict(kernel_size=kernel, stride=1, padding=kernel // 2, return_indices=True)
    check_parity(lambda x: F.max_pool2d(x, **args), lambda x: TF.max_pool2d(x, **args), x)
    with juanji.no_grad():  # inference keeps no winning taps
        y = F.max_pool2d(juanji.tensor(x, requires_grad=True), kernel, 1, kernel // 2)
    assert_close(y, TF.max_pool2d(torch.tensor(x), kernel, 1, kernel // 2), 0, 0)
