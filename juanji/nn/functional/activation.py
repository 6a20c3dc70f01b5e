"""Activation functions and the softmax family (PyTorch's names, argument order, defaults).

`inplace` is accepted wherever PyTorch accepts it, for compatibility. relu and hardswish act on
it: under no_grad they write over their input, as PyTorch's do; every other function, and
these two with gradients on, return a new tensor and leave their input as it was.
"""

import numbers
import warnings

from juanji.nn.args import one_of
from juanji.ops import activation
from juanji.tensor import as_tensor

__all__ = [
    "elu", "gelu", "hardsigmoid", "hardswish", "hardtanh", "leaky_relu", "log_softmax", "prelu",
    "relu", "relu6", "selu", "sigmoid", "silu", "softmax", "softplus", "tanh",
]


def _real(value, name):
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise ValueError(f"{name} must be a real number; got {value!r}")
    return float(value)


def _already_applied(input, name):
    """Whether `input` is the output of a layer with this activation fused in (see
    nn.utils.fuse_activations): it is then passed through, once (the mark is taken off, so a
    second call computes)."""
    if getattr(input, "activated", None) != name:
        return False
    input.activated = None
    return True


def relu(input, inplace=False):
    """max(x, 0); gradient 0 at x = 0. inplace=True writes the result over the input's memory
    when gradients are off (no_grad), as PyTorch's does; with gradients on it makes a new
    tensor (see ops.activation.Relu)."""
    if _already_applied(input, "relu"):
        return input
    if inplace:
        return activation.Relu.apply(input, inplace=True)
    return activation.Relu.apply(input)


def relu6(input, inplace=False):
    """min(max(x, 0), 6); gradient 0 at x = 0 and x = 6."""
    return activation.Hardtanh.apply(input, min_val=0.0, max_val=6.0)


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    """clip(x, min_val, max_val); gradient 1 strictly inside, 0 elsewhere."""
    min_val, max_val = _real(min_val, "min_val"), _real(max_val, "max_val")
    if max_val < min_val:
        raise ValueError(f"hardtanh needs min_val <= max_val; got min_val={min_val}, "
                         f"max_val={max_val}")
    return activation.Hardtanh.apply(input, min_val=min_val, max_val=max_val)


def leaky_relu(input, negative_slope=0.01, inplace=False):
    """x if x > 0 else negative_slope * x."""
    return activation.LeakyRelu.apply(input, negative_slope=_real(negative_slope,
                                                                  "negative_slope"))


def prelu(input, weight):
    """x if x > 0 else a * x with a learnable slope per channel (axis 1).

    weight: (1,) shared by every channel, or (C,) one per channel of input (N, C, *); inputs of
    rank < 2 have one channel.
    """
    input, weight = as_tensor(input), as_tensor(weight)
    if weight.ndim > 1:
        raise ValueError(f"prelu expects a weight with at most 1 dim; got shape "
                         f"{tuple(weight.shape)}")
    if input.ndim == 0:
        raise ValueError("prelu does not accept a 0-dim input")
    channels = input.shape[1] if input.ndim >= 2 else 1
    count = weight.numel()
    if count not in (1, channels):
        raise ValueError(f"prelu weight must have 1 or {channels} (input channels) elements; "
                         f"got {count}")
    shape = [1] * input.ndim
    if input.ndim >= 2:
        shape[1] = count
    return activation.PRelu.apply(input, weight.reshape(tuple(shape)))  # (1, C, 1, ...)


def elu(input, alpha=1.0, inplace=False):
    """x if x > 0 else alpha * (e^x - 1)."""
    return activation.Elu.apply(input, alpha=_real(alpha, "alpha"))


def selu(input, inplace=False):
    """scale * elu(x, alpha) with alpha = 1.6732632..., scale = 1.0507009... (Klambauer 2017)."""
    return activation.Elu.apply(input, alpha=activation.SELU_ALPHA, scale=activation.SELU_SCALE)


def gelu(input, approximate="none"):
    """x * Phi(x); approximate='tanh' uses the tanh formula of Hendrycks & Gimpel."""
    one_of(approximate, "approximate", ("none", "tanh"))
    return activation.Gelu.apply(input, approximate=approximate)


def silu(input, inplace=False):
    """x * sigmoid(x)."""
    return activation.Silu.apply(input)


def hardswish(input, inplace=False):
    """x * relu6(x + 3) / 6 (MobileNetV3). inplace=True as relu's."""
    if _already_applied(input, "hardswish"):
        return input
    if inplace:
        return activation.Hardswish.apply(input, inplace=True)
    return activation.Hardswish.apply(input)


def hardsigmoid(input, inplace=False):
    """relu6(x + 3) / 6."""
    return activation.Hardsigmoid.apply(input)


def softplus(input, beta=1.0, threshold=20.0):
    """log(1 + e^(beta x)) / beta, linear where beta * x > threshold."""
    beta = _real(beta, "beta")
    if beta == 0:
        raise ValueError("softplus needs a non-zero beta; got 0")
    return activation.Softplus.apply(input, beta=beta, threshold=_real(threshold, "threshold"))


def sigmoid(input):
    """1 / (1 + e^-x)."""
    return activation.Sigmoid.apply(input)


def tanh(input):
    """tanh(x)."""
    return activation.Tanh.apply(input)


def _softmax_dim(name, input, dim):
    """Validate dim; dim=None picks PyTorch's legacy implicit dim (0 for ranks 0, 1, 3; else 1)."""
    ndim = input.ndim
    if dim is None:
        warnings.warn(f"Implicit dimension choice for {name} is deprecated; pass dim=X",
                      UserWarning, stacklevel=3)
        return 0 if ndim in (0, 1, 3) else 1
    if not isinstance(dim, numbers.Integral) or not -max(ndim, 1) <= dim < max(ndim, 1):
        raise ValueError(f"{name} dim must be an int in [{-max(ndim, 1)}, {max(ndim, 1) - 1}] "
                         f"for an input of shape {tuple(input.shape)}; got {dim!r}")
    return int(dim) % max(ndim, 1)


def softmax(input, dim=None):
    """exp(x) / sum(exp(x)) along dim (max-shifted, finite for any finite logits)."""
    input = as_tensor(input)
    axis = _softmax_dim("softmax", input, dim)
    if input.ndim == 0:
        return activation.Softmax.apply(input.reshape(1), axis=0).reshape(())
    return activation.Softmax.apply(input, axis=axis)


def log_softmax(input, dim=None):
    """x - logsumexp(x) along dim (max-shifted, finite for any finite logits)."""
    input = as_tensor(input)
    axis = _softmax_dim("log_softmax", input, dim)
    if input.ndim == 0:
        return activation.LogSoftmax.apply(input.reshape(1), axis=0).reshape(())
    return activation.LogSoftmax.apply(input, axis=axis)
