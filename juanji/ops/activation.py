"""Pointwise activations and the softmax family, each with a hand-written derivative.

Every op works elementwise in the input's dtype (float32 by default, float64 for gradient
checks). Derivatives at kinks follow PyTorch's kernels exactly; each docstring says which side
a kink takes. `erf` is defined here because NumPy has none.
"""

import math

import numpy as np

from juanji import grad_mode
from juanji.backend import xp_of
from juanji.function import Function, unbroadcast
from juanji.ops import compiled
from juanji.ops.elementwise import ufunc_in_blocks
from juanji.ops.kernels import BIAS_ACTIVATIONS, elementwise_blocks, relu_in_place

_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
_SQRT_PI = math.sqrt(math.pi)
_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_KAPPA = 0.044715
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946

# erf: below |x| = 2 a positive-term series, above it a continued fraction for erfc. The term
# counts give a truncation error < 2e-15 relative for float64 results and < 5e-9 for float32
# (and float16) results, checked against math.erf on the whole real line.
_ERF_SWITCH = 2.0
_ERF_TERMS = {"float64": (30, 40), "narrow": (20, 12)}


def _erf_series_coefficients(count):
    """c_n = 2^n / (1*3*5*...*(2n+1)): erf(a) = 2/sqrt(pi) e^(-a^2) a sum_n c_n (a^2)^n."""
    coefficients = [1.0]
    for n in range(1, count):
        coefficients.append(coefficients[-1] * 2.0 / (2 * n + 1))
    return coefficients


_ERF_SERIES = {name: _erf_series_coefficients(terms[0]) for name, terms in _ERF_TERMS.items()}


def erf(x):
    """The error function, elementwise; the result has x's dtype (NumPy has no erf, and scipy
    is not a dependency).

    |x| < 2: erf(a) = 2/sqrt(pi) * exp(-a^2) * a * sum_n c_n a^(2n), c_n = 2^n / (2n+1)!!, a
    series of positive terms (nothing cancels), evaluated by Horner's rule in place.
    |x| >= 2 (only those elements): erfc(a) = exp(-a^2) / sqrt(pi) / K(a) with the continued
    fraction K(a) = a + (1/2)/(a + 1/(a + (3/2)/(a + ...))), evaluated bottom-up with a fixed
    depth. erf(-x) = -erf(x).

    float16/float32 inputs are evaluated in float64 and rounded back to their dtype: summed in
    float32 the series drifts by up to 9 ulp, rounded from float64 the result is within 1 ulp
    (as PyTorch's float32 erf is). Only these temporaries are wider; nothing leaves in float64.
    """
    xp = xp_of(x)
    kind = "float64" if x.dtype == xp.float64 else "narrow"
    coefficients, fraction_terms = _ERF_SERIES[kind], _ERF_TERMS[kind][1]
    a = abs(x).astype(xp.float64, copy=False)
    s = xp.minimum(a, _ERF_SWITCH)  # the series' argument, clamped into its range
    z = s * s
    acc = xp.full_like(z, coefficients[-1])
    for c in reversed(coefficients[:-1]):
        acc *= z
        acc += c
    out = xp.exp(-z)
    out *= acc
    out *= s
    out *= _TWO_OVER_SQRT_PI
    far = a >= _ERF_SWITCH
    if far.any():
        c = a[far]
        fraction = c.copy()
        for n in range(fraction_terms, 0, -1):
            xp.divide(n / 2, fraction, out=fraction)
            fraction += c
        out[far] = 1 - xp.exp(-c * c) / (_SQRT_PI * fraction)
    return xp.sign(x) * out.astype(x.dtype, copy=False)


def _sigmoid(x):
    """1 / (1 + e^-x) as 0.5 * (1 + tanh(x / 2)): no overflow for any |x|."""
    half = x.dtype.type(0.5)
    return half * (1 + xp_of(x).tanh(half * x))


