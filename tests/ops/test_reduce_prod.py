"""Tensor.prod (ops.reduce.Prod): forward and input gradient against torch.prod, including
groups with one zero (that entry's gradient is the product of the others) and with two
(all zero), float64 gradient checks, and the empty product."""

import numpy as np
import pytest
import torch
from gradcheck import assert_close, gradcheck, to_torch

import juanji


def _x(shape, seed=0, zeros=()):
    """Values away from 0 (|x| in [0.5, 1.5]) with exact zeros at the `zeros` positions."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.5, 1.5, shape) * rng.choice([-1.0, 1.0], shape)
    for index in zeros:
        x[index] = 0.0
    return x


def _torch_prod(t, dim, keepdim):
    """torch.prod takes one dim: reduce a tuple one axis at a time, highest first."""
    if dim is None:
        return torch.prod(t)
    dims = (dim,) if isinstance(dim, int) else dim
    for d in sorted((d % t.ndim for d in dims), reverse=True):
        t = torch.prod(t, d, keepdim=keepdim)
    return t


# (2, 3, 4): zeros at [0, 1, 2] (alone in its dim-2 row) and at [1, 2, 0] and [1, 2, 3]
# (two in one dim-2 row, so that row's gradient is all zero)
ZEROS = [(0, 1, 2), (1, 2, 0), (1, 2, 3)]


@pytest.mark.parametrize("dim,keepdim", [(None, False), (2, False), (2, True), (-1, True),
                                         (0, False), ((0, 2), False), ((1, 2), True)])
@pytest.mark.parametrize("zeros", [[], ZEROS], ids=["no_zeros", "zeros"])
def test_prod_matches_torch(dim, keepdim, zeros):
    x = _x((2, 3, 4), seed=1, zeros=zeros).astype(np.float32)
    xj, xt = juanji.tensor(x, requires_grad=True), to_torch(x, requires_grad=True)
    y, y_ref = xj.prod(dim, keepdim), _torch_prod(xt, dim, keepdim)
    assert_close(y, y_ref, msg="forward")
    upstream = np.random.default_rng(2).standard_normal(y.shape).astype(np.float32)
    (y * juanji.tensor(upstream)).sum().backward()
    (y_ref * torch.tensor(upstream)).sum().backward()
    assert_close(xj.grad, xt.grad, msg="input gradient")


def test_prod_gradient_at_zeros_by_hand():
    x = juanji.tensor(np.array([[2.0, 0.0, 3.0, 5.0],    # one zero: its grad is 2*3*5
                                [0.0, 4.0, 0.0, 7.0],    # two zeros: all zero
                                [2.0, 3.0, 4.0, 0.5]]),  # no zero: prod / x
                      requires_grad=True)
    x.prod(1).sum().backward()
    np.testing.assert_array_equal(x.grad, [[0.0, 30.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0],
                                           [6.0, 4.0, 3.0, 24.0]])


@pytest.mark.parametrize("dim", [None, 1, (0, 2)])
@pytest.mark.parametrize("zeros", [[], ZEROS], ids=["no_zeros", "zeros"])
def test_prod_gradcheck(dim, zeros):
    # the product is linear in each entry, so central differences are exact at the zeros too
    gradcheck(lambda t: t.prod(dim, keepdim=dim == 1), [_x((2, 3, 4), seed=3, zeros=zeros)])


def test_prod_of_nothing_is_one():
    x = juanji.tensor(np.zeros((2, 0, 3)), requires_grad=True)
    y = x.prod(1)
    np.testing.assert_array_equal(y.data, np.ones((2, 3)))
    y.sum().backward()
    assert x.grad.shape == (2, 0, 3)


def test_prod_bad_dim():
    with pytest.raises(IndexError, match="dim must be in"):
        juanji.tensor(np.ones((2, 3))).prod(2)
