"""Pooling layers (PyTorch's names, argument order and defaults).

Global average / max pooling is adaptive pooling with output size 1; GlobalAvgPool2d and
GlobalMaxPool2d are that, named, keeping the dims: (N, C, H, W) -> (N, C, 1, 1).
"""

from juanji.nn import functional as F
from juanji.nn.args import pair, single
from juanji.nn.functional.pool import _norm_type
from juanji.nn.module import Module

__all__ = [
    "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveMaxPool1d", "AdaptiveMaxPool2d",
    "AvgPool1d", "AvgPool2d", "GlobalAvgPool2d", "GlobalMaxPool2d", "LPPool1d", "LPPool2d",
    "MaxPool1d", "MaxPool2d", "MaxUnpool2d",
]


def _half_kernel_check(padding, kernel):
    if any(p > k // 2 for p, k in zip(padding, kernel)):
        raise ValueError(f"padding should be at most half of kernel_size; got "
                         f"padding={padding}, kernel_size={kernel}")


class MaxPool2d(Module):
    """Max over windows. (N, C, H, W) -> (N, C, OH, OW); stride defaults to kernel_size.

    With return_indices the forward returns (output, flat h * W + w indices) for MaxUnpool2d.
    """

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False,
                 ceil_mode=False):
        super().__init__()
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else pair(stride, "stride")
        self.padding = pair(padding, "padding", minimum=0)
        self.dilation = pair(dilation, "dilation")
        _half_kernel_check(self.padding, self.kernel_size)
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation,
                            self.ceil_mode, self.return_indices)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class MaxPool1d(Module):
    """Max over windows of (N, C, L) -> (N, C, OL); stride defaults to kernel_size."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False,
                 ceil_mode=False):
        super().__init__()
        self.kernel_size = single(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else single(stride, "stride")
        self.padding = single(padding, "padding", minimum=0)
        self.dilation = single(dilation, "dilation")
        _half_kernel_check((self.padding,), (self.kernel_size,))
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def forward(self, x):
        return F.max_pool1d(x, self.kernel_size, self.stride, self.padding, self.dilation,
                            self.ceil_mode, self.return_indices)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool2d(Module):
    """Mean over windows. (N, C, H, W) -> (N, C, OH, OW); stride defaults to kernel_size."""

    floating_input = True

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, divisor_override=None):
        super().__init__()
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else pair(stride, "stride")
        self.padding = pair(padding, "padding", minimum=0)
        _half_kernel_check(self.padding, self.kernel_size)
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad
        self.divisor_override = None if divisor_override is None else \
            single(divisor_override, "divisor_override")

    def forward(self, x):
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad, self.divisor_override)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool1d(Module):
    """Mean over windows of (N, C, L) -> (N, C, OL); stride defaults to kernel_size."""

    floating_input = True

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True):
        super().__init__()
        self.kernel_size = single(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else single(stride, "stride")
        self.padding = single(padding, "padding", minimum=0)
        _half_kernel_check((self.padding,), (self.kernel_size,))
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad

    def forward(self, x):
        return F.avg_pool1d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class LPPool2d(Module):
    """Power-average pooling (sum of x ** p over the window) ** (1 / p), as PyTorch computes it
    (see F.lp_pool2d). (N, C, H, W) -> (N, C, OH, OW); stride defaults to kernel_size."""

    floating_input = True

    def __init__(self, norm_type, kernel_size, stride=None, ceil_mode=False):
        super().__init__()
        self.norm_type = _norm_type(norm_type)
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else pair(stride, "stride")
        self.ceil_mode = ceil_mode

    def forward(self, x):
        return F.lp_pool2d(x, self.norm_type, self.kernel_size, self.stride, self.ceil_mode)

    def extra_repr(self):
        return (f"norm_type={self.norm_type}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, ceil_mode={self.ceil_mode}")


class LPPool1d(Module):
    """Power-average pooling over windows of (N, C, L) (see LPPool2d)."""

    floating_input = True

    def __init__(self, norm_type, kernel_size, stride=None, ceil_mode=False):
        super().__init__()
        self.norm_type = _norm_type(norm_type)
        self.kernel_size = single(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else single(stride, "stride")
        self.ceil_mode = ceil_mode

    def forward(self, x):
        return F.lp_pool1d(x, self.norm_type, self.kernel_size, self.stride, self.ceil_mode)

    def extra_repr(self):
        return (f"norm_type={self.norm_type}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, ceil_mode={self.ceil_mode}")


def _adaptive_size(output_size, dims):
    items = tuple(output_size) if isinstance(output_size, (tuple, list)) else (output_size,) * dims
    if len(items) != dims:
        raise ValueError(f"output_size must be an int or {dims} ints; got {output_size!r}")
    return tuple(None if v is None else single(v, "output_size") for v in items)


class AdaptiveAvgPool2d(Module):
    """Mean over PyTorch's adaptive windows: (N, C, H, W) -> (N, C, *output_size).

    output_size: an int or an (OH, OW) pair; None keeps that input size. 1 = global average.
    """

    floating_input = True

    def __init__(self, output_size):
        super().__init__()
        self.output_size = _adaptive_size(output_size, 2)

    def forward(self, x):
        return F.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class AdaptiveMaxPool2d(Module):
    """Max over PyTorch's adaptive windows: (N, C, H, W) -> (N, C, *output_size)."""

    def __init__(self, output_size, return_indices=False):
        super().__init__()
        self.output_size = _adaptive_size(output_size, 2)
        self.return_indices = return_indices

    def forward(self, x):
        return F.adaptive_max_pool2d(x, self.output_size, self.return_indices)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class AdaptiveAvgPool1d(Module):
    """Adaptive mean pooling of (N, C, L) to (N, C, output_size)."""

    floating_input = True

    def __init__(self, output_size):
        super().__init__()
        self.output_size = single(output_size, "output_size")

    def forward(self, x):
        return F.adaptive_avg_pool1d(x, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class AdaptiveMaxPool1d(Module):
    """Adaptive max pooling of (N, C, L) to (N, C, output_size)."""

    def __init__(self, output_size, return_indices=False):
        super().__init__()
        self.output_size = single(output_size, "output_size")
        self.return_indices = return_indices

    def forward(self, x):
        return F.adaptive_max_pool1d(x, self.output_size, self.return_indices)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class GlobalAvgPool2d(AdaptiveAvgPool2d):
    """Global average pooling, (N, C, H, W) -> (N, C, 1, 1): AdaptiveAvgPool2d(1), named."""

    def __init__(self):
        super().__init__(1)


class GlobalMaxPool2d(AdaptiveMaxPool2d):
    """Global max pooling, (N, C, H, W) -> (N, C, 1, 1): AdaptiveMaxPool2d(1), named."""

    def __init__(self):
        super().__init__(1)


class MaxUnpool2d(Module):
    """Partial inverse of MaxPool2d: forward(x, indices, output_size=None) puts each value at
    its recorded position in a zero map (N, C, OH, OW), OH = (H - 1) * S - 2P + K by default."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else pair(stride, "stride")
        self.padding = pair(padding, "padding", minimum=0)

    def forward(self, x, indices, output_size=None):
        return F.max_unpool2d(x, indices, self.kernel_size, self.stride, self.padding,
                              output_size)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
