"""Activation layers: hold the options, call nn.functional.

`inplace` is accepted where PyTorch accepts it; ReLU and Hardswish act on it (under no_grad
they write over their input, as PyTorch's do); the others never mutate their input.
"""

import numpy as np

from juanji.nn import functional as F
from juanji.nn.args import one_of, single
from juanji.nn.module import Module, Parameter

__all__ = [
    "ELU", "GELU", "Hardsigmoid", "Hardswish", "Hardtanh", "LeakyReLU", "LogSoftmax", "PReLU",
    "ReLU", "ReLU6", "SELU", "SiLU", "Sigmoid", "Softmax", "Softplus", "Tanh",
]


class _Inplace(Module):
    """Base of the activations that take only `inplace` (ReLU's and Hardswish's act on it)."""

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


def mark_activated(tensor, activation):
    """Mark the output of a layer with an activation fused in (`fused_activation`, see
    nn.utils.fuse_activations): F.relu or F.hardswish, whichever it is, then passes it through
    once. Returns it."""
    tensor.activated = activation
    return tensor


class ReLU(_Inplace):
    """max(x, 0). inplace=True: under no_grad the result is written over x's memory, as
    PyTorch's ReLU(inplace=True) does (see F.relu); with gradients on, a new tensor."""

    def forward(self, x):
        return F.relu(x, inplace=self.inplace)


class ReLU6(_Inplace):
    """min(max(x, 0), 6)."""

    def forward(self, x):
        return F.relu6(x)


class Hardtanh(Module):
    """clip(x, min_val, max_val)."""

    def __init__(self, min_val=-1.0, max_val=1.0, inplace=False):
        super().__init__()
        if max_val < min_val:
            raise ValueError(f"Hardtanh needs min_val <= max_val; got min_val={min_val}, "
                             f"max_val={max_val}")
        self.min_val, self.max_val, self.inplace = min_val, max_val, inplace

    def forward(self, x):
        return F.hardtanh(x, self.min_val, self.max_val)

    def extra_repr(self):
        return f"min_val={self.min_val}, max_val={self.max_val}"


class LeakyReLU(Module):
    """x if x > 0 else negative_slope * x."""

    def __init__(self, negative_slope=0.01, inplace=False):
        super().__init__()
        self.negative_slope, self.inplace = negative_slope, inplace

    def forward(self, x):
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class PReLU(Module):
    """x if x > 0 else a * x, a learnable: weight (num_parameters,) filled with `init`.

    num_parameters is 1 (one slope shared by all channels) or C (one per channel, axis 1).
    """

    def __init__(self, num_parameters=1, init=0.25, dtype=np.float32):
        super().__init__()
        self.num_parameters = single(num_parameters, "num_parameters")
        self.init = init
        self.weight = Parameter(np.full(self.num_parameters, init, dtype=dtype))

    def reset_parameters(self):
        self.weight.data[...] = self.init

    def forward(self, x):
        return F.prelu(x, self.weight)

    def extra_repr(self):
        return f"num_parameters={self.num_parameters}"


class ELU(Module):
    """x if x > 0 else alpha * (e^x - 1)."""

    def __init__(self, alpha=1.0, inplace=False):
        super().__init__()
        self.alpha, self.inplace = alpha, inplace

    def forward(self, x):
        return F.elu(x, self.alpha)

    def extra_repr(self):
        return f"alpha={self.alpha}"


class SELU(_Inplace):
    """scale * elu(x, alpha), the self-normalising constants of Klambauer et al. (2017)."""

    def forward(self, x):
        return F.selu(x)


class GELU(Module):
    """x * Phi(x); approximate='tanh' for the tanh formula."""

    def __init__(self, approximate="none"):
        super().__init__()
        self.approximate = one_of(approximate, "approximate", ("none", "tanh"))

    def forward(self, x):
        return F.gelu(x, self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class SiLU(_Inplace):
    """x * sigmoid(x)."""

    def forward(self, x):
        return F.silu(x)


class Hardswish(_Inplace):
    """x * relu6(x + 3) / 6. inplace=True as ReLU's."""

    def forward(self, x):
        return F.hardswish(x, inplace=self.inplace)


class Hardsigmoid(_Inplace):
    """relu6(x + 3) / 6."""

    def forward(self, x):
        return F.hardsigmoid(x)


class Softplus(Module):
    """log(1 + e^(beta x)) / beta, linear where beta * x > threshold."""

    def __init__(self, beta=1.0, threshold=20.0):
        super().__init__()
        if beta == 0:
            raise ValueError("Softplus needs a non-zero beta; got 0")
        self.beta, self.threshold = beta, threshold

    def forward(self, x):
        return F.softplus(x, self.beta, self.threshold)

    def extra_repr(self):
        return f"beta={self.beta}, threshold={self.threshold}"


class Sigmoid(Module):
    """1 / (1 + e^-x)."""

    def forward(self, x):
        return F.sigmoid(x)


class Tanh(Module):
    """tanh(x)."""

    def forward(self, x):
        return F.tanh(x)


class Softmax(Module):
    """Softmax along `dim` (None: PyTorch's legacy implicit choice, with a warning)."""

    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return F.softmax(x, self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Module):
    """log(softmax(x)) along `dim`, computed max-shifted."""

    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return F.log_softmax(x, self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"
