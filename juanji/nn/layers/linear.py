"""Fully connected layers and shape-only layers."""

import numpy as np

from juanji.nn import functional as F
from juanji.nn.args import single
from juanji.nn.init import default_layer_init_
from juanji.nn.module import Module, Parameter
from juanji.ops.memory import check_fits

__all__ = ["Flatten", "Identity", "Linear"]


class Linear(Module):
    """y = x W^T + b.  x: (*, in_features) -> (*, out_features); weight (out, in)."""

    floating_input = True

    def __init__(self, in_features, out_features, bias=True, dtype=np.float32):
        super().__init__()
        self.in_features = single(in_features, "in_features")
        self.out_features = single(out_features, "out_features")
        check_fits((out_features, in_features), dtype,
                   f"in_features={in_features}, out_features={out_features}", kind="weight")
        self.weight = Parameter(np.empty((out_features, in_features), dtype=dtype))
        self.bias = Parameter(np.empty(out_features, dtype=dtype)) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        default_layer_init_(self.weight, self.bias)

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Identity(Module):
    """Returns its input unchanged (accepts and ignores any constructor arguments)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return x


class Flatten(Module):
    """Flatten dims start_dim..end_dim into one: (N, C, H, W) -> (N, C*H*W) by default."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        return F.flatten(x, self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
