"""Reductions over axes: sum, mean, product, max/min, var."""

import warnings

from juanji.backend import xp_of
from juanji.function import Function


def _axes(axis, ndim):
    """Normalise an axis argument (None, int or tuple) to a sorted tuple of non-negative ints."""
    if axis is None:
        return tuple(range(ndim))
    axis = (axis,) if isinstance(axis, int) else tuple(axis)
    for a in axis:
        if not -ndim <= a < max(ndim, 1):
            raise IndexError(f"dim must be in [{-ndim}, {ndim - 1}]; got {a}")
    return tuple(sorted(a % max(ndim, 1) for a in axis))


def _expand(grad, axes, shape, keepdims):
    """Reshape a reduced gradient so it broadcasts back against the input `shape`."""
    if not keepdims:
        grad = grad.reshape([1 if i in axes else n for i, n in enumerate(shape)])
    return grad


class Sum(Function):
    """Sum over `axis` (None = all)."""

    def forward(self, x, axis=None, keepdims=False):
        self.axes, self.shape, self.keepdims = _axes(axis, x.ndim), x.shape, keepdims
        return x.sum(axis=self.axes, keepdims=keepdims)

    def backward(self, gy):
        xp = xp_of(gy)
        return xp.broadcast_to(_expand(gy, self.axes, self.shape, self.keepdims), self.shape)


class Mean(Function):
    """Mean over `axis` (None = all)."""

    def forward(self, x, axis=None, keepdims=False):
        self.axes, self.shape, self.keepdims = _axes(axis, x.ndim), x.shape, keepdims
        self.count = 1
        for a in self.axes:
            self.count *= x.shape[a]
        if self.count == 0:  # the mean of nothing is nan, as in PyTorch: no NumPy warnings
            with warnings.catch_warnings(), xp_of(x).errstate(invalid="ignore"):
                warnings.simplefilter("ignore", RuntimeWarning)
                return x.mean(axis=self.axes, keepdims=keepdims)
        return x.mean(axis=self.axes, keepdims=keepdims)

    def backward(self, gy):
        xp = xp_of(gy)
        # count 0: x is empty, so is the gradient whatever the divisor
        g = _expand(gy, self.axes, self.shape, self.keepdims) / gy.dtype.type(max(self.count, 1))
        return xp.broadcast_to(g, self.shape)


class Prod(Function):
    """Product over `axis` (None = all); the product of nothing is 1.

    The gradient of each entry is the product of the others in its group: y / x where the
    group has no zero; where it has exactly one, the zero's gradient is the product of the
    non-zero entries and every other entry's is 0; with two or more zeros all are 0. (Dividing
    y by x would give 0 / 0 at a zero.)
    """

    def forward(self, x, axis=None, keepdims=False):
        self.axes, self.shape, self.keepdims = _axes(axis, x.ndim), x.shape, keepdims
        self.x = x
        return x.prod(axis=self.axes, keepdims=keepdims)

    def backward(self, gy):
        xp = xp_of(gy)
        x = self.x
        zero = x == 0
        safe = xp.where(zero, x.dtype.type(1), x)
        nonzero_prod = safe.prod(axis=self.axes, keepdims=True)  # zeros skipped
        zeros = zero.sum(axis=self.axes, keepdims=True)
        # no zero: (product of the non-zero) / x; one zero: that product at the zero, else 0
        others = xp.where(zeros == 0, nonzero_prod / safe,
                          xp.where((zeros == 1) & zero, nonzero_prod, x.dtype.type(0)))
        return _expand(gy, self.axes, self.shape, self.keepdims) * others


class Max(Function):
    """Max over `axis`; tied maxima share the gradient equally (PyTorch's amax rule)."""

    def forward(self, x, axis=None, keepdims=False, largest=True):
        self.axes, self.shape, self.keepdims = _axes(axis, x.ndim), x.shape, keepdims
        reducer = x.max if largest else x.min
        y = reducer(axis=self.axes, keepdims=True)
        self.mask = x == y
        if keepdims:
            return y
        return y.reshape([n for i, n in enumerate(x.shape) if i not in self.axes])

    def backward(self, gy):
        g = _expand(gy, self.axes, self.shape, self.keepdims)
        count = self.mask.sum(axis=self.axes, keepdims=True)
        return g * self.mask / count.astype(gy.dtype)


class Var(Function):
    """Variance over `axis` with `correction` (1 = unbiased, PyTorch's default)."""

    def forward(self, x, axis=None, correction=1, keepdims=False):
        self.axes, self.shape, self.keepdims = _axes(axis, x.ndim), x.shape, keepdims
        n = 1
        for a in self.axes:
            n *= x.shape[a]
        self.denom = max(n - correction, 0)
        self.centered = x - x.mean(axis=self.axes, keepdims=True)
        sq = (self.centered * self.centered).sum(axis=self.axes, keepdims=keepdims)
        return sq / x.dtype.type(self.denom)

    def backward(self, gy):
        g = _expand(gy, self.axes, self.shape, self.keepdims)
        return g * self.centered * gy.dtype.type(2.0 / self.denom)
