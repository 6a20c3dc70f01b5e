"""Pooling: max, average and power-average over KH x KW windows, the adaptive variants, and
max-unpooling. Channels-last internally where windows are involved.

The windowed pools loop over the window taps only (KH*KW passes over the whole batch), never
over N, H or W. `padding` is ((top, bottom), (left, right)) (a (PH, PW) pair also works), so
the ONNX geometry (asymmetric pads, dilated average pooling) is expressible; the functional
layer restricts it to PyTorch's.
"""

import numpy as np

from juanji.arithmetic import adaptive_pool_bounds, pool_output_size
from juanji.backend import parallel_map, xp_of
from juanji.function import Function
from juanji.ops import compiled
from juanji.ops.kernels import pad_nhwc, sample_blocks, scatter_add_flat, window_slice


def _sides(padding):
    """(PH, PW) or ((top, bottom), (left, right)) -> ((top, bottom), (left, right))."""
    return tuple((p, p) if isinstance(p, (int, np.integer)) else tuple(p) for p in padding)


def _geometry(x, kernel, stride, padding, dilation, ceil_mode):
    """Output size and the extra bottom/right cells that ceil_mode windows need."""
    out, extra = [], []
    for size, k, s, (before, after), d in zip(x.shape[2:], kernel, stride, padding, dilation):
        o = pool_output_size(size, k, s, (before, after), d, ceil_mode)
        out.append(o)
        extra.append(max(0, (o - 1) * s + d * (k - 1) + 1 - size - before - after))
    return tuple(out), tuple(extra)


def _lowest(xp, dtype):
    """The padding value that never wins a max: -inf, or the dtype's minimum for integers."""
    if np.issubdtype(dtype, np.floating):
        return -xp.inf
    return np.iinfo(dtype).min


