"""Ops that move data without arithmetic: reshape, permute, index, concat, stack, pad, expand."""

import numbers

from juanji.backend import xp_of
from juanji.function import Function, unbroadcast
from juanji.ops.kernels import is_channels_last


class Reshape(Function):
    """View `x` with a new shape (one entry may be -1)."""

    def forward(self, x, shape):
        self.shape = x.shape
        try:
            return x.reshape(shape)
        except ValueError:
            raise ValueError(f"cannot reshape a tensor of shape {tuple(x.shape)} ({x.size} "
                             f"elements) into {tuple(shape)}") from None

    def backward(self, gy):
        return gy.reshape(self.shape)


class Permute(Function):
    """Reorder axes: y = x.transpose(axes)."""

    def forward(self, x, axes):
        self.axes = axes
        return x.transpose(axes)

    def backward(self, gy):
        inverse = [0] * len(self.axes)
        for i, a in enumerate(self.axes):
            inverse[a] = i
        return gy.transpose(inverse)


class Expand(Function):
    """Broadcast `x` to `shape` (a read-only view); the gradient sums back."""

    def forward(self, x, shape):
        self.shape = x.shape
        return xp_of(x).broadcast_to(x, shape)

    def backward(self, gy):
        return unbroadcast(gy, self.shape)


class GetItem(Function):
    """x[index] for basic and advanced NumPy indexing; repeated indices accumulate."""

    def forward(self, x, index):
        self.shape, self.dtype, self.index = x.shape, x.dtype, index
        # the gradient takes x's memory order when x is channels-last (a conv's or a residual
        # block's output), so autograd adds it to x's other gradients reading both in one
        # order (ResNet-20's option-A shortcuts, x[:, :, ::2, ::2]: 3.1 -> 1.2 and 5.2 -> 2.2 ms)
        self.channels_last = x.ndim == 4 and is_channels_last(x)
        return x[index]

    def backward(self, gy):
        xp = xp_of(gy)
        if self.channels_last:
            n, c, h, w = self.shape
            gx = xp.zeros((n, h, w, c), dtype=gy.dtype).transpose(0, 3, 1, 2)  # (N, C, H, W)
        else:
            gx = xp.zeros(self.shape, dtype=gy.dtype)
        if _is_basic(self.index):  # slices and ints select each cell at most once
            gx[self.index] = gy
        else:
            xp.add.at(gx, self.index, gy)
        return gx


def _is_basic(index):
    """True for NumPy basic indexing (ints, slices, None, Ellipsis): no cell is picked twice."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(isinstance(p, (numbers.Integral, slice, type(None), type(Ellipsis)))
               and not isinstance(p, bool) for p in parts)


class Concat(Function):
    """Join arrays along `axis`.

    Channel concatenation (axis 1) of NCHW views of channels-last memory, as DenseNet and
    Inception blocks do with conv outputs, joins the channels-last arrays along their last
    axis, so the result is channels-last too and the batch norm or conv after it needs no copy.
    """

    def forward(self, *xs, axis=0):
        xp = xp_of(xs[0])
        self.axis = axis
        self.bounds = []
        start = 0
        for x in xs:
            self.bounds.append((start, start + x.shape[axis]))
            start += x.shape[axis]
        if axis in (1, -3) and all(x.ndim == 4 and is_channels_last(x) for x in xs):
            joined = xp.concatenate([x.transpose(0, 2, 3, 1) for x in xs], axis=3)
            return joined.transpose(0, 3, 1, 2)  # NCHW view of (N, H, W, C1+C2+...)
        return xp.concatenate(xs, axis=axis)

    def backward(self, gy):
        grads = []
        for lo, hi in self.bounds:
            index = [slice(None)] * gy.ndim
            index[self.axis] = slice(lo, hi)
            grads.append(gy[tuple(index)])
        return tuple(grads)


class Stack(Function):
    """Stack same-shaped arrays along a new `axis`."""

    def forward(self, *xs, axis=0):
        self.axis, self.count = axis, len(xs)
        return xp_of(xs[0]).stack(xs, axis=axis)

    def backward(self, gy):
        xp = xp_of(gy)
        return tuple(xp.take(gy, i, axis=self.axis) for i in range(self.count))


class Pad(Function):
    """Constant padding; `pad` is NumPy-style ((before, after), ...) per axis, non-negative."""

    def forward(self, x, pad, value=0.0):
        self.index = tuple(slice(lo, lo + n) for (lo, _), n in zip(pad, x.shape))
        return xp_of(x).pad(x, pad, mode="constant", constant_values=value)

    def backward(self, gy):
        return gy[self.index]
