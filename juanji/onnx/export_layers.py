"""ONNX emitters for juanji's layer ops: convolution, normalisation, activations, pooling.

`emit(graph, call) -> output value name` writes the ONNX nodes that compute what the op
computed (exporter.py defines `graph` and `call`; export_ops.py holds the registry). Padding is
((top, bottom), (left, right)) in juanji and [top, left, bottom, right] in ONNX.
"""

import numpy as np

from juanji.ops import activation, conv, norm, pool


def _sides(padding):
    """(PH, PW) or ((top, bottom), (left, right)) -> ONNX pads [top, left, bottom, right]."""
    (top, bottom), (left, right) = pool._sides(padding)
    return [int(top), int(left), int(bottom), int(right)]


def int_list(values):
    """Python ints for an ONNX ints attribute (NumPy integers are refused there)."""
    return [int(v) for v in values]


# ---- convolution and normalisation ------------------------------------------------------
def _conv(g, call, op, **extra):
    """Conv / ConvTranspose: x, weight and the optional bias; the geometry as attributes."""
    p = call.params
    inputs = [g.value(t) for t in call.inputs if t is not None]
    return g.node(op, inputs, kernel_shape=int_list(call.inputs[1].shape[2:]),
                  strides=int_list(p.get("stride", (1, 1))),
                  pads=_sides(p.get("padding", conv._NO_PAD)),
                  dilations=int_list(p.get("dilation", (1, 1))), group=int(p.get("groups", 1)),
                  **extra)


def _fused_activation(g, call, out):
    """An activation fused into the op (see nn.utils.fuse_activations) is its own ONNX node."""
    kind = call.params.get("activation")
    if kind == "relu":
        return g.node("Relu", [out])
    if kind == "hardswish":
        return _hardswish(g, out)
    return out


def conv2d(g, call):
    return _fused_activation(g, call, _conv(g, call, "Conv"))


def conv_transpose2d(g, call):
    return _conv(g, call, "ConvTranspose",
                 output_padding=int_list(call.params.get("output_padding", (0, 0))))


def _affine(g, x, weight, bias, channels, dtype):
    """Names of the scale and shift inputs, ones / zeros where the layer has none."""
    scale = g.value(weight) if weight is not None else g.const(np.ones(channels, dtype))
    shift = g.value(bias) if bias is not None else g.const(np.zeros(channels, dtype))
    return scale, shift


def batch_norm(g, call):
    x, weight, bias = call.inputs
    p = call.params
    if p.get("training", True):
        raise ValueError(f"cannot export the batch norm in layer {call.layer}: it normalises "
                         "with batch statistics in eval mode (track_running_stats=False), "
                         "which ONNX BatchNormalization cannot express")
    scale, shift = _affine(g, x, weight, bias, x.shape[1], x.dtype)
    return _fused_activation(g, call, g.node(
        "BatchNormalization", [g.value(x), scale, shift, g.value(p["mean"]), g.value(p["var"])],
        epsilon=float(p.get("eps", 1e-5))))


def layer_norm(g, call):
    x, weight, bias = call.inputs
    ndim, eps = call.params.get("ndim", 1), float(call.params.get("eps", 1e-5))
    scale, shift = _affine(g, x, weight, bias, x.shape[-ndim:], x.dtype)
    if g.opset >= 17:
        return g.node("LayerNormalization", [g.value(x), scale, shift], axis=-ndim,
                      epsilon=eps)
    axes = list(range(-ndim, 0))
    centered = g.node("Sub", [g.value(x), g.reduce("ReduceMean", g.value(x), axes, True)])
    var = g.reduce("ReduceMean", g.node("Mul", [centered, centered]), axes, True)
    std = g.node("Sqrt", [g.node("Add", [var, g.scalar(eps, x.data)])])
    return g.node("Add", [g.node("Mul", [g.node("Div", [centered, std]), scale]), shift])


def group_norm(g, call):
    """(N, C, *) -> (N, G, -1), InstanceNormalization over each group, back, then the affine."""
    x, weight, bias = call.inputs
    groups, eps = int(call.params.get("groups", 1)), float(call.params.get("eps", 1e-5))
    c, dtype = x.shape[1], x.dtype
    grouped = g.node("Reshape", [g.value(x), g.ints([0, groups, -1])])
    normed = g.node("InstanceNormalization", [grouped, g.const(np.ones(groups, dtype)),
                                              g.const(np.zeros(groups, dtype))], epsilon=eps)
    y = g.node("Reshape", [normed, g.node("Shape", [g.value(x)])])
    per_channel = [c] + [1] * (x.ndim - 2)  # (C, 1, 1) broadcasts over (N, C, H, W)
    if weight is not None:
        y = g.node("Mul", [y, g.node("Reshape", [g.value(weight), g.ints(per_channel)])])
    if bias is not None:
        y = g.node("Add", [y, g.node("Reshape", [g.value(bias), g.ints(per_channel)])])
    return y


