"""Normalisation functions: batch_norm, layer_norm, group_norm, local_response_norm."""

import math
import numbers

from juanji.nn.args import one_of, single
from juanji.ops import norm
from juanji.tensor import as_tensor

__all__ = ["batch_norm", "group_norm", "layer_norm", "local_response_norm"]


def _check_eps(eps, positive):
    if not isinstance(eps, numbers.Real) or eps < 0 or (positive and eps == 0):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"eps must be a number {bound}; got {eps!r}")
    return float(eps)


def _check_vector(value, name, count):
    """None, or a 1-D tensor of `count` elements."""
    if value is None:
        return None
    value = as_tensor(value)
    if value.shape != (count,):
        raise ValueError(f"{name} must have shape ({count},); got {tuple(value.shape)}")
    return value


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5, *, fused_activation=None):
    """Normalise each channel of input (N, C, *) by batch or running statistics.

    training=True: normalise with the batch mean and biased variance over N and the spatial
    axes; if running_mean / running_var are given, update them in place:
    running = (1 - momentum) * running + momentum * batch, with the unbiased (n / (n - 1))
    batch variance, as PyTorch does. training=False: normalise with the running statistics.
    fused_activation='relu' (juanji's own, not PyTorch's) returns relu(batch_norm(...))
    computed in the same pass, bit-identical to F.relu after it.
    """
    input = as_tensor(input)
    if input.ndim < 2:
        raise ValueError(f"batch_norm expects an (N, C, *) input; got shape {tuple(input.shape)}")
    count = input.shape[0] * math.prod(input.shape[2:])
    if training and count == 1:
        raise ValueError(f"Expected more than 1 value per channel when training, got input "
                         f"size {list(input.shape)}")
    eps = _check_eps(eps, positive=training)
    c = input.shape[1]
    running_mean = _check_vector(running_mean, "running_mean", c)
    running_var = _check_vector(running_var, "running_var", c)
    weight, bias = _check_vector(weight, "weight", c), _check_vector(bias, "bias", c)
    if not training and (running_mean is None or running_var is None):
        raise ValueError("batch_norm with training=False needs running_mean and running_var")
    fn = norm.BatchNorm()
    out = fn.run(input, weight, bias,
                 mean=None if training else running_mean.data,
                 var=None if training else running_var.data, eps=eps, training=training,
                 activation=one_of(fused_activation, "fused_activation", (None, "relu")))
    # an empty batch (N = 0) normalises nothing and leaves the running statistics, as PyTorch
    if training and running_mean is not None and count > 0:
        m = float(momentum)
        rm = running_mean.data
        rm[...] = (1 - m) * rm + m * fn.batch_mean.astype(rm.dtype, copy=False)
    if training and running_var is not None and count > 0:
        m = float(momentum)
        rv = running_var.data
        unbiased = fn.batch_var.astype(rv.dtype, copy=False) * rv.dtype.type(count / (count - 1))
        rv[...] = (1 - m) * rv + m * unbiased
    return out


def _normalized_shape(normalized_shape):
    if isinstance(normalized_shape, numbers.Integral):
        normalized_shape = (normalized_shape,)
    shape = tuple(normalized_shape)
    if not shape or not all(isinstance(n, numbers.Integral) and n >= 1 for n in shape):
        raise ValueError(f"normalized_shape must be a positive int or a non-empty sequence of "
                         f"them; got {normalized_shape!r}")
    return tuple(int(n) for n in shape)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Normalise over the trailing dims equal to normalized_shape; weight/bias of that shape."""
    input = as_tensor(input)
    shape = _normalized_shape(normalized_shape)
    if input.shape[input.ndim - len(shape):] != shape or input.ndim < len(shape):
        raise ValueError(f"layer_norm with normalized_shape={list(shape)} expects input of shape "
                         f"[*, {', '.join(map(str, shape))}]; got {list(input.shape)}")
    for name, value in (("weight", weight), ("bias", bias)):
        if value is not None and tuple(value.shape) != shape:
            raise ValueError(f"layer_norm {name} must have shape {shape}; got "
                             f"{tuple(value.shape)}")
    return norm.LayerNorm.apply(input, weight, bias, ndim=len(shape),
                                eps=_check_eps(eps, positive=False))


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    """Normalise input (N, C, *) over groups of C / num_groups channels and all positions."""
    input = as_tensor(input)
    num_groups = single(num_groups, "num_groups")
    if input.ndim < 2:
        raise ValueError(f"group_norm expects an (N, C, *) input; got shape {tuple(input.shape)}")
    c = input.shape[1]
    if c % num_groups:
        raise ValueError(f"group_norm needs the channel count divisible by num_groups; got "
                         f"input of shape {tuple(input.shape)} and num_groups={num_groups}")
    weight, bias = _check_vector(weight, "weight", c), _check_vector(bias, "bias", c)
    return norm.GroupNorm.apply(input, weight, bias, groups=num_groups,
                                eps=_check_eps(eps, positive=False))


def local_response_norm(input, size, alpha=1e-4, beta=0.75, k=1.0):
    """x / (k + alpha/size * sum of x^2 over `size` neighbouring channels) ** beta.

    input: (N, C, *) with at least one spatial dim; the channel window is zero padded and the
    sum always divided by `size`, as in PyTorch (AlexNet used size=5, alpha=1e-4, beta=0.75,
    k=2).
    """
    input = as_tensor(input)
    size = single(size, "size")
    if input.ndim < 3:
        raise ValueError(f"local_response_norm expects an input with 3 or more dims "
                         f"(N, C, *); got shape {tuple(input.shape)}")
    return norm.LocalResponseNorm.apply(input, size=size, alpha=float(alpha), beta=float(beta),
                                        k=float(k))
