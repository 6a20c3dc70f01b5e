"""Ops whose output cells copy or blend input cells picked by an index rule: border padding
(constant / reflect / replicate / circular), nearest / linear interpolation, and resampling
with a wider filter (cubic, antialiased linear or cubic).

They work on the trailing (spatial) axes of any array, so the same op serves 1-D and 2-D.
Every gather here is undone in backward by `index_add_axis` (a sort-free reduceat for the
monotone interpolation indices), never by np.add.at. The nearest and linear source-index
rules are PyTorch's, including its float32 arithmetic, so the picked cells agree exactly;
the filter taps are computed in float64 from source coordinates the caller gives.
"""

import numpy as np

from juanji.backend import xp_of
from juanji.function import Function
from juanji.ops.kernels import index_add_axis


def border_index(xp, size, before, after, mode):
    """Input index of each output cell along one axis padded by (before, after) cells.

    Output cell t reads input j = t - before, mapped into range: reflect mirrors about the
    edge cells (-1 -> 1), replicate clamps. Circular first crops (negative pads), then wraps
    around what is left, as PyTorch does.
    """
    j = xp.arange(-before, size + after)
    if mode == "reflect":
        j = xp.abs(j)
        return xp.where(j >= size, 2 * (size - 1) - j, j)
    if mode == "replicate":
        return xp.clip(j, 0, size - 1)
    lo, hi = max(0, -before), size - max(0, -after)  # circular: the kept cells [lo, hi)
    return (xp.arange(-max(0, before), hi - lo + max(0, after)) % (hi - lo)) + lo


class Pad(Function):
    """Pad (or, with negative amounts, crop) the last len(pads) axes of x.

    pads: ((before, after), ...) for the trailing axes, first entry = first of those axes;
    mode: 'constant' (fill with `value`), 'reflect', 'replicate' or 'circular'.
    """

    def forward(self, x, pads, mode="constant", value=0.0):
        xp = xp_of(x)
        lead = x.ndim - len(pads)
        self.shape, self.pads, self.mode = x.shape, pads, mode
        if mode == "constant":
            out_shape = x.shape[:lead] + tuple(
                n + b + a for n, (b, a) in zip(x.shape[lead:], pads))
            src, dst = [slice(None)] * lead, [slice(None)] * lead
            for n, (b, a) in zip(x.shape[lead:], pads):
                lo, hi = max(0, -b), n - max(0, -a)
                src.append(slice(lo, hi))
                dst.append(slice(max(0, b), max(0, b) + max(0, hi - lo)))
            self.src, self.dst = tuple(src), tuple(dst)
            y = xp.full(out_shape, value, dtype=x.dtype)
            y[self.dst] = x[self.src]
            return y
        self.index = [border_index(xp, n, b, a, mode)
                      for n, (b, a) in zip(x.shape[lead:], pads)]
        y = x
        for axis, index in enumerate(self.index, start=lead):
            y = xp.take(y, index, axis=axis)
        return y

    def backward(self, gy):
        xp = xp_of(gy)
        if self.mode == "constant":
            gx = xp.zeros(self.shape, dtype=gy.dtype)
            gx[self.src] = gy[self.dst]
            return gx
        lead = len(self.shape) - len(self.index)
        for axis in reversed(range(lead, len(self.shape))):
            gy = index_add_axis(gy, self.index[axis - lead], self.shape[axis], axis)
        return gy


def nearest_index(in_size, out_size, scale=None, exact=False):
    """PyTorch's nearest source index of each output cell along one axis (int64, (out,)).

    `scale` is the user's scale_factor (the mapping then uses 1 / scale_factor, as PyTorch
    does when it is given), else in/out. 'nearest' is floor(dst * s) computed in float32, with
    PyTorch's exact shortcuts for out == in and out == 2 * in; 'nearest-exact' (`exact`) is
    floor((dst + 0.5) * s). Both are clamped to in - 1.
    """
    dst = np.arange(out_size)
    if not exact and out_size == in_size:
        return dst
    if not exact and out_size == 2 * in_size:
        return dst >> 1
    s = _scale(in_size, out_size, scale, np.float32)
    if exact:  # (dst + 0.5) is a double in PyTorch; floorf rounds the product to float first
        src = np.floor(((dst + 0.5) * np.float64(s)).astype(np.float32))
    else:
        src = np.floor(dst.astype(np.float32) * s)
    return np.minimum(src.astype(np.int64), in_size - 1)