def local_response_norm(g, call):
    p = call.params
    size = int(p["size"])
    if size % 2 == 0:  # PyTorch's window has size//2 channels before, ONNX's (size-1)//2
        raise ValueError(f"cannot export the LocalResponseNorm in layer {call.layer}: ONNX LRN "
                         f"centres an even window differently; got size={size}")
    return g.node("LRN", [g.value(call.inputs[0])], size=size, alpha=float(p.get("alpha", 1e-4)),
                  beta=float(p.get("beta", 0.75)), bias=float(p.get("k", 1.0)))


# ---- activations --------------------------------------------------------------------------
def unary(op, **attrs):
    def emit(g, call):
        return g.node(op, [g.value(call.inputs[0])], **attrs)
    emit.__name__ = op.lower()
    return emit


def hardtanh(g, call):
    x = call.inputs[0]
    lo, hi = call.params.get("min_val", -1.0), call.params.get("max_val", 1.0)
    return g.node("Clip", [g.value(x), g.scalar(lo, x.data), g.scalar(hi, x.data)])


def leaky_relu(g, call):
    slope = float(call.params.get("negative_slope", 0.01))
    return g.node("LeakyRelu", [g.value(call.inputs[0])], alpha=slope)


def prelu(g, call):
    return g.node("PRelu", [g.value(t) for t in call.inputs])


def elu(g, call):
    alpha, scale = call.params.get("alpha", 1.0), call.params.get("scale", 1.0)
    x = g.value(call.inputs[0])
    if (alpha, scale) == (activation.SELU_ALPHA, activation.SELU_SCALE):
        return g.node("Selu", [x], alpha=float(alpha), gamma=float(scale))
    y = g.node("Elu", [x], alpha=float(alpha))
    return y if scale == 1.0 else g.node("Mul", [y, g.scalar(scale, call.inputs[0].data)])


def gelu(g, call):
    x, data = g.value(call.inputs[0]), call.inputs[0].data
    approximate = call.params.get("approximate", "none")
    if g.opset >= 20:
        return g.node("Gelu", [x], approximate=approximate)
    if approximate == "tanh":  # 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))
        cube = g.node("Mul", [g.node("Mul", [x, x]), x])
        inner = g.node("Add", [x, g.node("Mul", [cube, g.scalar(0.044715, data)])])
        t = g.node("Tanh", [g.node("Mul", [inner, g.scalar(np.sqrt(2 / np.pi), data)])])
    else:  # 0.5 x (1 + erf(x / sqrt(2)))
        t = g.node("Erf", [g.node("Div", [x, g.scalar(np.sqrt(2.0), data)])])
    half = g.node("Mul", [x, g.scalar(0.5, data)])
    return g.node("Mul", [half, g.node("Add", [t, g.scalar(1.0, data)])])


def silu(g, call):
    x = g.value(call.inputs[0])
    return g.node("Mul", [x, g.node("Sigmoid", [x])])


def _hardswish(g, x):
    if g.opset >= 14:
        return g.node("HardSwish", [x])
    return g.node("Mul", [x, g.node("HardSigmoid", [x], alpha=1 / 6, beta=0.5)])


def hardswish(g, call):
    return _hardswish(g, g.value(call.inputs[0]))


def softplus(g, call):
    x, data = g.value(call.inputs[0]), call.inputs[0].data
    beta = float(call.params.get("beta", 1.0))
    if beta == 1.0:
        return g.node("Softplus", [x])
    scaled = g.node("Softplus", [g.node("Mul", [x, g.scalar(beta, data)])])
    return g.node("Div", [scaled, g.scalar(beta, data)])


def _softmax(op):
    def emit(g, call):
        return g.node(op, [g.value(call.inputs[0])], axis=int(call.params.get("axis", -1)))
    emit.__name__ = op.lower()
    return emit


# ---- pooling ------------------------------------------------------------------------------
def _window(call):
    """(ONNX pads, ceil_mode) of a pool. ONNX's ceil_mode keeps a last window that starts in
    the bottom/right padding, which PyTorch drops; where that happens the remaining windows
    all fit in the padded input (the last start is at most size + pads - kernel - 1), so floor
    mode gives PyTorch's size and windows."""
    p = call.params
    x = call.inputs[0]
    padding = pool._sides(p.get("padding", (0, 0)))
    if not p.get("ceil_mode", False):
        return _sides(padding), 0
    onnx_out = [-(-(n + b + a - d * (k - 1) - 1) // s) + 1 for n, (b, a), k, s, d in zip(
        x.shape[2:], padding, p["kernel"], p["stride"], p.get("dilation", (1, 1)))]
    return _sides(padding), int(list(call.out.shape[2:]) == onnx_out)