class MaxPool2d(Function):
    """Max over each window; padding never wins. x: (N, C, H, W) -> (N, C, OH, OW).

    Ties keep the first maximum in row-major window order; a NaN wins (the last NaN in window
    order), as PyTorch's CPU kernel does. `indices()` gives PyTorch's flat `h * W + w`
    positions for return_indices. Integer inputs work too (no gradient).
    """

    input_kinds = "fiu"

    def forward(self, x, kernel, stride, padding=(0, 0), dilation=(1, 1), ceil_mode=False,
                return_indices=False):
        xp = xp_of(x)
        padding = _sides(padding)
        out, extra = _geometry(x, kernel, stride, padding, dilation, ceil_mode)
        # the winning tap is only kept for backward or indices(): inference skips two passes
        track = return_indices or self.needs_grad[0]
        tap_type = np.min_scalar_type(kernel[0] * kernel[1] - 1)  # uint8 for windows to 16x16
        n, c = x.shape[:2]
        # Channels-first memory with nothing to pad (LeNet-5's first pool, after its
        # channels-first conv): one compiled pass over the planes as they are, along their
        # rows, the winning taps kept channels-first. Otherwise a channels-last padded copy.
        # The output is channels-last either way, as the convs after a pool take it.
        self.planes = (compiled.runs_on(compiled.max_pool_planes, x) and x.flags.c_contiguous
                       and padding == ((0, 0), (0, 0)) and extra == (0, 0))
        xpad = x if self.planes else pad_nhwc(x, *padding, value=_lowest(xp, x.dtype),
                                              extra_h=extra[0], extra_w=extra[1])
        best = xp.empty((n, *out, c), dtype=x.dtype)  # (N, OH, OW, C)
        arg_shape = (n, c, *out) if self.planes else best.shape
        arg = xp.zeros(arg_shape, dtype=tap_type) if track else None

        def pool_block(block, nan_aware=False):  # samples start:stop, in cache across taps
            start, stop = block
            best_b = best[start:stop]
            arg_b = None if arg is None else arg[start:stop]
            for i in range(kernel[0]):
                for j in range(kernel[1]):
                    rows, cols = window_slice(i, j, stride, dilation, out)
                    tap = xpad[start:stop, rows, cols, :]  # (B, OH, OW, C)
                    if i == j == 0:
                        best_b[...] = tap
                        continue
                    if not track:
                        xp.maximum(best_b, tap, out=best_b)
                        continue
                    take = tap > best_b  # strict: ties keep the first maximum
                    if nan_aware:
                        take |= xp.isnan(tap)
                        best_b[...] = xp.where(take, tap, best_b)
                    else:
                        xp.maximum(best_b, tap, out=best_b)
                    # taps come in increasing order, so the latest winner is the largest tap
                    # number: max(arg, take * tap) is a masked store without the mask
                    xp.maximum(arg_b, take * tap_type.type(i * kernel[1] + j), out=arg_b)

        blocks = sample_blocks(n, best[:1].nbytes * 4)
        if self.planes or compiled.runs_on(compiled.max_pool_rows, xpad):  # one pass per block
            tracked = arg if track else xp.zeros((1, 1, 1, c), dtype=tap_type)  # scratch
            pool = compiled.max_pool_planes if self.planes else compiled.max_pool_rows

            def pool_block(block, nan_aware=False):  # noqa: F811 (replaces the NumPy form)
                pool(xpad, best, tracked, block[0], block[1], tuple(kernel), tuple(stride),
                     tuple(dilation), track, nan_aware)

        parallel_map(pool_block, blocks)
        # np.maximum already lets a NaN win, so only the winning tap needs NaN-aware compares
        # (an extra pass per tap). A NaN in a window leaves one in the output (one sum tells;
        # a +inf/-inf pair also makes it NaN, and merely costs the redo).
        if track and np.issubdtype(x.dtype, np.floating) and bool(xp.isnan(best.sum())):
            arg[...] = 0
            parallel_map(lambda block: pool_block(block, nan_aware=True), blocks)
        # arg as (N, OH, OW, C) either way: backward and indices() read it so
        self.arg = arg.transpose(0, 2, 3, 1) if self.planes and track else arg
        self.padded_shape = (n, *x.shape[2:], c) if self.planes else xpad.shape
        self.params = (x.shape, kernel, stride, padding, dilation, out)
        return best.transpose(0, 3, 1, 2)

    def backward(self, gy):
        xp = xp_of(gy)
        x_shape, kernel, stride, padding, dilation, out = self.params
        (oh, ow), (kh, kw) = out, kernel
        tiled = tuple(stride) == tuple(kernel) and tuple(dilation) == (1, 1)
        n, c = x_shape[:2]
        covered = tiled and self.padded_shape[1:3] == (oh * kh, ow * kw)
        # every cell is written when the windows tile the whole input, else zeros first
        fresh = xp.empty if covered else xp.zeros
        if self.planes:  # channels-first, as the forward ran; the passes below take views
            gy_planes = xp.ascontiguousarray(gy)  # (N, C, OH, OW)
            dx = fresh(x_shape, dtype=gy.dtype)  # (N, C, H, W), nothing padded
            gy, dxpad = gy_planes.transpose(0, 2, 3, 1), dx.transpose(0, 2, 3, 1)
        else:
            # channels-last memory first (one copy when gy comes from a flatten, as before a
            # classifier): the passes below read it once per tap
            gy = xp.ascontiguousarray(gy.transpose(0, 2, 3, 1))  # (N, OH, OW, C)
            dxpad = fresh(self.padded_shape, dtype=gy.dtype)

        def unpool_block(block):
            start, stop = block
            gy_b, arg_b = gy[start:stop], self.arg[start:stop]
            if tiled and self.planes and compiled.runs_on(compiled.max_unpool_planes, dx):
                compiled.max_unpool_planes(gy_planes, self.arg.transpose(0, 3, 1, 2), dx,
                                           start, stop, tuple(kernel))
                return
            if tiled and not self.planes and compiled.runs_on(compiled.max_unpool_tiled, dxpad):
                compiled.max_unpool_tiled(gy, self.arg, dxpad, start, stop, tuple(kernel))
                return
            if tiled and not self.planes:  # (reshaping dxpad, a view there, would copy)
                # Windows tile the input: each cell gets one tap's gradient, written in place.
                tiles = dxpad[start:stop, : oh * kh, : ow * kw, :].reshape(-1, oh, kh, ow, kw, c)
                for i in range(kh):
                    for j in range(kw):
                        xp.multiply(gy_b, arg_b == i * kw + j, out=tiles[:, :, i, :, j, :])
                return
            for i in range(kh):
                for j in range(kw):
                    rows, cols = window_slice(i, j, stride, dilation, out)
                    dxpad[start:stop, rows, cols, :] += gy_b * (arg_b == i * kw + j)

        parallel_map(unpool_block, sample_blocks(n, oh * ow * c * gy.itemsize * 4))
        (top, _), (left, _) = padding
        h, w = x_shape[2:]
        return dxpad[:, top : top + h, left : left + w, :].transpose(0, 3, 1, 2)

    def indices(self):
        """Flat input positions h * W + w of each maximum, int64 (N, C, OH, OW)."""
        xp = xp_of(self.arg)
        x_shape, kernel, stride, ((top, _), (left, _)), dilation, (oh, ow) = self.params
        arg = self.arg.astype(xp.int64)  # the taps are stored in the smallest unsigned type
        tap_h, tap_w = arg // kernel[1], arg % kernel[1]  # (N, OH, OW, C)
        rows = xp.arange(oh)[:, None, None] * stride[0] - top + tap_h * dilation[0]
        cols = xp.arange(ow)[:, None] * stride[1] - left + tap_w * dilation[1]
        return (rows * x_shape[3] + cols).transpose(0, 3, 1, 2)


