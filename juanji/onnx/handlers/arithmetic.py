"""Elementwise arithmetic with NumPy broadcasting, comparisons, logic and Where.

When every operand is a NumPy array (constants, shape arithmetic) the op runs in NumPy with
ONNX's integer rules (Div truncates toward zero); otherwise the arrays join the Tensor in its
dtype and juanji's differentiable ops run. Comparisons and logic give boolean arrays (no
gradient); Floor, Ceil, Round and Sign give values whose gradient is zero almost everywhere,
so they leave the graph (PyTorch exports LPPool2d with a Sign).
"""

import functools

import numpy as np

from juanji.onnx.handlers.base import as_float, data, is_array
from juanji.ops import elementwise
from juanji.tensor import Tensor


def _int_div(a, b):
    if np.issubdtype(np.result_type(a, b), np.integer):
        return np.trunc(np.divide(a, b)).astype(np.result_type(a, b))
    return np.divide(a, b)


def _integral(value):
    """An integer or boolean array: it carries no gradient, so the op runs in NumPy."""
    return is_array(value) and value.dtype.kind in "iub"


def _tensors(a, b):
    """Both operands as Tensors of the Tensor operand's dtype."""
    like = a if isinstance(a, Tensor) else b
    return as_float(a, like), as_float(b, like)


def _binary(array_fn, tensor_fn):
    def build(node, ctx):
        def step(a, b):
            if (is_array(a) and is_array(b)) or _integral(a) or _integral(b):
                return np.asarray(array_fn(data(a), data(b)))
            return tensor_fn(*_tensors(a, b))
        return step
    return build


def _power(node, ctx):
    """Pow(a, b). A constant exponent (an array: a Constant node or an initializer) runs the
    Pow op, defined for bases of any sign ((-x) ** 2 = x ** 2, as in the variance PyTorch
    exports for a LayerNorm before opset 17); a computed (Tensor) exponent is exp(b * log(a)),
    defined for positive bases; arrays alone run in NumPy, in the base's dtype."""
    def step(a, b):
        if (is_array(a) and is_array(b)) or _integral(a):
            return np.asarray(np.power(data(a), data(b)).astype(data(a).dtype))
        if is_array(b):
            a, exponent = as_float(a), data(b)
            if exponent.size == 1:
                return a ** float(exponent.reshape(()))
            if np.broadcast_shapes(a.shape, exponent.shape) == a.shape:
                return elementwise.Pow.apply(a, p=exponent.astype(a.dtype))
        a, b = _tensors(a, b)
        return a ** b
    return step


def _minimum(a, b):
    return -((-a).maximum(-b))


def _variadic(array_fn, tensor_fn, mean=False):
    def build(node, ctx):
        def step(*xs):
            if all(is_array(x) for x in xs):
                out = array_fn(xs)
                return out / len(xs) if mean else out
            like = next(x for x in xs if isinstance(x, Tensor))
            out = as_float(xs[0], like)
            for x in xs[1:]:
                out = tensor_fn(out, as_float(x, like))
            return out * (1.0 / len(xs)) if mean else out
        return step
    return build


def _unary(array_fn, tensor_fn):
    def build(node, ctx):
        return lambda x: array_fn(x) if is_array(x) else tensor_fn(x)
    return build


def _detached(array_fn):
    """Floor / Ceil / Round / Sign: zero gradient almost everywhere, so the value leaves the
    graph."""
    def build(node, ctx):
        return lambda x: array_fn(x) if is_array(x) else Tensor(array_fn(x.data))
    return build


def _compare(array_fn):
    def build(node, ctx):
        return lambda *xs: array_fn(*[data(x) for x in xs])
    return build


def where(node, ctx):
    def step(cond, a, b):
        cond = data(cond).astype(bool)
        if is_array(a) and is_array(b):
            return np.where(cond, a, b)
        a, b = _tensors(a, b)
        shape = np.broadcast_shapes(cond.shape, a.shape, b.shape)
        return elementwise.Where.apply(a, b, cond=np.broadcast_to(cond, shape))
    return step


HANDLERS = {
    "Add": _binary(np.add, lambda a, b: a + b),
    "Sub": _binary(np.subtract, lambda a, b: a - b),
    "Mul": _binary(np.multiply, lambda a, b: a * b),
    "Div": _binary(_int_div, lambda a, b: a / b),
    "Pow": _power,
    "Sqrt": _unary(np.sqrt, lambda x: x.sqrt()),
    "Exp": _unary(np.exp, lambda x: x.exp()),
    "Log": _unary(np.log, lambda x: x.log()),
    "Erf": _unary(lambda x: elementwise.Erf().forward(x), lambda x: x.erf()),
    "Neg": _unary(np.negative, lambda x: -x),
    "Abs": _unary(np.abs, lambda x: x.abs()),
    "Reciprocal": _unary(lambda x: np.reciprocal(x.astype(np.float64)).astype(x.dtype),
                         lambda x: 1.0 / x),
    "Floor": _detached(np.floor),
    "Ceil": _detached(np.ceil),
    "Round": _detached(np.round),  # halves to even, as ONNX specifies
    "Sign": _detached(np.sign),
    "Max": _variadic(lambda xs: functools.reduce(np.maximum, xs), lambda a, b: a.maximum(b)),
    "Min": _variadic(lambda xs: functools.reduce(np.minimum, xs), _minimum),
    "Sum": _variadic(sum, lambda a, b: a + b),
    "Mean": _variadic(sum, lambda a, b: a + b, mean=True),
    "Equal": _compare(np.equal),
    "Greater": _compare(np.greater),
    "GreaterOrEqual": _compare(np.greater_equal),
    "Less": _compare(np.less),
    "LessOrEqual": _compare(np.less_equal),
    "Not": _compare(np.logical_not),
    "And": _compare(np.logical_and),
    "Or": _compare(np.logical_or),
    "Xor": _compare(np.logical_xor),
    "Where": where,
}
