"""Padding layers: F.pad with a fixed mode. `padding` is an int (all four sides) or PyTorch's
4-tuple (left, right, top, bottom), stored as the 4-tuple."""

import numbers

from juanji.nn import functional as F
from juanji.nn.module import Module

__all__ = ["ConstantPad2d", "ReflectionPad2d", "ReplicationPad2d", "ZeroPad2d"]


def _quadruple(padding):
    if isinstance(padding, numbers.Integral) and not isinstance(padding, bool):
        return (int(padding),) * 4
    items = tuple(padding) if isinstance(padding, (tuple, list)) else ()
    if len(items) != 4 or not all(isinstance(p, numbers.Integral) and not isinstance(p, bool)
                                  for p in items):
        raise ValueError(f"padding must be an int or 4 ints (left, right, top, bottom); got "
                         f"{padding!r}")
    return tuple(int(p) for p in items)


class _Pad2d(Module):
    mode = "constant"

    def __init__(self, padding):
        super().__init__()
        self.padding = _quadruple(padding)

    def forward(self, x):
        return F.pad(x, self.padding, mode=self.mode)

    def extra_repr(self):
        return f"{self.padding}"


class ConstantPad2d(_Pad2d):
    """Pad H and W with `value`: (N, C, H, W) -> (N, C, H + top + bottom, W + left + right).
    Negative amounts crop."""

    def __init__(self, padding, value):
        super().__init__(padding)
        self.value = float(value)

    def forward(self, x):
        return F.pad(x, self.padding, mode="constant", value=self.value)

    def extra_repr(self):
        return f"padding={self.padding}, value={self.value}"


class ZeroPad2d(ConstantPad2d):
    """Pad H and W with zeros (ConstantPad2d(padding, 0))."""

    def __init__(self, padding):
        super().__init__(padding, 0.0)


class ReflectionPad2d(_Pad2d):
    """Pad H and W by mirroring without repeating the edge ([1 2 3] -> 2 1 2 3 2 1); each
    amount must be smaller than the padded axis."""

    mode = "reflect"


class ReplicationPad2d(_Pad2d):
    """Pad H and W by repeating the edge cells ([1 2 3] -> 1 1 2 3 3 3)."""

    mode = "replicate"