def linear_index(in_size, out_size, scale=None, align_corners=False, dtype=np.float32):
    """PyTorch's linear-interpolation taps along one axis: (i0, i1, w0, w1), each (out,).

    Output cell t blends input i0 (weight w0) and i1 (weight w1). The source coordinate is
    s * t with align_corners, else s * (t + 0.5) - 0.5 clamped at 0; s is (in-1)/(out-1) with
    align_corners, else 1 / scale_factor when given, else in/out. Computed in `dtype` (float32
    for float32 inputs), as PyTorch's kernel does; out == in copies.
    """
    dst = np.arange(out_size)
    if out_size == in_size:
        one = np.ones(out_size, dtype=dtype)
        return dst, dst, one, one * 0
    if align_corners:
        s = dtype(in_size - 1) / dtype(out_size - 1) if out_size > 1 else dtype(0)
        real = s * dst.astype(dtype)
    else:
        s = _scale(in_size, out_size, scale, dtype)
        if dtype == np.float32:  # PyTorch's kernel fuses s * (t + 0.5) - 0.5 into one FMA:
            # the float64 product of two float32 is exact, so this rounds once, like the FMA
            real = (np.float64(s) * (dst + 0.5) - 0.5).astype(dtype)
        else:
            real = s * (dst.astype(dtype) + dtype(0.5)) - dtype(0.5)
        real = np.maximum(real, dtype(0))
    i0 = np.minimum(np.floor(real).astype(np.int64), in_size - 1)
    w1 = np.clip(real - i0.astype(dtype), dtype(0), dtype(1)).astype(dtype)
    i1 = i0 + (i0 < in_size - 1)
    return i0, i1, (dtype(1) - w1).astype(dtype), w1


def _scale(in_size, out_size, scale, dtype):
    if scale is not None and scale > 0:
        return dtype(1.0 / scale)
    return dtype(in_size) / dtype(out_size)


class NearestResize(Function):
    """y[..., p, q] = x[..., rows[p], cols[q]] over the last one or two axes.

    index: one int array per trailing axis (from `nearest_index`). x: (N, C, *S) -> (N, C, *O).
    """

    def forward(self, x, index):
        xp = xp_of(x)
        self.shape = x.shape
        self.index = [xp.asarray(i) for i in index]
        if len(index) == 2:
            return x[..., self.index[0][:, None], self.index[1]]  # one gather, (N, C, OH, OW)
        return x[..., self.index[0]]

    def backward(self, gy):
        k = len(self.index)
        for axis in reversed(range(gy.ndim - k, gy.ndim)):
            gy = index_add_axis(gy, self.index[axis - gy.ndim + k], self.shape[axis], axis)
        return gy


class LinearResize(Function):
    """Separable linear interpolation over the last one or two axes (bilinear for two).

    taps: one (i0, i1, w0, w1) per trailing axis (from `linear_index`). The last axis is
    blended first, then the one before, so each output is
    w0h * (w0w * x[h0, w0] + w1w * x[h0, w1]) + w1h * (...), PyTorch's order of operations.
    """

    input_kinds = "f"

    def forward(self, x, taps):
        xp = xp_of(x)
        self.shape = x.shape
        self.taps = [(xp.asarray(i0), xp.asarray(i1), xp.asarray(w0, dtype=x.dtype),
                      xp.asarray(w1, dtype=x.dtype)) for i0, i1, w0, w1 in taps]
        y = x
        for axis in reversed(range(x.ndim - len(taps), x.ndim)):
            i0, i1, w0, w1 = self.taps[axis - x.ndim + len(taps)]
            shape = (-1,) + (1,) * (x.ndim - 1 - axis)  # weights broadcast along `axis`
            y = (xp.take(y, i0, axis=axis) * w0.reshape(shape)
                 + xp.take(y, i1, axis=axis) * w1.reshape(shape))
        return y

    def backward(self, gy):
        k = len(self.taps)
        for axis in range(gy.ndim - k, gy.ndim):
            i0, i1, w0, w1 = self.taps[axis - gy.ndim + k]
            shape = (-1,) + (1,) * (gy.ndim - 1 - axis)
            size = self.shape[axis]
            gy = (index_add_axis(gy * w0.reshape(shape), i0, size, axis)
                  + index_add_axis(gy * w1.reshape(shape), i1, size, axis))
        return gy


def cubic_source(in_size, out_size, scale=None, align_corners=False):
    """PyTorch's bicubic source coordinates along one axis, float64 (out,): s * t with
    align_corners (s = (in-1)/(out-1)), else s * (t + 0.5) - 0.5 with s = 1 / scale_factor
    when given, else in/out; unlike linear's, not clamped at 0 (the taps read the edge)."""
    dst = np.arange(out_size, dtype=np.float64)
    if align_corners:
        return dst * ((in_size - 1) / (out_size - 1) if out_size > 1 else 0.0)
    s = _scale(in_size, out_size, scale, np.float64)
    return s * (dst + 0.5) - 0.5


