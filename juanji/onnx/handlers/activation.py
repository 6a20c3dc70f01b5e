"""Activations, Clip, Softmax and LogSoftmax, each on juanji's functional ops.

ONNX forms PyTorch's API lacks are composed from juanji ops (so gradients flow): HardSigmoid
with any alpha and beta is hardtanh(alpha * x + beta, 0, 1), Celu is alpha * elu(x / alpha),
Softsign x / (1 + |x|), Mish x * tanh(softplus(x)). PRelu's slope broadcasts NumPy-style
against x (ONNX's rule; PyTorch exports (C, 1, 1)); a constant slope becomes an nn.PReLU
layer whose weight keeps the ONNX shape. Softmax before opset 13 flattens x to 2-D at
`axis` (default 1) and normalises the rows; from 13 it normalises along `axis` (default -1).
"""

import numpy as np

from juanji.nn import functional as F
from juanji.nn.layers.activation import PReLU
from juanji.onnx.handlers.base import as_float, data, is_array
from juanji.ops import activation as activation_ops


def _unary(fn):
    """A handler for x -> fn(x, node) on a float Tensor."""
    return lambda node, ctx: (lambda x: fn(as_float(x), node))


class Overwriting:
    """A step x -> fn(x) that may also run as fn(x, inplace=True), writing over x: the graph
    does so when no other node reads x afterwards and x shares no memory with another value
    (see OnnxModule.forward); fn acts on inplace only under no_grad."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, x):
        return self.fn(as_float(x))

    def in_place(self, x):
        return self.fn(as_float(x), inplace=True)


def prelu(node, ctx):
    slope = ctx.const(node.inputs[1])
    if slope is None:
        return lambda x, s: activation_ops.PRelu.apply(as_float(x), as_float(s, as_float(x)))
    layer = PReLU(int(slope.size), dtype=slope.dtype)
    layer.weight = ctx.param(node.inputs[1])  # the ONNX shape, broadcast against x
    layer = ctx.add_layer(node, layer)
    return lambda x, _: activation_ops.PRelu.apply(as_float(x), layer.weight)


def clip(node, ctx):
    """Clip(x, min, max): attributes before opset 11, optional inputs from 11."""
    lo_attr, hi_attr = node.attr("min"), node.attr("max")

    def step(x, lo=None, hi=None):
        lo = lo_attr if node.opset < 11 else (None if lo is None else data(lo).item())
        hi = hi_attr if node.opset < 11 else (None if hi is None else data(hi).item())
        if is_array(x):
            return np.clip(x, lo, hi).astype(x.dtype)
        return x.clamp(lo, hi)

    return step


def _hard_sigmoid(x, node):
    alpha, beta = node.attr("alpha", 0.2), node.attr("beta", 0.5)
    return F.hardtanh(x * alpha + beta, 0.0, 1.0)


def _selu(x, node):
    alpha = node.attr("alpha", 1.67326319217681884765625)
    gamma = node.attr("gamma", 1.05070102214813232421875)
    return F.elu(x, alpha) * gamma


def _celu(x, node):
    alpha = node.attr("alpha", 1.0)
    return F.elu(x * (1.0 / alpha), 1.0) * alpha


def _softmax(fn):
    def build(node, ctx):
        legacy = node.opset < 13
        axis = node.attr("axis", 1 if legacy else -1)

        def step(x):
            x = as_float(x)
            if not legacy or x.ndim == 0:
                return fn(x, axis)
            a = axis % x.ndim
            rows = int(np.prod(x.shape[:a], dtype=np.int64))
            return fn(x.reshape(rows, -1), 1).reshape(x.shape)

        return step

    return build


HANDLERS = {
    "Relu": lambda node, ctx: Overwriting(F.relu),
    "LeakyRelu": _unary(lambda x, node: F.leaky_relu(x, node.attr("alpha", 0.01))),
    "PRelu": prelu,
    "Elu": _unary(lambda x, node: F.elu(x, node.attr("alpha", 1.0))),
    "Selu": _unary(_selu),
    "Celu": _unary(_celu),
    "Sigmoid": _unary(lambda x, node: F.sigmoid(x)),
    "HardSigmoid": _unary(_hard_sigmoid),
    "HardSwish": lambda node, ctx: Overwriting(F.hardswish),
    "Tanh": _unary(lambda x, node: F.tanh(x)),
    "Softplus": _unary(lambda x, node: F.softplus(x)),
    "Softsign": _unary(lambda x, node: x / (x.abs() + 1.0)),
    "Mish": _unary(lambda x, node: x * F.tanh(F.softplus(x))),
    "Gelu": _unary(lambda x, node: F.gelu(x, node.attr("approximate", "none"))),
    "Clip": clip,
    "Softmax": _softmax(F.softmax),
    "LogSoftmax": _softmax(F.log_softmax),
}