def _overwritable(x):
    """Whether an op asked to work in place may write over x: gradients are off (no_grad, so
    no op keeps x for a backward) and x's memory is writable."""
    return not grad_mode.is_enabled() and getattr(x.flags, "writeable", True)


def _with_mask(x, need_mask, fill):
    """y (and the bool gradient mask when need_mask) for x, computed by fill(x, y, mask=None)
    in blocks over the threads -> (y, mask or None)."""
    xp = xp_of(x)
    y = xp.empty_like(x)
    mask = xp.empty_like(x, dtype=bool) if need_mask else None
    elementwise_blocks(fill, *((x, y) if mask is None else (x, y, mask)))
    return y, mask


def _masked_gradient(gy, mask):
    """gy * mask (mask: bool, where the op passes gradient), in blocks over the threads: one
    compiled pass when gy and mask are laid out alike (1.5x faster than NumPy's multiply,
    which casts the mask block by block), else NumPy's."""
    xp = xp_of(gy)
    gx = xp.empty_like(mask, dtype=gy.dtype)
    if compiled.runs_on(compiled.masked_gradient, gy) and elementwise_blocks(
            compiled.masked_gradient, gy, mask, gx, flat_only=True):
        return gx
    elementwise_blocks(lambda gy, mask, gx: xp.multiply(gy, mask, out=gx), gy, mask, gx)
    return gx


class Relu(Function):
    """max(x, 0); the gradient at exactly 0 is 0, as in PyTorch.

    inplace=True (PyTorch's `relu_`, a ReLU(inplace=True) layer): when gradients are off
    (no_grad, so no op keeps x for a backward) and x's memory is writable, max(x, 0) is written
    over x and returned in its memory: no new array to allocate and fill (ResNet-18 inference
    b8, the zoo's ReLU(inplace=True) layers as torchvision's: 17 ReLUs 8.8 -> 6.6 ms, the
    forward 4-6% faster). Otherwise the result is a new array, as without it.
    """

    def forward(self, x, inplace=False):
        xp, zero = xp_of(x), x.dtype.type(0)
        if inplace and _overwritable(x):
            elementwise_blocks(relu_in_place, x)
            return x

        def relu(x, y, mask=None):
            if mask is not None:
                xp.greater(x, zero, out=mask)
            xp.maximum(x, zero, out=y)  # NaN stays NaN

        if self.needs_grad[0] and compiled.runs_on(compiled.relu_with_mask, x):  # one pass
            y, self.mask = xp.empty_like(x), xp.empty_like(x, dtype=bool)
            if elementwise_blocks(compiled.relu_with_mask, x, y, self.mask, flat_only=True):
                return y
        y, self.mask = _with_mask(x, self.needs_grad[0], relu)
        return y

    def backward(self, gy):
        return _masked_gradient(gy, self.mask)


class AddRelu(Function):
    """max(a + b, 0) for a and b of one shape and dtype, a residual block's end: the values
    and gradients of the Add op then the Relu op, bit for bit, with fewer passes (see
    nn.layers.chain.add_relu). Training with the compiled path: one pass writes the result
    and the gradient mask, the sum never written out; otherwise the sum's array takes the
    ReLU in place."""

    def forward(self, a, b):
        xp, zero = xp_of(a), a.dtype.type(0)
        if not any(self.needs_grad):
            y = ufunc_in_blocks(xp.add, "+", a, b)  # the Add op's sum, a new array
            elementwise_blocks(relu_in_place, y)
            return y
        self.mask = xp.empty_like(a, dtype=bool)
        if compiled.runs_on(compiled.add_relu_with_mask, a, b):
            y = xp.empty_like(a)
            if elementwise_blocks(compiled.add_relu_with_mask, a, b, y, self.mask,
                                  flat_only=True):
                return y
        y = ufunc_in_blocks(xp.add, "+", a, b)  # the sum's array takes the ReLU

        def relu(y, mask):
            xp.greater(y, zero, out=mask)
            xp.maximum(y, zero, out=y)

        elementwise_blocks(relu, y, self.mask)
        return y

    def backward(self, gy):
        gx = _masked_gradient(gy, self.mask)
        return gx, gx  # as Add passes one gradient to both (shapes equal: no reduction)


