"""Elementwise arithmetic with NumPy broadcasting; gradients reduced by `unbroadcast`."""

import math

import numpy as np

from juanji.backend import xp_of
from juanji.function import Function, unbroadcast
from juanji.ops.kernels import elementwise_blocks


def _broadcasting(op, symbol, a, b):
    """a `symbol` b with NumPy broadcasting; shapes that do not broadcast are a ValueError
    naming both (NumPy's own message names neither operand's role)."""
    try:
        return op(a, b)
    except ValueError:
        shape_a, shape_b = getattr(a, "shape", ()), getattr(b, "shape", ())
        raise ValueError(f"cannot compute a {symbol} b: shapes {tuple(shape_a)} and "
                         f"{tuple(shape_b)} do not broadcast (each dim must match or be 1)"
                         ) from None


# Operands of at least this many elements are computed in blocks over the threads: below it a
# split costs more than it saves (a pool hand-off is ~0.1 ms; 96x80x80 took 386 us threaded
# against 257 in one call, 32x320x320 1119 against 1499)
_THREADED_SIZE = 1 << 20


def ufunc_in_blocks(ufunc, symbol, a, b):
    """ufunc(a, b) with NumPy broadcasting, in blocks over the threads when the operands are
    big and of one shape, or one is a scalar (a residual sum, x + 3, x / 6): the same values
    as one ufunc call, laid out as the big operand."""
    xp = xp_of(a)
    big = a if a.size >= b.size else b
    if big.size < _THREADED_SIZE or not (a.shape == b.shape or a.ndim == 0 or b.ndim == 0):
        return _broadcasting(ufunc, symbol, a, b)
    out = xp.empty_like(big, dtype=xp.result_type(a, b))
    if b.ndim == 0:
        elementwise_blocks(lambda x, o: ufunc(x, b, out=o), a, out)
    elif a.ndim == 0:
        elementwise_blocks(lambda y, o: ufunc(a, y, out=o), b, out)
    else:
        elementwise_blocks(lambda x, y, o: ufunc(x, y, out=o), a, b, out)
    return out


class Add(Function):
    """a + b. Big operands are added in blocks over the threads (see `_elementwise`)."""

    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return ufunc_in_blocks(xp_of(a).add, "+", a, b)

    def backward(self, gy):
        sa, sb = self.shapes
        return unbroadcast(gy, sa), unbroadcast(gy, sb)


class Sub(Function):
    """a - b."""

    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return ufunc_in_blocks(xp_of(a).subtract, "-", a, b)

    def backward(self, gy):
        sa, sb = self.shapes
        return unbroadcast(gy, sa), unbroadcast(-gy, sb)


class Mul(Function):
    """a * b."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return ufunc_in_blocks(xp_of(a).multiply, "*", a, b)

    def backward(self, gy):
        ga = unbroadcast(gy * self.b, self.a.shape) if self.needs_grad[0] else None
        gb = unbroadcast(gy * self.a, self.b.shape) if self.needs_grad[1] else None
        return ga, gb


class Div(Function):
    """a / b."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return ufunc_in_blocks(xp_of(a).true_divide, "/", a, b)

    def backward(self, gy):
        ga = unbroadcast(gy / self.b, self.a.shape) if self.needs_grad[0] else None
        gb = None
        if self.needs_grad[1]:
            gb = unbroadcast(-gy * self.a / (self.b * self.b), self.b.shape)
        return ga, gb


class Neg(Function):
    """-a."""

    def forward(self, a):
        return -a

    def backward(self, gy):
        return -gy


class Pow(Function):
    """a ** p for a constant exponent p."""

    def forward(self, a, p):
        self.a, self.p = a, p
        return a**p

    def backward(self, gy):
        return gy * self.p * self.a ** (self.p - 1)


class Exp(Function):
    """e ** a."""

    def forward(self, a):
        self.y = xp_of(a).exp(a)
        return self.y

    def backward(self, gy):
        return gy * self.y


class Erf(Function):
    """The error function 2/sqrt(pi) * integral_0^a exp(-t^2) dt, elementwise (exact GELU's
    core). NumPy has no erf: each value goes through Python's math.erf (correctly rounded
    double precision, about 0.1 us a value), then back to a's dtype."""

    def forward(self, a):
        self.a = a
        return np.asarray(_ERF(a), dtype=a.dtype)

    def backward(self, gy):
        return gy * (2 / math.sqrt(math.pi)) * xp_of(self.a).exp(-self.a * self.a)


_ERF = np.frompyfunc(math.erf, 1, 1)


class Log(Function):
    """Natural log of a."""

    def forward(self, a):
        self.a = a
        return xp_of(a).log(a)

    def backward(self, gy):
        return gy / self.a


class Sqrt(Function):
    """Square root of a."""

    def forward(self, a):
        self.y = xp_of(a).sqrt(a)
        return self.y

    def backward(self, gy):
        return gy / (2 * self.y)


class Abs(Function):
    """|a|; the gradient at 0 is 0, as PyTorch's sign(0) = 0."""

    def forward(self, a):
        self.sign = xp_of(a).sign(a)
        return abs(a)

    def backward(self, gy):
        return gy * self.sign


class Clamp(Function):
    """Clip a into [lo, hi] (either may be None); gradient passes where lo <= a <= hi."""

    def forward(self, a, lo=None, hi=None):
        xp = xp_of(a)
        if self.needs_grad and self.needs_grad[0]:  # the mask only when a backward will come
            self.mask = xp.ones(a.shape, dtype=bool)
            if lo is not None:
                self.mask &= a >= lo
            if hi is not None:
                self.mask &= a <= hi
        if a.dtype.kind != "f" or a.ndim == 0 or a.size < _THREADED_SIZE:
            return xp.clip(a, lo, hi).astype(a.dtype, copy=False)
        out = xp.empty_like(a)  # np.clip's own values, in blocks over the threads
        elementwise_blocks(lambda a, out: xp.clip(a, lo, hi, out=out), a, out)
        return out

    def backward(self, gy):
        return gy * self.mask


class Maximum(Function):
    """Elementwise max(a, b); ties send half the gradient to each, as PyTorch does."""

    def forward(self, a, b):
        xp = xp_of(a)
        self.shapes = a.shape, b.shape
        self.wa = (a > b) + 0.5 * (a == b)
        return xp.maximum(a, b)

    def backward(self, gy):
        wa = self.wa.astype(gy.dtype)
        return unbroadcast(gy * wa, self.shapes[0]), unbroadcast(gy * (1 - wa), self.shapes[1])


class Where(Function):
    """where(cond, a, b) with a constant boolean condition."""

    def forward(self, a, b, cond):
        xp = xp_of(a)
        self.shapes, self.cond = (a.shape, b.shape), cond
        return xp.where(cond, a, b)

    def backward(self, gy):
        ga = unbroadcast(gy * self.cond, self.shapes[0]) if self.needs_grad[0] else None
        gb = unbroadcast(gy * ~self.cond, self.shapes[1]) if self.needs_grad[1] else None
        return ga, gb