def max_pool2d(g, call):
    p = call.params
    pads, ceil_mode = _window(call)
    return g.node("MaxPool", [g.value(call.inputs[0])], kernel_shape=int_list(p["kernel"]),
                  strides=int_list(p["stride"]), pads=pads,
                  dilations=int_list(p.get("dilation", (1, 1))), ceil_mode=ceil_mode)


def avg_pool2d(g, call):
    p = call.params
    dilation = int_list(p.get("dilation", (1, 1)))
    if p.get("divisor_override") is not None:
        raise ValueError(f"cannot export the average pool in layer {call.layer}: ONNX "
                         "AveragePool has no divisor_override")
    if dilation != [1, 1] and g.opset < 19:
        raise ValueError(f"cannot export the dilated average pool in layer {call.layer} at "
                         f"opset {g.opset}: AveragePool has dilations from opset 19")
    pads, ceil_mode = _window(call)
    return g.node("AveragePool", [g.value(call.inputs[0])], kernel_shape=int_list(p["kernel"]),
                  strides=int_list(p["stride"]), pads=pads, ceil_mode=ceil_mode,
                  count_include_pad=int(bool(p.get("count_include_pad", True))),
                  dilations=dilation if g.opset >= 19 else None)


def lp_pool2d(g, call):
    p = call.params
    norm_type = float(p["norm_type"])
    if norm_type != int(norm_type) or int(norm_type) % 2 or p.get("ceil_mode") \
            or tuple(p.get("dilation", (1, 1))) != (1, 1):
        raise ValueError(f"cannot export the LpPool2d in layer {call.layer}: ONNX LpPool takes "
                         f"|x| (juanji does not) and has no ceil_mode or dilation; only an even "
                         f"integer norm_type without them matches; got norm_type={norm_type}")
    return g.node("LpPool", [g.value(call.inputs[0])], p=int(norm_type),
                  kernel_shape=int_list(p["kernel"]), strides=int_list(p["stride"]),
                  pads=_sides(p.get("padding", (0, 0))))


def adaptive_avg_pool2d(g, call):
    """Global, uniform windows as AveragePool, else the window matrices:
    (Sh @ x @ Sw^T) / counts, as juanji computes it."""
    x = call.inputs[0]
    (h, w), (oh, ow) = x.shape[2:], call.params["output_size"]
    name = g.value(x)
    if (oh, ow) == (1, 1):
        return g.node("GlobalAveragePool", [name])
    if h % oh == 0 and w % ow == 0:
        return g.node("AveragePool", [name], kernel_shape=[h // oh, w // ow],
                      strides=[h // oh, w // ow])
    (sh, ch), (sw, cw) = (pool._window_matrix(np, h, oh, x.dtype),
                          pool._window_matrix(np, w, ow, x.dtype))
    rows = g.node("MatMul", [g.const(sh), name])  # (OH, H) @ (N, C, H, W)
    cells = g.node("MatMul", [rows, g.const(sw.T)])  # (N, C, OH, W) @ (W, OW)
    return g.node("Div", [cells, g.const(ch[:, None] * cw[None, :])])


def adaptive_max_pool2d(g, call):
    x = call.inputs[0]
    (h, w), (oh, ow) = x.shape[2:], call.params["output_size"]
    if (oh, ow) == (1, 1):
        return g.node("GlobalMaxPool", [g.value(x)])
    if h % oh or w % ow:
        raise ValueError(f"cannot export the adaptive max pool in layer {call.layer}: ONNX has "
                         f"no uneven windows; got input {h}x{w}, output {oh}x{ow}")
    return g.node("MaxPool", [g.value(x)], kernel_shape=[h // oh, w // ow],
                  strides=[h // oh, w // ow])


EMITTERS = {
    conv.Conv2d: conv2d,
    conv.ConvTranspose2d: conv_transpose2d,
    norm.BatchNorm: batch_norm,
    norm.LayerNorm: layer_norm,
    norm.GroupNorm: group_norm,
    norm.LocalResponseNorm: local_response_norm,
    activation.Relu: unary("Relu"),
    activation.Hardtanh: hardtanh,
    activation.LeakyRelu: leaky_relu,
    activation.PRelu: prelu,
    activation.Elu: elu,
    activation.Gelu: gelu,
    activation.Silu: silu,
    activation.Hardswish: hardswish,
    activation.Hardsigmoid: unary("HardSigmoid", alpha=1 / 6, beta=0.5),
    activation.Softplus: softplus,
    activation.Sigmoid: unary("Sigmoid"),
    activation.Tanh: unary("Tanh"),
    activation.Softmax: _softmax("Softmax"),
    activation.LogSoftmax: _softmax("LogSoftmax"),
    pool.MaxPool2d: max_pool2d,
    pool.AvgPool2d: avg_pool2d,
    pool.LpPool2d: lp_pool2d,
    pool.AdaptiveAvgPool2d: adaptive_avg_pool2d,
    pool.AdaptiveMaxPool2d: adaptive_max_pool2d,
}
