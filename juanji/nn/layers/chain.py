"""Conv2d -> BatchNorm2d -> ReLU, the block classic CNNs repeat, in fewer passes, same bits.

`conv_bn_relu(conv, bn, relu, x)` is relu(bn(conv(x))), any one of the three None (a missing
conv: bn(x) then relu). Where nothing could tell the difference it runs fewer passes over the
activation, with the float operations of the layers called one by one:
- in eval mode without gradients, the conv's own pass applies the batch norm's running affine
  and the ReLU to each block of the product while it is in cache (`Conv2d.forward_with`);
- otherwise the ReLU runs in the pass before it: the batch norm's (forward and backward), or
  the conv's when no batch norm follows (what nn.utils.fuse_activations sets up for good).
`add_relu(a, b, relu)` is relu(a + b), a residual block's end, in one op (ops.activation.
AddRelu) under the same conditions.
"Nothing could tell" means: plain Conv2d, BatchNorm2d and ReLU layers without hooks or fused
activations of their own (fold_batch_norms' Identity, a SyncBatchNorm or a hook makes the
layers run one by one), one floating dtype throughout, and no tracer following the ops
(export and fuse_activations see every layer's op). Sequential runs each such run of its
layers through here; the zoo's ResNet blocks call both.
"""

from juanji import function, grad_mode
from juanji.nn.layers.activation import ReLU
from juanji.nn.layers.conv import Conv2d
from juanji.nn.layers.norm import BatchNorm2d
from juanji.ops.activation import AddRelu
from juanji.tensor import Tensor

__all__ = ["add_relu", "chain_at", "conv_bn_relu"]


def _plain(layer, kind):
    return (layer is None or type(layer) is kind and not layer._forward_hooks
            and not layer._forward_pre_hooks and getattr(layer, "fused_activation", None) is None)


def _one_dtype(x, conv, bn):
    dtypes = {x.dtype}
    if conv is not None:
        dtypes.add(conv.weight.dtype)
    if bn is not None:
        dtypes.update(t.dtype for t in (bn.weight, bn.running_mean) if t is not None)
    return len(dtypes) == 1 and x.dtype.kind == "f"


def conv_bn_relu(conv, bn, relu, x):
    """relu(bn(conv(x))) in fewer passes where nothing could tell (see the module's text);
    else the layers one by one."""
    if not (function._tracer is None and isinstance(x, Tensor) and x.ndim == 4
            and _plain(conv, Conv2d)
            and _plain(bn, BatchNorm2d) and _plain(relu, ReLU) and _one_dtype(x, conv, bn)
            and (conv is None or conv.padding_mode == "zeros")
            and (conv is None or bn is None or bn.num_features == conv.out_channels)):
        for layer in (conv, bn, relu):
            if layer is not None:
                x = layer(x)
        return x
    activation = None if relu is None else "relu"
    if conv is None:
        return bn.forward_with(x, activation)
    if bn is None:
        return conv.forward_with(x, activation)
    # the batch norm's running affine in the conv's pass: eval mode, no gradients
    affine = None if grad_mode.is_enabled() else bn.eval_affine(x.dtype)
    if affine is not None:
        return conv.forward_with(x, activation, affine)
    return bn.forward_with(conv.forward_with(x), activation)


def chain_at(layers, i):
    """(conv, bn, relu, n): the run of `layers` from i that conv_bn_relu takes, a Conv2d, a
    BatchNorm2d and a ReLU in that order with at least two of them (None for each one it
    lacks), and its length n; n = 0 where no such run starts. By type alone: the other
    conditions are conv_bn_relu's."""
    found, j = [], i
    for kind in (Conv2d, BatchNorm2d, ReLU):
        if j < len(layers) and type(layers[j]) is kind:
            found.append(layers[j])
            j += 1
        else:
            found.append(None)
    return (*found, j - i if j - i >= 2 else 0)


def add_relu(a, b, relu):
    """relu(a + b), `relu` a ReLU layer: one AddRelu op where nothing could tell (a plain
    ReLU without hooks, no tracer, a and b Tensors of one shape and floating dtype); else the
    sum, then the layer."""
    if (function._tracer is None and _plain(relu, ReLU) and isinstance(a, Tensor)
            and isinstance(b, Tensor) and a.shape == b.shape and a.dtype == b.dtype
            and a.dtype.kind == "f"):
        return AddRelu.apply(a, b)
    return relu(a + b)