class Hardtanh(Function):
    """clip(x, min_val, max_val); the gradient is 1 strictly inside, 0 at and beyond both ends.

    ReLU6 is Hardtanh(0, 6): its gradient at x = 0 and x = 6 is 0, as in PyTorch.
    """

    def forward(self, x, min_val=-1.0, max_val=1.0):
        xp, low, high = xp_of(x), x.dtype.type(min_val), x.dtype.type(max_val)

        def hardtanh(x, y, mask=None):
            if mask is not None:
                xp.greater(x, low, out=mask)
                mask &= x < high
            xp.clip(x, low, high, out=y)

        y, self.mask = _with_mask(x, self.needs_grad[0], hardtanh)
        return y

    def backward(self, gy):
        return _masked_gradient(gy, self.mask)


class LeakyRelu(Function):
    """x for x > 0, negative_slope * x otherwise; the gradient at 0 is negative_slope."""

    input_kinds = "f"

    def forward(self, x, negative_slope=0.01):
        xp = xp_of(x)
        self.slope = xp.where(x > 0, x.dtype.type(1.0), x.dtype.type(negative_slope))
        return x * self.slope

    def backward(self, gy):
        return gy * self.slope


class PRelu(Function):
    """x for x > 0, weight * x otherwise, with `weight` broadcast against x (NumPy rules).

    nn.functional.prelu reshapes a (C,) weight to (1, C, 1, ...) first, so the slope is per
    channel; the gradient at 0 takes the negative side (weight), and the weight's gradient is
    summed back to its own shape.
    """

    input_kinds = "f"

    def forward(self, x, weight):
        xp = xp_of(x)
        self.positive, self.x, self.weight = x > 0, x, weight
        return xp.where(self.positive, x, x * weight)

    def backward(self, gy):
        xp = xp_of(gy)
        gx = gw = None
        if self.needs_grad[0]:
            gx = unbroadcast(xp.where(self.positive, gy, gy * self.weight), self.x.shape)
        if self.needs_grad[1]:
            gw = unbroadcast(xp.where(self.positive, 0, gy * self.x), self.weight.shape)
        return gx, gw


class Elu(Function):
    """scale * (x if x > 0 else alpha * (e^x - 1)); SELU is scale=1.0507..., alpha=1.6733....

    The negative side uses expm1 for accuracy near 0. The gradient at 0 takes the negative side,
    scale * alpha, as PyTorch's kernel does (`x <= 0`).
    """

    input_kinds = "f"

    def forward(self, x, alpha=1.0, scale=1.0):
        xp = xp_of(x)
        self.positive = x > 0
        negative = xp.minimum(x, 0)  # keeps exp() from overflowing on the unused side
        self.e = xp.exp(negative)
        alpha, scale = x.dtype.type(alpha), x.dtype.type(scale)
        self.alpha, self.scale = alpha, scale
        return scale * xp.where(self.positive, x, alpha * xp.expm1(negative))

    def backward(self, gy):
        xp = xp_of(gy)
        return gy * xp.where(self.positive, self.scale, self.scale * self.alpha * self.e)


