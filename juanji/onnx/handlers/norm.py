"""BatchNormalization, InstanceNormalization, LayerNormalization and LRN.

With constant statistics and affine weights these become nn.BatchNorm2d / nn.GroupNorm /
nn.LayerNorm layers (scale and bias as Parameters, mean and variance as running buffers), so
`model.train()` normalises with batch statistics and updates the running ones. ONNX's batch
norm momentum m weights the old running value; PyTorch's (and juanji's) weights the new one,
so the layer gets momentum 1 - m. InstanceNormalization is GroupNorm with one channel per
group.
"""

import numpy as np

from juanji.nn import functional as F
from juanji.nn.layers.linear import Identity
from juanji.nn.layers.norm import BatchNorm2d, GroupNorm, LayerNorm
from juanji.onnx.handlers.base import Unsupported, as_float, check_rank, data
from juanji.tensor import Tensor


def batch_normalization(node, ctx):
    if node.opset < 9 and node.attr("spatial", 1) != 1:
        raise Unsupported("spatial=0 (per-activation statistics)")
    if sum(1 for name in node.outputs[1:] if name):
        raise Unsupported("training outputs (running mean / variance) are not produced; call "
                          "module.train() on the imported model to train its batch norms")
    eps = node.attr("epsilon", 1e-5)
    momentum = 1.0 - node.attr("momentum", 0.9)
    always_train = bool(node.attr("training_mode", 0))
    weights = [ctx.const(name) for name in node.inputs[1:5]]
    if any(w is None for w in weights):
        def runtime(x, scale, bias, mean, var):
            return F.batch_norm(as_float(x), data(mean), data(var), as_float(scale),
                                as_float(bias), training=always_train, eps=eps)
        return runtime
    scale, _, mean, _ = weights
    layer = BatchNorm2d(scale.shape[0], eps=eps, momentum=min(max(momentum, 0.0), 1.0),
                        dtype=scale.dtype)
    layer.weight, layer.bias = ctx.param(node.inputs[1]), ctx.param(node.inputs[2])
    layer.running_mean = Tensor(np.array(mean, dtype=scale.dtype))
    layer.running_var = Tensor(np.array(weights[3], dtype=scale.dtype))
    return BatchNormStep(ctx.add_layer(node, layer), always_train)


class BatchNormStep:
    """A BatchNormalization node with constant weights and statistics: runs its layer (4-D
    input) or F.batch_norm with the layer's state. `eval_affine` gives the (scale, shift) a
    conv before it applies in its own pass instead (see ConvStep.with_batch_norm), when the
    layer normalises with its running statistics."""

    def __init__(self, layer, always_train):
        self.layer, self.always_train = layer, always_train

    def __call__(self, x, *_):
        layer = self.layer
        x = as_float(x)
        check_rank(x, range(2, 9), "BatchNormalization")
        if x.ndim == 4 and not self.always_train:
            return layer(x)
        training = layer.training or self.always_train
        return F.batch_norm(x, layer.running_mean, layer.running_var, layer.weight, layer.bias,
                            training, layer.momentum, layer.eps)

    def eval_affine(self, dtype):
        """(scale, shift) in `dtype` when the layer is still an eval-mode BatchNorm2d with
        running statistics, no hooks and no fused activation of its own, else None."""
        layer = self.layer.current()
        if (type(layer) is not BatchNorm2d or self.always_train
                or layer.fused_activation is not None
                or layer._forward_hooks or layer._forward_pre_hooks):
            return None
        return layer.eval_affine(dtype)

    def folded(self):
        """Whether fold_batch_norms has put an Identity without hooks in the layer's place (its
        affine is now in the conv before it, so a fused conv skips this step)."""
        layer = self.layer.current()
        return (type(layer) is Identity and not layer._forward_hooks
                and not layer._forward_pre_hooks)


def instance_normalization(node, ctx):
    eps = node.attr("epsilon", 1e-5)
    scale, bias = ctx.const(node.inputs[1]), ctx.const(node.inputs[2])
    if scale is None or bias is None:
        def runtime(x, scale, bias):
            x = as_float(x)
            return F.group_norm(x, x.shape[1], as_float(scale), as_float(bias), eps)
        return runtime
    layer = GroupNorm(scale.shape[0], scale.shape[0], eps=eps, dtype=scale.dtype)
    layer.weight, layer.bias = ctx.param(node.inputs[1]), ctx.param(node.inputs[2])
    layer = ctx.add_layer(node, layer)

    def step(x, *_):
        x = as_float(x)
        check_rank(x, range(3, 9), "InstanceNormalization")
        return layer(x)

    return step


def layer_normalization(node, ctx):
    """y = (x - mean) / sqrt(var + eps) * scale + B over the axes from `axis` on; the
    optional Mean and InvStdDev outputs carry no gradient."""
    axis, eps = node.attr("axis", -1), node.attr("epsilon", 1e-5)
    scale = ctx.const(node.inputs[1])
    bias_name = node.inputs[2] if len(node.inputs) > 2 else ""
    bias = ctx.const(bias_name) if bias_name else None
    layer = None
    if scale is not None and (not bias_name or bias is not None) and axis < 0 and \
            scale.ndim == -axis and (bias is None or bias.shape == scale.shape):
        layer = LayerNorm(scale.shape, eps=eps, bias=bias is not None, dtype=scale.dtype)
        layer.weight = ctx.param(node.inputs[1])
        if bias is not None:
            layer.bias = ctx.param(bias_name)
        layer = ctx.add_layer(node, layer)

    def step(x, scale, bias=None):
        x = as_float(x)
        start = axis % x.ndim
        shape = x.shape[start:]
        if layer is not None and tuple(layer.normalized_shape) == shape:
            y = layer(x)
        else:
            y = F.layer_norm(x, shape, None, None, eps) * as_float(scale, x)
            y = y if bias is None else y + as_float(bias, x)
        if len(node.outputs) == 1:
            return y
        axes = tuple(range(start, x.ndim))
        mean = x.data.mean(axis=axes, keepdims=True)
        inv_std = 1 / np.sqrt(((x.data - mean) ** 2).mean(axis=axes, keepdims=True) + eps)
        return y, mean.astype(x.dtype), inv_std.astype(x.dtype)

    return step


def lrn(node, ctx):
    """Odd windows are centred, as in juanji's (PyTorch's) local_response_norm. An even one
    reads channels c - (size-1)//2 .. c + size//2 in ONNX, one channel later than PyTorch's
    c - size//2 .. c + (size-1)//2; reversing the channels mirrors one window into the other,
    so that case runs local_response_norm between two channel flips (both differentiable)."""
    size = node.attr("size")
    alpha, beta, bias = node.attr("alpha", 1e-4), node.attr("beta", 0.75), node.attr("bias", 1.0)
    flip = (slice(None), slice(None, None, -1))  # reverses axis 1, the channels

    def step(x):
        x = as_float(x)
        if size % 2:
            return F.local_response_norm(x, size, alpha, beta, bias)
        return F.local_response_norm(x[flip], size, alpha, beta, bias)[flip]

    return step


HANDLERS = {
    "BatchNormalization": batch_normalization,
    "InstanceNormalization": instance_normalization,
    "LayerNormalization": layer_normalization,
    "LRN": lrn,
}
