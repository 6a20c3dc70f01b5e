"""Convolution layers."""

import numpy as np

from juanji.nn import functional as F
from juanji.nn.args import pair, single
from juanji.nn.init import default_layer_init_
from juanji.nn.module import Module, Parameter

__all__ = ["Conv2d"]


class Conv2d(Module):
    """2-D convolution. (N, in_channels, H, W) -> (N, out_channels, OH, OW).

    weight: (out_channels, in_channels / groups, KH, KW); PyTorch's default init.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", dtype=np.float32):
        super().__init__()
        self.in_channels = single(in_channels, "in_channels")
        self.out_channels = single(out_channels, "out_channels")
        self.groups = single(groups, "groups")
        if in_channels % groups:
            raise ValueError(f"groups must divide in_channels; got in_channels={in_channels}, "
                             f"groups={groups}")
        if out_channels % groups:
            raise ValueError(f"groups must divide out_channels; got out_channels={out_channels}, "
                             f"groups={groups}")
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride = pair(stride, "stride")
        self.dilation = pair(dilation, "dilation")
        # validates padding (and 'same' with stride 1) at construction
        F.conv_padding(padding, self.kernel_size, self.dilation, self.stride)
        self.padding = padding if isinstance(padding, str) else pair(padding, "padding", 0)
        if padding_mode != "zeros":
            raise ValueError(f"padding_mode must be 'zeros'; got {padding_mode!r}")
        self.padding_mode = padding_mode
        shape = (out_channels, in_channels // groups) + self.kernel_size
        self.weight = Parameter(np.empty(shape, dtype=dtype))
        self.bias = Parameter(np.empty(out_channels, dtype=dtype)) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        default_layer_init_(self.weight, self.bias)

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                        self.groups)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, groups={self.groups}")
