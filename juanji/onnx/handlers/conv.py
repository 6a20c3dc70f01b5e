"""Conv, ConvTranspose and the pools: ONNX window geometry mapped onto juanji's ops.

A Conv / ConvTranspose whose weight is a constant becomes an nn.Conv1d/2d or
nn.ConvTranspose1d/2d holding it as a Parameter (shared with any other node that uses the same
initializer), and runs by calling that layer, so hooks and `state_dict` see it. Padding that
a layer cannot hold (asymmetric `pads`, auto_pad SAME at stride > 1, which depends on the
input size) is applied with F.pad first. Pools take per-side padding in juanji's ops directly;
AveragePool counts only the cells inside the input unless count_include_pad=1 (ONNX's
default is 0, PyTorch's is True); LpPool is ONNX's (sum |x|^p)^(1/p).
"""

import numpy as np

from juanji import function, grad_mode
from juanji.arithmetic import strided_same_padding
from juanji.nn import functional as F
from juanji.nn import init
from juanji.nn.functional.conv import check_conv_input
from juanji.nn.layers.conv import Conv1d, Conv2d, ConvTranspose1d, ConvTranspose2d
from juanji.onnx.handlers.base import (
    Unsupported,
    as_float,
    check_rank,
    from_2d,
    spatial_pads,
    to_2d,
    torch_pad_amounts,
    window,
)
from juanji.ops import conv as conv_ops
from juanji.ops import pool as pool_ops
from juanji.tensor import Tensor