def cubic_kernel(d, a=-0.75):
    """Keys' cubic convolution kernel at distances d (float64 array): 1 at 0, 0 at every
    other integer, 0 beyond 2. a = -0.75 is PyTorch's bicubic, -0.5 Keys' and TensorFlow's."""
    d = np.abs(d)
    near = ((a + 2) * d - (a + 3)) * d * d + 1  # |d| <= 1
    far = ((a * d - 5 * a) * d + 8 * a) * d - 4 * a  # 1 < |d| < 2
    return np.where(d <= 1, near, np.where(d < 2, far, 0.0))


def triangle_kernel(d):
    """The linear-interpolation kernel max(0, 1 - |d|)."""
    return np.clip(1 - np.abs(d), 0, 1)


def filter_taps(src, size, kernel, support, antialias_scale=None, exclude_outside=False):
    """(index, weight), each (out, K): the cells that each output cell blends along one axis.

    src: (out,) source coordinates in a `size`-cell axis; kernel(d) a filter of half-width
    `support` (cubic 2, triangle 1). Output cell o reads cells floor(src) + j, j = 1 - r .. r,
    with weight kernel((cell - src) * s): s = 1 and r = support interpolate; with
    `antialias_scale` below 1 (a downscale), s is that scale, so the filter widens to
    r = ceil(support / s) cells each side, and the weights are divided by their sum (ONNX's
    antialias). Taps past the edges read the edge cell; with `exclude_outside` they get weight
    0 and the rest are rescaled to sum to 1. Weights are float64.
    """
    s = 1.0 if antialias_scale is None else min(float(antialias_scale), 1.0)
    r = -int(np.floor(-support / s))  # ceil, written as ONNX's reference computes it
    src = np.asarray(src, dtype=np.float64)
    cells = np.floor(src)[:, None] + np.arange(1 - r, r + 1)  # (out, K), K = 2r
    weight = kernel((cells - src[:, None]) * s)
    if antialias_scale is not None:
        weight = weight / weight.sum(axis=1, keepdims=True)
    if exclude_outside:
        weight = np.where((cells < 0) | (cells > size - 1), 0.0, weight)
        total = weight.sum(axis=1, keepdims=True)
        weight = weight / np.where(total == 0, 1.0, total)
    return np.clip(cells, 0, size - 1).astype(np.int64), weight


class FilterResize(Function):
    """Separable resampling of the trailing axes with a K-tap filter (cubic, antialiased):
    along each axis, y[..., o] = sum over k of weight[o, k] * x[..., index[o, k]].

    taps: one (index, weight) per trailing axis, each (O, K) (from `filter_taps`), or None for
    an axis left as it is. x: (N, C, *S) -> (N, C, *O); the last axis is resampled first.
    Backward scatters each tap's share back with `index_add_axis` (index[:, k] is monotone).
    """

    input_kinds = "f"

    def forward(self, x, taps):
        xp = xp_of(x)
        self.shape = x.shape
        self.taps = [None if tap is None else
                     (xp.asarray(tap[0]), xp.asarray(tap[1], dtype=x.dtype)) for tap in taps]
        y = x
        for axis in reversed(range(x.ndim - len(taps), x.ndim)):
            tap = self.taps[axis - x.ndim + len(taps)]
            if tap is None:
                continue
            index, weight = tap  # (O, K) each
            shape = (-1,) + (1,) * (x.ndim - 1 - axis)  # weights broadcast along `axis`
            out = xp.take(y, index[:, 0], axis=axis) * weight[:, 0].reshape(shape)
            for k in range(1, index.shape[1]):
                out += xp.take(y, index[:, k], axis=axis) * weight[:, k].reshape(shape)
            y = out
        return y

    def backward(self, gy):
        n = len(self.taps)
        for axis in range(gy.ndim - n, gy.ndim):
            tap = self.taps[axis - gy.ndim + n]
            if tap is None:
                continue
            index, weight = tap
            shape = (-1,) + (1,) * (gy.ndim - 1 - axis)
            size = self.shape[axis]
            g = index_add_axis(gy * weight[:, 0].reshape(shape), index[:, 0], size, axis)
            for k in range(1, index.shape[1]):
                g += index_add_axis(gy * weight[:, k].reshape(shape), index[:, k], size, axis)
            gy = g
        return gy
