"""Gemm and MatMul. A constant right operand becomes an nn.Linear (weight (OUT, IN)).

Gemm: Y = alpha * A' @ B' + beta * C with A' = A.T if transA, B' = B.T if transB. With a
constant B the layer's weight is B'.T; a constant C of N values (shape (N,) or (1, N)) becomes
the layer's bias beta * C when alpha is 1, otherwise C is added at call time. MatMul with a
constant 2-D B is the bias-free Linear with weight B.T (NumPy matmul rules otherwise).
"""

from juanji.nn import init
from juanji.nn.layers.linear import Linear
from juanji.onnx.handlers.base import as_float, check_rank, data, is_array


def _linear_layer(ctx, node, weight_name, weight, bias_name=None, bias=None, tag=""):
    with init.skip_init():
        layer = Linear(weight.shape[1], weight.shape[0], bias=bias is not None,
                       dtype=weight.dtype)
    layer.weight = ctx.param(weight_name, weight, tag)
    if bias is not None:
        layer.bias = ctx.param(bias_name, bias, tag)
    return ctx.add_layer(node, layer)


def gemm(node, ctx):
    alpha, beta = node.attr("alpha", 1.0), node.attr("beta", 1.0)
    trans_a, trans_b = node.attr("transA", 0), node.attr("transB", 0)
    b = ctx.const(node.inputs[1])
    c_name = node.inputs[2] if len(node.inputs) > 2 else ""
    c = ctx.const(c_name) if c_name else None
    if b is None:
        def runtime(a, b, c=None):
            a, b = as_float(a), as_float(b, a)
            a = a.T if trans_a else a
            y = (a @ (b.T if trans_b else b)) * alpha
            return y if c is None else y + as_float(c, a) * beta
        return runtime
    weight = b if trans_b else b.T  # (OUT, IN)
    fold = c is not None and alpha == 1.0 and c.size == weight.shape[0] and \
        c.shape in ((weight.shape[0],), (1, weight.shape[0]))
    tag = f"gemm transB={trans_b}"
    bias = (c.reshape(-1) * c.dtype.type(beta)) if fold else None
    layer = _linear_layer(ctx, node, node.inputs[1], weight, c_name, bias, tag)

    def step(a, *rest):
        a = as_float(a)
        check_rank(a, (2,), "Gemm")
        a = a.T if trans_a else a
        y = layer(a)
        if alpha != 1.0:
            y = y * alpha
        if rest[1:] and rest[1] is not None and not fold:
            y = y + as_float(rest[1], y) * beta
        return y

    return step


def matmul(node, ctx):
    b = ctx.const(node.inputs[1])
    if b is None or b.ndim != 2 or ctx.const(node.inputs[0]) is not None:
        def runtime(a, b):
            if is_array(a) and is_array(b):
                return data(a) @ data(b)
            a = as_float(a, b if not is_array(b) else None)
            return a @ as_float(b, a)
        return runtime
    layer = _linear_layer(ctx, node, node.inputs[1], b.T, tag="matmul")

    def step(a, _):
        a = as_float(a)
        if a.ndim == 1:
            return layer(a.unsqueeze(0)).squeeze(0)
        return layer(a)

    return step


HANDLERS = {"Gemm": gemm, "MatMul": matmul}