def _static_pads(node, kernel, strides, dilations):
    """The pads when they do not depend on the input size (None for SAME at stride > 1)."""
    auto = node.attr("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        if any(s != 1 for s in strides):
            return None
        return tuple(strided_same_padding(1, k, 1, d, lower=auto == "SAME_LOWER")
                     for k, d in zip(kernel, dilations))
    return spatial_pads(node, None, kernel, strides, dilations)


def _weights(node, ctx):
    """(weight, bias-name) when the weight and any bias are constants, else (None, None)."""
    w = ctx.const(node.inputs[1])
    bias = node.inputs[2] if len(node.inputs) > 2 else ""
    if w is None or (bias and ctx.const(bias) is None):
        kernel = node.attr("kernel_shape")
        if kernel is not None:
            window(node, kernel)
        return None, None
    return w, bias


def conv(node, ctx):
    groups = node.attr("group", 1)
    w, bias = _weights(node, ctx)
    if w is None:
        return lambda x, w, b=None: _conv(node, as_float(x), as_float(w),
                                          None if b is None else as_float(b), groups)
    kernel = w.shape[2:]
    strides, dilations = window(node, kernel)
    dims = len(kernel)
    static = _static_pads(node, kernel, strides, dilations)
    symmetric = static is not None and all(b == e for b, e in static)
    padding = tuple(b for b, _ in static) if symmetric else (0,) * dims
    with init.skip_init():
        layer = (Conv2d if dims == 2 else Conv1d)(
            w.shape[1] * groups, w.shape[0], kernel, strides, padding, dilations, groups,
            bias=bool(bias), dtype=w.dtype)
    layer.weight = ctx.param(node.inputs[1])
    if dims == 2 and kernel == (1, 1) and groups == 1:  # the layout BLAS reads fastest
        layer.weight.data = conv_ops.input_major(layer.weight.data)
    if bias:
        layer.bias = ctx.param(bias)
    # per-side pads at call time when the layer cannot hold them
    pads_for = None if symmetric else (
        lambda sizes: spatial_pads(node, sizes, kernel, strides, dilations))
    return ConvStep(ctx.add_layer(node, layer), pads_for, dims)


class ConvStep:
    """A Conv node with constant weights: runs its layer (after F.pad for padding the layer
    cannot hold). `with_batch_norm` runs it with an eval-mode batch norm and an activation
    after it in the same pass, for the graph (OnnxModule.forward) to use when it may. Without
    gradients, a plain layer (no hooks, no fused activation) runs by the path
    conv_ops.InferenceConv chose for the last call's geometry, kept in `_plan`."""

    def __init__(self, layer, pads_for, dims):
        # pads_for(sizes) -> per-side pads to apply with F.pad first, or None: the layer's own
        self.layer, self.pads_for, self.dims = layer, pads_for, dims
        self._plan = None  # the last call's conv_ops.InferenceConv

    def _input(self, x):
        x = as_float(x)
        check_rank(x, (self.dims + 2,), "Conv")
        if self.pads_for is not None:
            x = F.pad(x, torch_pad_amounts(self.pads_for(x.shape[2:])))
        return x

    def __call__(self, x, *_):
        if not grad_mode.is_enabled() and function._tracer is None and self.fusable(None):
            return self._run(x, None, None)  # what calling the layer computes, planned
        return self.layer(self._input(x))

    def fusable(self, activation):
        """Whether `with_batch_norm` with `activation` after the conv may stand for calling
        the layer: still a plain 2-D conv layer (fold_batch_norms or the user may have
        replaced it), with no hooks, and no fused activation of its own or that one (which
        fuse_activations sets when `activation` follows the conv; F.relu and F.hardswish then
        pass their input on)."""
        layer = self.layer.current()
        return (type(layer) is Conv2d and layer.fused_activation in (None, activation)
                and layer.padding_mode == "zeros" and not isinstance(layer.padding, str)
                and not layer._forward_hooks and not layer._forward_pre_hooks)

    def with_batch_norm(self, x, affine, activation):
        """activation(batch_norm(conv(x))) in one pass, the bits of the three steps: affine =
        (scale, shift) of an eval-mode batch norm (norm.per_channel_affine) or None (no batch
        norm), activation None, 'relu' or 'hardswish'. Only without gradients."""
        return self._run(x, affine, activation)

    def _run(self, x, affine, activation):
        """The layer's conv of x with `affine` and `activation` in its pass, without
        gradients: by the path conv_ops.InferenceConv chose for the last call's geometry
        when it has one (the same kernels as the op, without choosing them again), else by
        the op."""
        layer = self.layer.current()
        x, padding = self._input(x), tuple((p, p) for p in layer.padding)
        bias = None if layer.bias is None else layer.bias.data
        call = (x.data, layer.weight.data, bias, layer.stride, padding, layer.dilation,
                layer.groups, activation, affine is not None)
        plan = self._plan
        if plan is None or not plan.fits(*call):
            check_conv_input(x.shape, layer.weight.shape, layer.groups, padding, layer.dilation)
            plan = self._plan = conv_ops.InferenceConv(*call)
        if plan.path is not None:
            return Tensor(plan(x.data, layer.weight.data, bias, affine))
        return conv_ops.Conv2d.apply(
            x, layer.weight, layer.bias, stride=layer.stride, padding=padding,
            dilation=layer.dilation, groups=layer.groups, activation=activation, affine=affine)


def _conv(node, x, w, b, groups):
    """Conv with a runtime weight: the op with per-side padding."""
    kernel = w.shape[2:]
    strides, dilations = window(node, kernel)
    dims = len(kernel)
    check_rank(x, (dims + 2,), "Conv")
    pads = spatial_pads(node, x.shape[2:], kernel, strides, dilations)
    if dims == 1:
        strides, dilations, pads = (1, *strides), (1, *dilations), ((0, 0), *pads)
    y = conv_ops.Conv2d.apply(to_2d(x, dims), to_2d(w, dims), b, stride=strides, padding=pads,
                              dilation=dilations, groups=groups)
    return from_2d(y, dims)


def _transpose_geometry(node, sizes, kernel, strides, dilations):
    """(pads ((begin, end), ...), output_padding) of ConvTranspose for input `sizes`."""
    dims = len(kernel)
    output_padding = list(node.attr("output_padding", [0] * dims))
    full = [(sizes[a] - 1) * strides[a] + dilations[a] * (kernel[a] - 1) + 1
            for a in range(dims)]
    auto = node.attr("auto_pad", "NOTSET")
    target = node.attr("output_shape")
    if target is not None:
        target = list(target)[-dims:]
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        target = target or [sizes[a] * strides[a] for a in range(dims)]
        total = [full[a] + output_padding[a] - target[a] for a in range(dims)]
        pads = [(t // 2, t - t // 2) if auto == "SAME_UPPER" else (t - t // 2, t // 2)
                for t in total]
    elif target is not None:  # pads are ignored: the canvas is cut (or extended) at the end
        pads = [(0, 0)] * dims
        output_padding = [target[a] - full[a] for a in range(dims)]
    else:
        raw = node.attr("pads", [0] * 2 * dims)
        pads = [(raw[a], raw[a + dims]) for a in range(dims)]
    for a in range(dims):  # a negative end pad is output padding, and the other way round
        if pads[a][1] < 0:
            pads[a], output_padding[a] = (pads[a][0], 0), output_padding[a] - pads[a][1]
        if output_padding[a] < 0:
            pads[a], output_padding[a] = (pads[a][0], pads[a][1] - output_padding[a]), 0
    return tuple(pads), tuple(output_padding)


def conv_transpose(node, ctx):
    groups = node.attr("group", 1)
    w, bias = _weights(node, ctx)
    if w is None:
        return lambda x, w, b=None: _conv_transpose(
            node, as_float(x), as_float(w), None if b is None else as_float(b), groups, None)
    kernel = w.shape[2:]
    strides, dilations = window(node, kernel)
    dims = len(kernel)
    layer_pads, layer_op = (0,) * dims, (0,) * dims
    if node.attr("auto_pad", "NOTSET") == "NOTSET" and node.attr("output_shape") is None:
        pads, out_pad = _transpose_geometry(node, [1] * dims, kernel, strides, dilations)
        fits = all(op < max(s, d) for op, s, d in zip(out_pad, strides, dilations))
        if all(b == e for b, e in pads) and fits:
            layer_pads, layer_op = tuple(b for b, _ in pads), out_pad
    with init.skip_init():
        layer = (ConvTranspose2d if dims == 2 else ConvTranspose1d)(
            w.shape[0], w.shape[1] * groups, kernel, strides, layer_pads, layer_op, groups,
            bias=bool(bias), dilation=dilations, dtype=w.dtype)
    layer.weight = ctx.param(node.inputs[1])
    if bias:
        layer.bias = ctx.param(bias)
    layer = ctx.add_layer(node, layer)
    return lambda x, *_: _conv_transpose(node, as_float(x), layer.weight, layer.bias, groups,
                                         layer)


def _conv_transpose(node, x, w, b, groups, layer):
    """ConvTranspose: the layer when its geometry is this call's, else the op itself."""
    kernel = w.shape[2:]
    strides, dilations = window(node, kernel)
    dims = len(kernel)
    check_rank(x, (dims + 2,), "ConvTranspose")
    pads, out_pad = _transpose_geometry(node, x.shape[2:], kernel, strides, dilations)
    if layer is not None and pads == tuple((p, p) for p in layer.padding) and \
            out_pad == tuple(layer.output_padding):
        return layer(x)
    if dims == 1:
        strides, dilations, pads, out_pad = ((1, *strides), (1, *dilations), ((0, 0), *pads),
                                             (0, *out_pad))
    y = conv_ops.ConvTranspose2d.apply(to_2d(x, dims), to_2d(w, dims), b, stride=strides,
                                       padding=pads, output_padding=out_pad,
                                       dilation=dilations, groups=groups)
    return from_2d(y, dims)


def _pool_geometry(node, x):
    """(kernel, strides, dilations, pads) of a pool node for input x, all 2-D."""
    kernel = tuple(node.attr("kernel_shape"))
    strides, dilations = window(node, kernel)
    dims = len(kernel)
    check_rank(x, (dims + 2,), node.op_type)
    pads = spatial_pads(node, x.shape[2:], kernel, strides, dilations)
    if dims == 1:
        return (1, *kernel), (1, *strides), (1, *dilations), ((0, 0), *pads)
    return kernel, strides, dilations, pads


def _check_pool(node):
    if node.attr("kernel_shape") is None:
        raise Unsupported("kernel_shape is required")
    window(node, node.attr("kernel_shape"))


def max_pool(node, ctx):
    _check_pool(node)
    if node.attr("storage_order", 0) not in (0, 1):
        raise Unsupported(f"storage_order={node.attr('storage_order')}")
    ceil = bool(node.attr("ceil_mode", 0))
    dims = len(node.attr("kernel_shape"))
    with_indices = len(node.outputs) > 1 and node.outputs[1] != ""

    def step(x):
        x = x if isinstance(x, Tensor) else Tensor(np.asarray(x))  # integer maps pool too
        kernel, strides, dilations, pads = _pool_geometry(node, x)
        fn = pool_ops.MaxPool2d()
        y = fn.run(to_2d(x, dims), kernel=kernel, stride=strides, padding=pads,
                   dilation=dilations, ceil_mode=ceil, return_indices=with_indices)
        y = from_2d(y, dims)
        if not with_indices:
            return y
        return y, _onnx_indices(node, fn.indices(), x.shape, dims)

    return step


def _onnx_indices(node, idx, shape, dims):
    """PyTorch's per-plane h * W + w as ONNX's index into the whole (N, C, H, W) tensor."""
    idx = idx if dims == 2 else idx[:, :, 0]
    n, c, *size = shape
    planes = (np.arange(n * c) * int(np.prod(size))).reshape(n, c, *([1] * dims))
    if node.attr("storage_order", 0) == 1:  # column-major within each plane
        idx = (idx % size[-1]) * size[0] + idx // size[-1]
    return idx + planes


def average_pool(node, ctx):
    ceil = bool(node.attr("ceil_mode", 0))
    include = bool(node.attr("count_include_pad", 0))  # ONNX's default differs from PyTorch's
    if node.attr("kernel_shape") is not None and len(node.attr("kernel_shape")) == 3:
        return _average_pool_3d(node, ceil, include)
    _check_pool(node)
    dims = len(node.attr("kernel_shape"))

    def step(x):
        x = as_float(x)
        kernel, strides, dilations, pads = _pool_geometry(node, x)
        y = pool_ops.AvgPool2d.apply(to_2d(x, dims), kernel=kernel, stride=strides,
                                     padding=pads, ceil_mode=ceil, count_include_pad=include,
                                     dilation=dilations)
        return from_2d(y, dims)

    return step


def _average_pool_3d(node, ceil, include):
    """A 3-D AveragePool, x (N, C, D, H, W), as two of juanji's 2-D ones: over (H, W) with the
    depth slices as channels, then over D. An average over a box of D x H x W cells is the
    average over its depth of the averages over its rows and columns, and the cells a window
    counts (all, or none of the padding) are the product of those it counts along each axis,
    ceil_mode included, so the two pools give ONNX's result, the sums in another order.
    PyTorch exports nn.LocalResponseNorm with one: a (size, 1, 1) window over the channels of
    a 5-D view of the squares."""
    kernel = tuple(node.attr("kernel_shape"))
    strides, dilations = window(node, kernel, ranks=(3,))

    def pool(x, kernel, strides, pads, dilations):
        return pool_ops.AvgPool2d.apply(x, kernel=kernel, stride=strides, padding=pads,
                                        ceil_mode=ceil, count_include_pad=include,
                                        dilation=dilations)

    def step(x):
        x = as_float(x)
        check_rank(x, (5,), node.op_type)
        pads = spatial_pads(node, x.shape[2:], kernel, strides, dilations)
        n, c, d, h, w = x.shape
        y = pool(x.reshape(n, c * d, h, w), kernel[1:], strides[1:], pads[1:], dilations[1:])
        oh, ow = y.shape[2:]  # (N, C*D, OH, OW) -> (N, C*OH*OW, 1, D): depth last
        y = y.reshape(n, c, d, oh, ow).permute(0, 1, 3, 4, 2).reshape(n, c * oh * ow, 1, d)
        y = pool(y, (1, kernel[0]), (1, strides[0]), ((0, 0), pads[0]), (1, dilations[0]))
        return y.reshape(n, c, oh, ow, -1).permute(0, 1, 4, 2, 3)  # (N, C, OD, OH, OW)

    return step


def lp_pool(node, ctx):
    _check_pool(node)
    ceil = bool(node.attr("ceil_mode", 0))
    p = node.attr("p", 2)
    dims = len(node.attr("kernel_shape"))

    def step(x):
        x = as_float(x)
        kernel, strides, dilations, pads = _pool_geometry(node, x)
        y = pool_ops.LpPool2d.apply(to_2d(x.abs(), dims), norm_type=p, kernel=kernel,
                                    stride=strides, padding=pads, dilation=dilations,
                                    ceil_mode=ceil)
        return from_2d(y, dims)

    return step


def _global(reduce):
    def build(node, ctx):
        def step(x):
            x = as_float(x)
            check_rank(x, range(3, 9), node.op_type)
            axes = tuple(range(2, x.ndim))
            return x.mean(axes, keepdim=True) if reduce == "mean" else x.max(axes, keepdim=True)
        return step
    return build


HANDLERS = {
    "Conv": conv,
    "ConvTranspose": conv_transpose,
    "MaxPool": max_pool,
    "AveragePool": average_pool,
    "LpPool": lp_pool,
    "GlobalAveragePool": _global("mean"),
    "GlobalMaxPool": _global("max"),
}