class AvgPool2d(Function):
    """Mean over each window. x: (N, C, H, W) -> (N, C, OH, OW).

    The divisor follows PyTorch: with count_include_pad the taps that land in the input or its
    padding count (ceil_mode overhang past the padding never does); without it, only the taps
    inside the input; divisor_override replaces both. Dilation (not in PyTorch's API) samples
    every D-th cell and counts taps the same way.
    """

    input_kinds = "f"

    def forward(self, x, kernel, stride, padding=(0, 0), ceil_mode=False,
                count_include_pad=True, divisor_override=None, dilation=(1, 1)):
        xp = xp_of(x)
        padding = _sides(padding)
        out, extra = _geometry(x, kernel, stride, padding, dilation, ceil_mode)
        xpad = pad_nhwc(x, *padding, extra_h=extra[0], extra_w=extra[1])  # (N, HP, WP, C)
        total = xp.zeros((x.shape[0], out[0], out[1], x.shape[1]), dtype=x.dtype)
        for i in range(kernel[0]):
            for j in range(kernel[1]):
                rows, cols = window_slice(i, j, stride, dilation, out)
                total += xpad[:, rows, cols, :]
        if divisor_override is not None:
            divisor = xp.asarray(divisor_override, dtype=x.dtype)
        else:
            counts = [_tap_counts(xp, size, o, k, s, p, d, count_include_pad)
                      for size, o, k, s, p, d in zip(x.shape[2:], out, kernel, stride, padding,
                                                     dilation)]
            divisor = (counts[0][:, None] * counts[1][None, :])[:, :, None].astype(x.dtype)
        self.divisor, self.padded_shape = divisor, xpad.shape  # divisor: (OH, OW, 1)
        self.params = (x.shape, kernel, stride, padding, dilation, out)
        return (total / divisor).transpose(0, 3, 1, 2)

    def backward(self, gy):
        xp = xp_of(gy)
        x_shape, kernel, stride, padding, dilation, out = self.params
        share = gy.transpose(0, 2, 3, 1) / self.divisor  # (N, OH, OW, C)
        dxpad = xp.zeros(self.padded_shape, dtype=gy.dtype)
        for i in range(kernel[0]):
            for j in range(kernel[1]):
                rows, cols = window_slice(i, j, stride, dilation, out)
                dxpad[:, rows, cols, :] += share
        (top, _), (left, _) = padding
        h, w = x_shape[2:]
        return dxpad[:, top : top + h, left : left + w, :].transpose(0, 3, 1, 2)


