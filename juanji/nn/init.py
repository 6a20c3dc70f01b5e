"""Weight initialisers with PyTorch's names and formulas; each fills a Tensor in place."""

import contextlib
import math

import numpy as np

from juanji.random import default_generator

_skipping = False  # set by skip_init()

_GAINS = {"linear": 1.0, "conv1d": 1.0, "conv2d": 1.0, "conv3d": 1.0, "conv_transpose1d": 1.0,
          "conv_transpose2d": 1.0, "sigmoid": 1.0, "tanh": 5.0 / 3, "relu": math.sqrt(2.0),
          "selu": 3.0 / 4}


def calculate_gain(nonlinearity, param=None):
    """The recommended std gain for a nonlinearity (PyTorch's table)."""
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity not in _GAINS:
        raise ValueError(f"nonlinearity must be one of {sorted(_GAINS) + ['leaky_relu']}; "
                         f"got {nonlinearity!r}")
    return _GAINS[nonlinearity]


def calculate_fan_in_and_fan_out(tensor):
    """fan_in = in_features * receptive field, fan_out = out_features * receptive field."""
    shape = tensor.shape
    if len(shape) < 2:
        raise ValueError(f"fan in/out needs a tensor with >= 2 dims; got shape {shape}")
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def _fill(tensor, values):
    tensor.data[...] = values.astype(tensor.data.dtype, copy=False)
    return tensor


def _random_dtype(tensor):
    """Draw in the tensor's own float precision (drawing float64 and casting is ~5x slower)."""
    return tensor.data.dtype if tensor.data.dtype in (np.float32, np.float64) else np.float64


@contextlib.contextmanager
def skip_init():
    """Inside the block the random initialisers leave weights as allocated (unfilled).

    For counting or tracing shapes of big models: `np.empty` memory is not touched until
    written, so building VGG-16 costs neither the time to draw 138M numbers nor the RAM.
    """
    global _skipping
    previous, _skipping = _skipping, True
    try:
        yield
    finally:
        _skipping = previous


def uniform_(tensor, a=0.0, b=1.0, generator=None):
    """U(a, b)."""
    if _skipping:
        return tensor
    rng = generator or default_generator()
    u = rng.random(tensor.shape, dtype=_random_dtype(tensor))
    return _fill(tensor, u * (b - a) + a)


def normal_(tensor, mean=0.0, std=1.0, generator=None):
    """N(mean, std^2)."""
    if _skipping:
        return tensor
    rng = generator or default_generator()
    z = rng.standard_normal(tensor.shape, dtype=_random_dtype(tensor))
    return _fill(tensor, z * std + mean)


def constant_(tensor, value):
    tensor.data[...] = value
    return tensor


def zeros_(tensor):
    return constant_(tensor, 0.0)


def ones_(tensor):
    return constant_(tensor, 1.0)


def _fan(tensor, mode):
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out'; got {mode!r}")
    return fan_in if mode == "fan_in" else fan_out


def kaiming_uniform_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """U(-bound, bound), bound = gain * sqrt(3 / fan) (He et al., 2015)."""
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / _fan(tensor, mode))
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """N(0, std^2), std = gain / sqrt(fan) (He et al., 2015)."""
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    return normal_(tensor, 0.0, std, generator)


def xavier_uniform_(tensor, gain=1.0, generator=None):
    """U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio, 2010)."""
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor, gain=1.0, generator=None):
    """N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator)


def default_layer_init_(weight, bias=None):
    """PyTorch's Linear/Conv default: kaiming_uniform_(a=sqrt(5)), bias U(+-1/sqrt(fan_in))."""
    kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in, _ = calculate_fan_in_and_fan_out(weight)
        bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        uniform_(bias, -bound, bound)
