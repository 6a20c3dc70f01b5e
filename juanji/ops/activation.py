"""Pointwise activations, each with its derivative written from its own output or mask."""

from juanji.backend import xp_of
from juanji.function import Function


class Relu(Function):
    """max(x, 0); the gradient at exactly 0 is 0, as in PyTorch."""

    def forward(self, x):
        self.mask = x > 0
        return x * self.mask

    def backward(self, gy):
        return gy * self.mask


class Sigmoid(Function):
    """1 / (1 + e^-x), computed as 0.5 * (1 + tanh(x / 2)) so large |x| cannot overflow."""

    def forward(self, x):
        xp = xp_of(x)
        half = x.dtype.type(0.5)
        self.y = half * (1 + xp.tanh(half * x))
        return self.y

    def backward(self, gy):
        return gy * self.y * (1 - self.y)


class Tanh(Function):
    """tanh(x); derivative 1 - y^2."""

    def forward(self, x):
        self.y = xp_of(x).tanh(x)
        return self.y

    def backward(self, gy):
        return gy * (1 - self.y * self.y)