class Gelu(Function):
    """x * Phi(x), Phi the standard normal CDF.

    approximate='none': Phi(x) = (1 + erf(x / sqrt 2)) / 2 with juanji's own `erf`;
    d/dx = Phi(x) + x * phi(x), phi(x) = exp(-x^2 / 2) / sqrt(2 pi).
    approximate='tanh': 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), differentiated
    exactly (not as if it were the erf form), as PyTorch does.
    """

    input_kinds = "f"

    def forward(self, x, approximate="none"):
        xp = xp_of(x)
        self.x, self.approximate = x, approximate
        half = x.dtype.type(0.5)
        if approximate == "tanh":
            inner = x.dtype.type(_SQRT_2_OVER_PI) * (x + x.dtype.type(_GELU_KAPPA) * x * x * x)
            self.t = xp.tanh(inner)
            return half * x * (1 + self.t)
        self.cdf = half * (1 + erf(x * x.dtype.type(_SQRT_HALF)))
        return x * self.cdf

    def backward(self, gy):
        xp = xp_of(gy)
        x = self.x
        half = x.dtype.type(0.5)
        if self.approximate == "tanh":
            dinner = x.dtype.type(_SQRT_2_OVER_PI) * (1 + x.dtype.type(3 * _GELU_KAPPA) * x * x)
            return gy * (half * (1 + self.t) + half * x * (1 - self.t * self.t) * dinner)
        pdf = x.dtype.type(_INV_SQRT_2PI) * xp.exp(-half * x * x)
        return gy * (self.cdf + x * pdf)


class Silu(Function):
    """x * sigmoid(x) (swish); d/dx = s * (1 + x * (1 - s))."""

    input_kinds = "f"

    def forward(self, x):
        self.x, self.s = x, _sigmoid(x)
        return x * self.s

    def backward(self, gy):
        return gy * self.s * (1 + self.x * (1 - self.s))


def _gate(x, tmp, out, times_x):
    """out = min(max(x + 3, 0), 6) (times x when times_x) / 6, through tmp (not x); out may be
    x or tmp. NaN stays NaN."""
    xp, t = xp_of(x), x.dtype.type
    xp.add(x, t(3), out=tmp)
    xp.maximum(tmp, t(0), out=tmp)
    xp.minimum(tmp, t(6), out=tmp)
    if times_x:
        xp.multiply(x, tmp, out=tmp)
    xp.divide(tmp, t(6), out=out)


def hard_gate_in_place(x, times_x=True):
    """x <- min(max(x + 3, 0), 6) / 6 (hardsigmoid), or x * min(max(x + 3, 0), 6) / 6
    (hardswish, multiplied before dividing, as PyTorch's kernel), in place on a C-contiguous
    block: one compiled pass when ops/compiled.py has numba, else five NumPy passes."""
    xp = xp_of(x)
    if compiled.hard_gate_in_place is not None and xp is np:
        compiled.hard_gate_in_place(x.reshape(-1), times_x)  # a view: x is contiguous
    else:
        _gate(x, xp.empty_like(x), x, times_x)


def hard_gate(x, times_x):
    """`hard_gate_in_place` on a copy of x, a cache-sized block at a time over the threads."""
    xp = xp_of(x)
    y = xp.empty_like(x)
    # one compiled pass over 1-D runs of memory, the same bits (see ops/compiled.py)
    if compiled.hard_gate is not None and xp is np and elementwise_blocks(
            lambda x, y: compiled.hard_gate(x, y, times_x), x, y, flat_only=True):
        return y
    elementwise_blocks(lambda x, y: _gate(x, y, y, times_x), x, y)
    return y


def hardswish_gradient(gy, x):
    """gy times hardswish's slope at x: 0 for x <= -3, 1 for x >= 3, x / 3 + 1/2 between."""
    xp = xp_of(gy)
    inner = x / x.dtype.type(3) + x.dtype.type(0.5)
    slope = xp.where(x <= -3, x.dtype.type(0), xp.where(x >= 3, x.dtype.type(1), inner))
    return gy * slope


# what a fused activation applies to a block of its layer's output, in place
IN_PLACE = {"relu": relu_in_place, "hardswish": hard_gate_in_place}
BIAS_ACTIVATIONS[hard_gate_in_place] = compiled.BIAS_HARDSWISH  # after a conv's bias, in one pass