def _tap_counts(xp, size, out, kernel, stride, padding, dilation, count_include_pad):
    """Taps of each window (along one axis) that the divisor counts, by PyTorch's rule."""
    before, after = padding
    taps = (xp.arange(out) * stride - before)[:, None] + xp.arange(kernel) * dilation  # (O, K)
    lo, hi = (-before, size + after) if count_include_pad else (0, size)
    return ((taps >= lo) & (taps < hi)).sum(axis=1)


class LpPool2d(Function):
    """Power-average pooling, PyTorch's formula: y = (K * avg_pool(x ** p)) ** (1 / p) with
    K = KH * KW, i.e. (sum of x ** p) ** (1 / p) over full windows.

    No absolute value is taken (as in PyTorch): an odd p with a negative window sum gives NaN.
    With ceil_mode the clipped-window average is still multiplied by the full K. The gradient
    is 0 where the window sum is 0. x: (N, C, H, W) -> (N, C, OH, OW).
    """

    input_kinds = "f"

    def forward(self, x, norm_type, kernel, stride, padding=(0, 0), dilation=(1, 1),
                ceil_mode=False):
        p = float(norm_type)
        area = kernel[0] * kernel[1]
        self.avg = AvgPool2d()
        self.avg.needs_grad = (True,)
        s = self.avg.forward(x**p, kernel, stride, padding, ceil_mode, True, None, dilation)
        s = s * area
        with np.errstate(invalid="ignore"):
            y = s ** (1.0 / p)
        self.saved = (x, s, y, p, area)
        return y

    def backward(self, gy):
        xp = xp_of(gy)
        x, s, y, p, area = self.saved
        with np.errstate(divide="ignore", invalid="ignore"):
            gs = xp.where(s != 0, gy * y / (p * s), 0).astype(gy.dtype, copy=False)
            gpow = self.avg.backward(gs * area)
            return gpow * (p * x ** (p - 1))


