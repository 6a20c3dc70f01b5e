"""FilterResize with filter_taps: cubic taps against torch's bicubic interpolate (forward and
input gradient, align_corners False and True), float64 gradient checks of cubic and
antialiased taps, and the kernels and tap weights worked out by hand."""

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from gradcheck import assert_close, gradcheck, to_torch

import juanji
import juanji.nn
from juanji.ops.resize import (
    FilterResize,
    cubic_kernel,
    cubic_source,
    filter_taps,
    triangle_kernel,
)


def bicubic(x, size, align_corners):
    taps = [filter_taps(cubic_source(n, o, align_corners=align_corners), n, cubic_kernel, 2)
            for n, o in zip(x.shape[2:], size)]
    return FilterResize.apply(x, taps=taps)


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("size", [(14, 18), (5, 13), (3, 4), (1, 1), (21, 5), (7, 9)])
def test_cubic_taps_match_torch_bicubic(size, align_corners):
    x = np.random.default_rng(0).standard_normal((2, 3, 7, 9)).astype(np.float32)
    xj, xt = juanji.tensor(x, requires_grad=True), to_torch(x, requires_grad=True)
    y = bicubic(xj, size, align_corners)
    y_ref = TF.interpolate(xt, size=size, mode="bicubic", align_corners=align_corners)
    assert_close(y, y_ref, rtol=1e-5, atol=1e-5, msg="forward")
    upstream = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
    (y * juanji.tensor(upstream)).sum().backward()
    (y_ref * torch.tensor(upstream)).sum().backward()
    assert_close(xj.grad, xt.grad, rtol=1e-5, atol=1e-5, msg="input gradient")


@pytest.mark.parametrize("align_corners", [None, True])
@pytest.mark.parametrize("size,scale", [((14, 18), None), ((3, 4), None), (None, 2.0),
                                        (None, (0.6, 1.7)), (None, 1.0)])
def test_interpolate_bicubic_matches_torch(size, scale, align_corners):
    """F.interpolate and nn.Upsample with mode='bicubic', by size or scale_factor (which sets
    the coordinate step as in PyTorch), forward and input gradient."""
    x = np.random.default_rng(3).standard_normal((2, 3, 7, 9)).astype(np.float32)
    xj, xt = juanji.tensor(x, requires_grad=True), to_torch(x, requires_grad=True)
    y = juanji.nn.Upsample(size, scale, mode="bicubic", align_corners=align_corners)(xj)
    y_ref = TF.interpolate(xt, size, scale, mode="bicubic", align_corners=align_corners)
    assert_close(y, y_ref, rtol=1e-5, atol=1e-5, msg="forward")
    upstream = np.random.default_rng(4).standard_normal(y.shape).astype(np.float32)
    (y * juanji.tensor(upstream)).sum().backward()
    (y_ref * torch.tensor(upstream)).sum().backward()
    assert_close(xj.grad, xt.grad, rtol=1e-5, atol=1e-5, msg="input gradient")
    gradcheck(lambda t: juanji.nn.functional.interpolate(
        t, size, scale, mode="bicubic", align_corners=align_corners), [x[:1, :1].astype(float)])


@pytest.mark.parametrize("kernel,support,antialias,exclude", [
    (cubic_kernel, 2, None, False), (cubic_kernel, 2, None, True),
    (cubic_kernel, 2, 0.4, False), (triangle_kernel, 1, 0.4, True)])
def test_filter_resize_gradcheck(kernel, support, antialias, exclude):
    x = np.random.default_rng(2).standard_normal((2, 2, 5, 6))
    rows = filter_taps(cubic_source(5, 2), 5, kernel, support, antialias, exclude)
    cols = filter_taps(cubic_source(6, 11), 6, kernel, support, antialias, exclude)
    gradcheck(lambda t: FilterResize.apply(t, taps=[rows, cols]), [x])
    gradcheck(lambda t: FilterResize.apply(t, taps=[None, cols]), [x])  # rows untouched


def test_kernels_by_hand():
    d = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, -0.5])
    # a = -0.75: near (1.25 d - 2.25) d^2 + 1, far ((-0.75 d + 3.75) d - 6) d + 3
    np.testing.assert_allclose(cubic_kernel(d), [1, 0.59375, 0, -0.09375, 0, 0, 0.59375])
    np.testing.assert_allclose(cubic_kernel(np.array([0.5, 1.5]), a=-0.5), [0.5625, -0.0625])
    np.testing.assert_allclose(triangle_kernel(d), [1, 0.5, 0, 0, 0, 0, 0.5])


def test_taps_by_hand():
    # cubic at source 2.5 of 6 cells: cells 1..4, weights k(1.5), k(0.5), k(0.5), k(1.5)
    index, weight = filter_taps(np.array([2.5]), 6, cubic_kernel, 2)
    np.testing.assert_array_equal(index, [[1, 2, 3, 4]])
    np.testing.assert_allclose(weight, [[-0.09375, 0.59375, 0.59375, -0.09375]])
    # at source 0.25 the cell -1 reads cell 0 (edge), or is dropped with exclude_outside
    index, weight = filter_taps(np.array([0.25]), 6, cubic_kernel, 2)
    np.testing.assert_array_equal(index, [[0, 0, 1, 2]])
    kept = filter_taps(np.array([0.25]), 6, cubic_kernel, 2, exclude_outside=True)[1]
    np.testing.assert_allclose(kept[0], np.r_[0, weight[0, 1:]] / weight[0, 1:].sum())
    # antialias at scale 1/2 (source 2.5 of a halved axis): a triangle twice as wide, 4 taps
    index, weight = filter_taps(np.array([2.5]), 6, triangle_kernel, 1, antialias_scale=0.5)
    np.testing.assert_array_equal(index, [[1, 2, 3, 4]])
    np.testing.assert_allclose(weight, [[0.125, 0.375, 0.375, 0.125]])
    # antialias when upscaling changes nothing: the plain two linear taps
    index, weight = filter_taps(np.array([2.25]), 6, triangle_kernel, 1, antialias_scale=2.0)
    np.testing.assert_array_equal(index, [[2, 3]])
    np.testing.assert_allclose(weight, [[0.75, 0.25]])


def test_cubic_weights_sum_to_one_and_integer_sources_copy():
    src = np.linspace(-0.7, 5.6, 40)
    for kernel in (cubic_kernel, lambda d: cubic_kernel(d, a=-0.5)):
        _, weight = filter_taps(src, 6, kernel, 2)
        np.testing.assert_allclose(weight.sum(axis=1), 1.0, rtol=1e-12)
    x = np.random.default_rng(3).standard_normal((1, 1, 6)).astype(np.float32)
    taps = filter_taps(np.arange(6.0), 6, cubic_kernel, 2)
    np.testing.assert_array_equal(FilterResize.apply(juanji.tensor(x), taps=[taps]).data, x)