class Hardswish(Function):
    """x * relu6(x + 3) / 6.

    Gradient, as PyTorch's kernel: 0 for x <= -3, 1 for x >= 3, x / 3 + 1/2 strictly between
    (so at x = -3 it is 0 and at x = 3 it is 1).
    """

    input_kinds = "f"

    def forward(self, x, inplace=False):
        # inplace=True: as Relu's, when x's memory is one run (the compiled pass reads it flat)
        if inplace and _overwritable(x) and elementwise_blocks(
                hard_gate_in_place, x, flat_only=True):
            return x
        self.x = x
        return hard_gate(x, times_x=True)

    def backward(self, gy):
        return hardswish_gradient(gy, self.x)


class Hardsigmoid(Function):
    """relu6(x + 3) / 6; gradient 1/6 strictly inside (-3, 3), 0 at and beyond +-3."""

    input_kinds = "f"

    def forward(self, x):
        self.mask = (x > -3) & (x < 3) if self.needs_grad[0] else None
        return hard_gate(x, times_x=False)

    def backward(self, gy):
        return gy * self.mask / gy.dtype.type(6)


class Softplus(Function):
    """log(1 + e^(beta x)) / beta, and x itself where beta * x > threshold (PyTorch's rule).

    log1p(exp(.)) is evaluated on min(beta x, threshold) so the unused branch cannot overflow;
    d/dx = sigmoid(beta x) below the threshold and 1 above it.
    """

    input_kinds = "f"

    def forward(self, x, beta=1.0, threshold=20.0):
        xp = xp_of(x)
        bx = x * x.dtype.type(beta)
        self.linear = bx > threshold
        self.s = _sigmoid(bx)
        soft = xp.log1p(xp.exp(xp.minimum(bx, x.dtype.type(threshold)))) / x.dtype.type(beta)
        return xp.where(self.linear, x, soft)

    def backward(self, gy):
        return gy * xp_of(gy).where(self.linear, gy.dtype.type(1), self.s)


class Sigmoid(Function):
    """1 / (1 + e^-x), computed as 0.5 * (1 + tanh(x / 2)) so large |x| cannot overflow."""

    input_kinds = "f"

    def forward(self, x):
        self.y = _sigmoid(x)
        return self.y

    def backward(self, gy):
        return gy * self.y * (1 - self.y)


class Tanh(Function):
    """tanh(x); derivative 1 - y^2."""

    input_kinds = "f"

    def forward(self, x):
        self.y = xp_of(x).tanh(x)
        return self.y

    def backward(self, gy):
        return gy * (1 - self.y * self.y)


def log_softmax_array(x, axis=-1):
    """log softmax of a raw array along `axis` with the max shift: x - m - log(sum(exp(x - m))).

    Subtracting the row maximum m first makes every exponent <= 0, so logits of any magnitude
    (1e4 and beyond) give finite results.
    """
    xp = xp_of(x)
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))


class Softmax(Function):
    """exp(x) / sum(exp(x)) along `axis`, max-shifted; backward y * (gy - sum(gy * y))."""

    input_kinds = "f"

    def forward(self, x, axis=-1):
        xp = xp_of(x)
        e = xp.exp(x - x.max(axis=axis, keepdims=True))
        self.y, self.axis = e / e.sum(axis=axis, keepdims=True), axis
        return self.y

    def backward(self, gy):
        y = self.y
        return y * (gy - (gy * y).sum(axis=self.axis, keepdims=True))


class LogSoftmax(Function):
    """log_softmax_array along `axis`; backward gy - softmax * sum(gy)."""

    input_kinds = "f"

    def forward(self, x, axis=-1):
        self.y, self.axis = log_softmax_array(x, axis), axis
        return self.y

    def backward(self, gy):
        xp = xp_of(gy)
        return gy - xp.exp(self.y) * gy.sum(axis=self.axis, keepdims=True)