class AdaptiveAvgPool2d(Function):
    """Mean over PyTorch's adaptive windows rows [floor(i*H/OH), ceil((i+1)*H/OH)) (and the
    same for columns). x: (N, C, H, W) -> (N, C, OH, OW). Uniform windows (OH divides H, OW
    divides W) are a reshape-mean; others are two 0/1 window-matrix products (exact sums)."""

    input_kinds = "f"

    def forward(self, x, output_size):
        n, c, h, w = x.shape
        oh, ow = output_size
        self.shape = x.shape
        if h % oh == 0 and w % ow == 0:
            self.windows = None
            return x.reshape(n, c, oh, h // oh, ow, w // ow).mean(axis=(3, 5))
        self.windows = (_window_matrix(xp_of(x), h, oh, x.dtype),
                        _window_matrix(xp_of(x), w, ow, x.dtype))
        (sh, ch), (sw, cw) = self.windows
        self.divisor = ch[:, None] * cw[None, :]  # (OH, OW)
        return (sh @ x @ sw.T) / self.divisor  # (OH, H) @ (N, C, H, W) @ (W, OW)

    def backward(self, gy):
        n, c, h, w = self.shape
        oh, ow = gy.shape[2:]
        if self.windows is None:
            kh, kw = h // oh, w // ow
            share = (gy / (kh * kw))[:, :, :, None, :, None]  # (N, C, OH, 1, OW, 1)
            return share.repeat(kh, axis=3).repeat(kw, axis=5).reshape(n, c, h, w)
        (sh, _), (sw, _) = self.windows
        return sh.T @ (gy / self.divisor) @ sw  # (H, OH) @ (N, C, OH, OW) @ (OW, W)


def _window_matrix(xp, size, out, dtype):
    """(out, size) 0/1 matrix of the adaptive windows along one axis, and the window sizes."""
    bounds = xp.asarray(adaptive_pool_bounds(size, out))  # (O, 2)
    cells = xp.arange(size)
    member = (cells >= bounds[:, :1]) & (cells < bounds[:, 1:])
    return member.astype(dtype), (bounds[:, 1] - bounds[:, 0]).astype(dtype)


class AdaptiveMaxPool2d(Function):
    """Max over PyTorch's adaptive windows (see AdaptiveAvgPool2d), with PyTorch's tie rules
    (first maximum, last NaN). x: (N, C, H, W) -> (N, C, OH, OW); `indices()` gives the flat
    h * W + w positions (int64) for return_indices."""

    input_kinds = "fiu"

    def forward(self, x, output_size):
        xp = xp_of(x)
        n, c, h, w = x.shape
        oh, ow = output_size
        self.shape = x.shape
        if h % oh == 0 and w % ow == 0:
            kh, kw = h // oh, w // ow
            win = x.reshape(n, c, oh, kh, ow, kw).transpose(0, 1, 2, 4, 3, 5)
            win = win.reshape(n, c, oh, ow, kh * kw)  # (N, C, OH, OW, KH*KW)
            tap = win.argmax(axis=-1)
            nan = xp.isnan(win)
            if nan.any():  # PyTorch keeps the last NaN of a window, argmax the first
                last = kh * kw - 1 - nan[..., ::-1].argmax(axis=-1)
                tap = xp.where(nan.any(axis=-1), last, tap)
            best = xp.take_along_axis(win, tap[..., None], axis=-1)[..., 0]
            rows = xp.arange(oh)[:, None] * kh + tap // kw
            cols = xp.arange(ow) * kw + tap % kw
            self.index = rows * w + cols  # (N, C, OH, OW)
            return best
        (hs, he), (ws, we) = (xp.asarray(adaptive_pool_bounds(h, oh)).T,
                              xp.asarray(adaptive_pool_bounds(w, ow)).T)
        best = index = None
        for i in range(int((he - hs).max())):
            rows = xp.minimum(hs + i, he - 1)  # (OH,)
            xrows = x[:, :, rows, :]  # (N, C, OH, W)
            for j in range(int((we - ws).max())):
                cols = xp.minimum(ws + j, we - 1)  # (OW,)
                block = xrows[:, :, :, cols]  # (N, C, OH, OW)
                flat = rows[:, None] * w + cols  # (OH, OW)
                if best is None:
                    best, index = block, xp.broadcast_to(flat, block.shape)
                    continue
                valid = ((hs + i < he)[:, None]) & ((ws + j < we)[None, :])  # (OH, OW)
                take = valid & ((block > best) | xp.isnan(block))
                best = xp.where(take, block, best)
                index = xp.where(take, flat, index)
        self.index = index.astype(xp.int64)
        return best

    def backward(self, gy):
        xp = xp_of(gy)
        n, c, h, w = self.shape
        plane = (xp.arange(n * c) * (h * w)).reshape(n, c, 1, 1)
        gx = scatter_add_flat(plane + self.index, gy, n * c * h * w)
        return gx.reshape(self.shape)

    def indices(self):
        return self.index.astype(xp_of(self.index).int64, copy=False)


class MaxUnpool2d(Function):
    """Inverse of max pooling: y.flat[plane][indices] = x, zeros elsewhere (a repeated index
    keeps the last write). x, indices: (N, C, H, W) -> (N, C, OH, OW); the gradient gathers."""

    def forward(self, x, indices, output_size):
        xp = xp_of(x)
        n, c = x.shape[:2]
        oh, ow = output_size
        index = indices.reshape(n * c, -1).astype(xp.int64, copy=False)
        if index.size and (int(index.min()) < 0 or int(index.max()) >= oh * ow):
            raise ValueError(
                f"max_unpool2d: indices must be in [0, {oh * ow}) for output size "
                f"{(oh, ow)}; found {int(index.min())}..{int(index.max())}"
            )
        y = xp.zeros((n * c, oh * ow), dtype=x.dtype)
        planes = xp.arange(n * c)[:, None]
        y[planes, index] = x.reshape(n * c, -1)
        self.saved = (planes, index, x.shape)
        return y.reshape(n, c, oh, ow)

    def backward(self, gy):
        planes, index, x_shape = self.saved
        n, c = gy.shape[:2]
        return gy.reshape(n * c, -1)[planes, index].reshape(x_shape), None
