"""Compiled kernels for the loops NumPy can only run as many passes: the optional fast path.

With numba installed (`pip install 'juanji[fast]'`) and the environment variable
JUANJI_COMPILED not "0", the kernels here replace a NumPy path (in `kernels.py`, max pooling
in `pool.py`, an imported graph's elementwise chains in `onnx/chains.py`); otherwise each name
is None and the NumPy path runs. The NumPy path stays the reference: every elementwise
kernel here does the same float operations in the same order (no fast-math, so no fused
multiply-adds and no reassociation), and tests/ops/test_compiled.py checks them bit for bit
against it; the sums (batch norm's statistics and gradient sums) accumulate in float64 and are
checked to float32 rounding.

Three groups of kernels compute what a GEMM computes on the NumPy path, so no NumPy pass
gives their bits: Winograd's transforms (`winograd_*`, for `kernels.conv_winograd`), the
direct conv for layers with a few channels (`direct_conv*`) and the register-blocked conv and
weight gradient (`nhwc_conv*`). tests/ops/test_conv.py checks them against float64 (Winograd
and the register-blocked kernels within their error bounds) and PyTorch, and the transforms
against NumPy passes bit for bit. The direct weight gradient is compiled with reassociation
(fast-math "reassoc") so that its dot products vectorise, and the register-blocked kernels
with fused multiply-adds (fast-math "contract").

Each kernel is compiled on its first call for the dtypes it meets (about half a second, once per
process; nothing is cached on disk) and releases the GIL, so juanji's own thread pool runs its
blocks in parallel. This is the only module that imports numba.
"""

import os

import numpy as np

njit = None
if os.environ.get("JUANJI_COMPILED", "1") != "0":
    try:
        import llvmlite.ir as llvm_ir
        from numba import njit
        from numba import types as numba_types
        from numba.core import cgutils
        from numba.core import config as numba_config
        from numba.core.compiler_lock import global_compiler_lock
        from numba.extending import intrinsic
    except ImportError:  # the NumPy path runs instead
        njit = None


def runs_on(kernel, *arrays):
    """Whether the compiled `kernel` (None without numba) runs on `arrays`: float32 or float64
    NumPy arrays (the callers fall back to their NumPy path otherwise, e.g. for CuPy arrays,
    integers or float16)."""
    return kernel is not None and all(
        isinstance(a, np.ndarray) and a.dtype in (np.float32, np.float64) for a in arrays)


def _relu_value(v, zero):
    """max(v, 0) of one value as np.maximum gives it (NaN stays NaN, -0.0 becomes 0.0): what
    every compiled ReLU writes, to match `kernels.relu_in_place` and the Relu op."""
    return v if (v > zero or v != v) else zero


if njit is not None:
    _relu_value = njit(inline="always")(_relu_value)


def _add_taps(out, x, taps, j, count, shift, fresh):
    """out[k] = ((out[k] + x_j[k] * t_j[k]) + x_j+1[k] * t_j+1[k]) ... for `count` (1 to 3)
    taps from j of one kernel row, added in order, where x_m = x[(m - j) * shift:] and t_m =
    taps[m]; fresh: the first product starts the sum instead of out. Three taps per pass read
    and write out once instead of three times."""
    width = out.shape[0]
    x0, t0 = x[:width], taps[j]
    if count == 1:
        for k in range(width):
            out[k] = x0[k] * t0[k] if fresh else out[k] + x0[k] * t0[k]
        return
    x1, t1 = x[shift : shift + width], taps[j + 1]
    if count == 2 and fresh:
        for k in range(width):
            out[k] = x0[k] * t0[k] + x1[k] * t1[k]
    elif count == 2:
        for k in range(width):
            out[k] = (out[k] + x0[k] * t0[k]) + x1[k] * t1[k]
    else:
        x2, t2 = x[2 * shift : 2 * shift + width], taps[j + 2]
        if fresh:
            for k in range(width):
                out[k] = (x0[k] * t0[k] + x1[k] * t1[k]) + x2[k] * t2[k]
        else:
            for k in range(width):
                out[k] = ((out[k] + x0[k] * t0[k]) + x1[k] * t1[k]) + x2[k] * t2[k]


def _add_pixel_taps(y, b, r, xpad, row, sw, taps, i, j, count, dw, fresh):
    """`_add_taps` for each output pixel q of row r, y[b, r, q] (C,), from the input pixels
    xpad[b, row, q * SW + (j + m) * DW] and taps[i, j + m], m < count, indexed in place:
    slicing views per pixel costs more than its few vectors of work."""
    first = j * dw
    for q in range(y.shape[2]):
        col = q * sw + first
        if fresh and count == 1:
            for c in range(y.shape[3]):
                y[b, r, q, c] = xpad[b, row, col, c] * taps[i, j, c]
        elif fresh and count == 2:
            for c in range(y.shape[3]):
                y[b, r, q, c] = (xpad[b, row, col, c] * taps[i, j, c]
                                 + xpad[b, row, col + dw, c] * taps[i, j + 1, c])
        elif fresh:
            for c in range(y.shape[3]):
                y[b, r, q, c] = ((xpad[b, row, col, c] * taps[i, j, c]
                                  + xpad[b, row, col + dw, c] * taps[i, j + 1, c])
                                 + xpad[b, row, col + 2 * dw, c] * taps[i, j + 2, c])
        elif count == 1:
            for c in range(y.shape[3]):
                y[b, r, q, c] = y[b, r, q, c] + xpad[b, row, col, c] * taps[i, j, c]
        elif count == 2:
            for c in range(y.shape[3]):
                y[b, r, q, c] = ((y[b, r, q, c] + xpad[b, row, col, c] * taps[i, j, c])
                                 + xpad[b, row, col + dw, c] * taps[i, j + 1, c])
        else:
            for c in range(y.shape[3]):
                y[b, r, q, c] = (((y[b, r, q, c] + xpad[b, row, col, c] * taps[i, j, c])
                                  + xpad[b, row, col + dw, c] * taps[i, j + 1, c])
                                 + xpad[b, row, col + 2 * dw, c] * taps[i, j + 2, c])


def _depthwise_rows(xpad, taps, bias, y, b0, b1, r0, r1, sh, sw, dh, dw):
    """Depthwise cross-correlation of samples b0:b1, output rows r0:r1, into y, one output
    pixel at a time (any stride).

    xpad: padded (N, HP, WP, C); taps: (KH, KW, C); bias: (C,) or empty; y: (N, OH, OW, C).
    Each output is the first tap's product, then each further tap's product added, taps in
    row-major order, then the bias added: what `kernels.depthwise_nhwc` and the conv's
    epilogue compute with one NumPy pass per tap and for the bias (taps in threes along a
    kernel row, see `_add_taps`). A depth multiplier above 1 keeps to the NumPy path.
    """
    kh, kw, channels = taps.shape
    for b in range(b0, b1):
        for r in range(r0, r1):
            for i in range(kh):
                for j in range(0, kw, 3):
                    _add_pixel_taps(y, b, r, xpad, r * sh + i * dh, sw, taps, i, j,
                                    min(3, kw - j), dw, i == 0 and j == 0)
            if bias.shape[0]:
                for q in range(y.shape[2]):
                    for c in range(channels):
                        y[b, r, q, c] += bias[c]


def _depthwise_row_runs(xflat, row_taps, row_bias, yflat, b0, b1, r0, r1, sh, dh, shift):
    """`_depthwise_rows` at stride 1 across, a whole output row per pass: for few channels,
    whose per-pixel runs of C values are too short to vectorise well (C = 16: 2x).

    xflat: padded (N, HP, WP*C); yflat: (N, OH, OW*C); row_taps: (KH, KW, OW*C) and row_bias:
    (OW*C,) or empty, the taps and bias repeated along the row; shift = DW*C, from one tap's
    input to the next one's. The same float operations in the same order.
    """
    kh, kw, width = row_taps.shape
    for b in range(b0, b1):
        for r in range(r0, r1):
            out = yflat[b, r]
            for i in range(kh):
                x = xflat[b, r * sh + i * dh]
                for j in range(0, kw, 3):
                    _add_taps(out, x[j * shift :], row_taps[i], j, min(3, kw - j), shift,
                              i == 0 and j == 0)
            if row_bias.shape[0]:
                for k in range(width):
                    out[k] += row_bias[k]


if njit is not None:
    _add_taps = njit(inline="always")(_add_taps)
    _add_pixel_taps = njit(inline="always")(_add_pixel_taps)


depthwise_rows = None if njit is None else njit(nogil=True, cache=False)(_depthwise_rows)
depthwise_row_runs = (None if njit is None
                      else njit(nogil=True, cache=False)(_depthwise_row_runs))


def _gate(v, three, six, zero, times_x):
    """min(max(v + 3, 0), 6) (times v when times_x) / 6 of one value, the constants in its
    dtype, with np.maximum's and np.minimum's NaN rule (a NaN operand wins): the five NumPy
    passes of `activation._gate`."""
    g = v + three
    if not (g >= zero or g != g):  # np.maximum(g, 0)
        g = zero
    if not (g <= six or g != g):  # np.minimum(g, 6)
        g = six
    if times_x:
        g = v * g
    return g / six


def _hard_gate(x, y, times_x):
    """y = the hard gate of x, elementwise over 1-D x and y (distinct arrays)."""
    three, six, zero = x.dtype.type(3), x.dtype.type(6), x.dtype.type(0)
    for k in range(x.shape[0]):
        y[k] = gate(x[k], three, six, zero, times_x)


def _hard_gate_in_place(x, times_x):
    """x = the hard gate of x, elementwise over 1-D x: one array, so LLVM vectorises the loop
    (through two names for one array it cannot rule out overlap and runs it scalar)."""
    three, six, zero = x.dtype.type(3), x.dtype.type(6), x.dtype.type(0)
    for k in range(x.shape[0]):
        x[k] = gate(x[k], three, six, zero, times_x)


# the activations `bias_then` and `affine_then` apply after the bias or the affine
# (kernels.BIAS_ACTIVATIONS names them)
BIAS_ONLY, BIAS_RELU, BIAS_HARDSWISH = 0, 1, 2


def _bias_then(rows, bias, activation):
    """rows (R, W) += bias (W,) in place, then the activation (BIAS_ONLY, BIAS_RELU or
    BIAS_HARDSWISH) of each sum: a conv epilogue's bias pass and activation pass in one, the
    same float operations (the sum rounded, then `_relu_value` or `_gate` of it)."""
    zero, three, six = rows.dtype.type(0), rows.dtype.type(3), rows.dtype.type(6)
    for r in range(rows.shape[0]):
        row = rows[r]
        if activation == BIAS_RELU:
            for k in range(row.shape[0]):
                row[k] = _relu_value(row[k] + bias[k], zero)
        elif activation == BIAS_HARDSWISH:
            for k in range(row.shape[0]):
                row[k] = gate(row[k] + bias[k], three, six, zero, True)
        else:
            for k in range(row.shape[0]):
                row[k] += bias[k]


def _affine_then(rows, scale, shift, activation):
    """rows (R, C) = rows * scale + shift per channel (C,) in place, then the activation
    (BIAS_ONLY: none, BIAS_RELU or BIAS_HARDSWISH) of each value: a conv epilogue's eval-mode
    batch norm pass (NumPy's multiply, then its add) and activation pass in one, the same
    float operations (the product rounded, the sum rounded, then `_relu_value` or `_gate`)."""
    zero, three, six = rows.dtype.type(0), rows.dtype.type(3), rows.dtype.type(6)
    for r in range(rows.shape[0]):
        row = rows[r]
        if activation == BIAS_RELU:
            for c in range(row.shape[0]):
                row[c] = _relu_value(row[c] * scale[c] + shift[c], zero)
        elif activation == BIAS_HARDSWISH:
            for c in range(row.shape[0]):
                row[c] = gate(row[c] * scale[c] + shift[c], three, six, zero, True)
        else:
            for c in range(row.shape[0]):
                row[c] = row[c] * scale[c] + shift[c]


gate = hard_gate = hard_gate_in_place = bias_then = affine_then = None
if njit is not None:
    gate = njit(inline="always")(_gate)
    hard_gate = njit(nogil=True, cache=False)(_hard_gate)
    hard_gate_in_place = njit(nogil=True, cache=False)(_hard_gate_in_place)
    bias_then = njit(nogil=True, cache=False)(_bias_then)
    affine_then = njit(nogil=True, cache=False)(_affine_then)


def _channel_sums_and_squares(x, sums, squares):
    """Batch norm's block statistics over rows x (L, C): float64 sums (C,), then float64 sums
    of squared deviations (C,) about the block's own centre, the float32 mean of the block (as
    `kernels.channel_moments` takes it). Two passes over a block that is in cache."""
    rows, channels = x.shape
    for c in range(channels):
        sums[c] = 0.0
        squares[c] = 0.0
    for r in range(rows):
        for c in range(channels):
            sums[c] += x[r, c]
    centre = (sums / rows).astype(x.dtype)
    for r in range(rows):
        for c in range(channels):
            d = x[r, c] - centre[c]
            squares[c] += float(d) * float(d)
    return centre


def _channel_grad_sums(gy, x, mean, relu_out, sums, dots):
    """sum(gy) and sum(gy * (x - mean)) per channel over rows gy, x (L, C), in float64 (C,);
    gy first masked by a fused ReLU's output (L, C) when relu_out has rows."""
    rows, channels = x.shape
    zero = gy.dtype.type(0)
    for c in range(channels):
        sums[c] = 0.0
        dots[c] = 0.0
    for r in range(rows):
        for c in range(channels):
            g = gy[r, c]
            if relu_out.shape[0] and not relu_out[r, c] > zero:
                g = g * zero
            sums[c] += g
            dots[c] += float(g) * float(x[r, c] - mean[c])


def _batch_norm_input_grad(gy, x, mean, scale, k, shift, relu_out, out):
    """out = (x - mean) * k + gy * scale + shift per channel over rows (L, C), in that order:
    `kernels.batch_norm_input_grad`'s NumPy passes in one, gy first masked by a fused ReLU's
    output as `kernels.relu_gradient` does (g * 0 where the output is not > 0: -0.0 for a
    negative g, NaN for an infinite one) when relu_out has rows."""
    rows, channels = x.shape
    zero = gy.dtype.type(0)
    for r in range(rows):
        for c in range(channels):
            g = gy[r, c]
            if relu_out.shape[0] and not relu_out[r, c] > zero:
                g = g * zero
            out[r, c] = (x[r, c] - mean[c]) * k[c] + g * scale[c] + shift[c]


def _affine(x, scale, shift, relu, out):
    """out = x * scale + shift per channel over rows (L, C), then max(., 0) when relu (NaN
    stays NaN): batch norm's forward pass, as `kernels.channel_combination` computes it."""
    rows, channels = x.shape
    zero = out.dtype.type(0)
    for r in range(rows):
        for c in range(channels):
            v = x[r, c] * scale[c] + shift[c]
            out[r, c] = _relu_value(v, zero) if relu else v


channel_sums_and_squares = channel_grad_sums = batch_norm_input_grad = affine = None
if njit is not None:
    channel_sums_and_squares = njit(nogil=True, cache=False)(_channel_sums_and_squares)
    channel_grad_sums = njit(nogil=True, cache=False)(_channel_grad_sums)
    batch_norm_input_grad = njit(nogil=True, cache=False)(_batch_norm_input_grad)
    affine = njit(nogil=True, cache=False)(_affine)


def _max_pool_rows(xpad, best, arg, b0, b1, kernel, stride, dilation, track, nan_aware):
    """Max pooling of samples b0:b1 of padded channels-last xpad (N, HP, WP, C) into best
    (N, OH, OW, C), and the winning tap into arg (same shape, unsigned) when track (else arg
    is a (1, 1, 1, C) scratch): the NumPy passes of `pool.MaxPool2d` in one. Each window
    starts from its first tap, then takes each further tap in row-major order as
    np.maximum(best, tap) does (a NaN wins; of two equal values, the tap); a tap strictly
    above the best so far is the new arg. With nan_aware a NaN tap is taken too, and the value
    is the taken tap's (the NumPy path's rerun when the output holds a NaN, so the last NaN
    wins). The arg is updated as max(arg, take * tap), as the NumPy path does: with a select
    instead the loop ran scalar, 2.5x slower."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    oh, ow, channels = best.shape[1], best.shape[2], best.shape[3]
    for b in range(b0, b1):
        for r in range(oh):
            for q in range(ow):
                out, first = best[b, r, q], xpad[b, r * sh, q * sw]
                taken = arg[b, r, q] if track else arg[0, 0, 0]
                for c in range(channels):
                    out[c] = first[c]
                    if track:
                        taken[c] = 0
                for i in range(kh):
                    for j in range(kw):
                        if i == 0 and j == 0:
                            continue
                        tap = xpad[b, r * sh + i * dh, q * sw + j * dw]
                        t = arg.dtype.type(i * kw + j)
                        if not track:  # no arg: nothing written but the value (the scratch
                            _max_tap_value(out, tap)  # shared by the threads stays cold)
                        elif nan_aware:
                            _max_tap_nan_aware(out, taken, tap, t)
                        else:
                            _max_tap(out, taken, tap, t)


def _max_tap_value(out, tap):
    for c in range(out.shape[0]):
        v, m = tap[c], out[c]
        out[c] = m if (m > v or m != m) else v


def _max_tap(out, taken, tap, t):
    for c in range(out.shape[0]):
        v, m = tap[c], out[c]
        taken[c] = max(taken[c], taken.dtype.type(v > m) * t)
        out[c] = m if (m > v or m != m) else v


def _max_tap_nan_aware(out, taken, tap, t):
    for c in range(out.shape[0]):
        v, m = tap[c], out[c]
        take = v > m or v != v
        taken[c] = max(taken[c], taken.dtype.type(take) * t)
        out[c] = v if take else m


def _max_unpool_tiled(gy, arg, dx, b0, b1, kernel):
    """Max pooling's gradient when the windows tile the input (stride = kernel): each cell
    of dx (N, OH*KH, OW*KW, C) gets its window's gy (N, OH, OW, C) times (arg == its tap), as
    the NumPy path's multiply by a bool mask (-0.0 or NaN where gy is negative or not finite
    and the tap lost)."""
    kh, kw = kernel
    one, zero = gy.dtype.type(1), gy.dtype.type(0)
    oh, ow, channels = gy.shape[1], gy.shape[2], gy.shape[3]
    for b in range(b0, b1):
        for r in range(oh):
            for i in range(kh):
                for q in range(ow):
                    g, a = gy[b, r, q], arg[b, r, q]
                    for j in range(kw):
                        cell, t = dx[b, r * kh + i, q * kw + j], i * kw + j
                        for c in range(channels):
                            cell[c] = g[c] * (one if a[c] == t else zero)


def _max_pool_planes_kernel(kernel, stride, dilation, track, nan_aware):
    """`_max_pool_rows` over channels-first memory, for one window geometry: the window's loops
    then unroll, its best value and tap stay in registers, and the loop along each row of
    windows vectorises (a few channels give the channels-last form short vectors)."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation

    def max_pool_planes(x, best, arg, b0, b1):
        """Samples b0:b1 of unpadded x (N, C, H, W), C-contiguous, into channels-last best
        (N, OH, OW, C), and arg channels-first (N, C, OH, OW; unused unless track), both
        C-contiguous: the same taps in the same order by the same rules as
        `_max_pool_rows`. The tap is taken as its max(arg, take * tap), which is the tap
        when take, as taps come in increasing order."""
        channels, h, w = x.shape[1], x.shape[2], x.shape[3]
        oh, ow = best.shape[1], best.shape[2]
        x_at, best_at, arg_at = _data_pointer(x), _data_pointer(best), _data_pointer(arg)
        for b in range(b0, b1):
            for ch in range(channels):
                for r in range(oh):
                    top = ((b * channels + ch) * h + r * sh) * w  # x's row of the first tap
                    out = (b * oh + r) * ow * channels + ch  # best's first window of the row
                    taps = ((b * channels + ch) * oh + r) * ow  # and arg's
                    for q in range(ow):
                        m, taken = x_at[top + q * sw], 0
                        for i in range(kh):
                            for j in range(kw):
                                if i > 0 or j > 0:
                                    v = x_at[top + i * dh * w + q * sw + j * dw]
                                    take = v > m or (nan_aware and v != v)
                                    taken = i * kw + j if take else taken
                                    if nan_aware:
                                        m = v if take else m
                                    else:  # np.maximum: a NaN wins; of equal values, the tap
                                        m = m if (m > v or m != m) else v
                        best_at[out + q * channels] = m
                        if track:
                            arg_at[taps + q] = taken

    return max_pool_planes


_pool_kernels = {}


def _pool_kernel(make, *key):
    """The compiled make(*key), made once per process for each key (when several threads
    ask at once too); numba compiles it on its first call."""
    kernel = _pool_kernels.get((make, key))
    if kernel is None:
        with global_compiler_lock:
            kernel = _pool_kernels.setdefault((make, key),
                                              njit(nogil=True, cache=False)(make(*key)))
    return kernel


def max_pool_planes(x, best, arg, b0, b1, kernel, stride, dilation, track, nan_aware):
    """Run `_max_pool_planes_kernel`'s kernel for this geometry."""
    _pool_kernel(_max_pool_planes_kernel, tuple(kernel), tuple(stride), tuple(dilation),
                 bool(track), bool(nan_aware))(x, best, arg, b0, b1)


def _max_unpool_planes_kernel(kernel):
    """`_max_unpool_tiled` over channels-first memory, for one window size (its loops unroll,
    the loop along each row vectorises)."""
    kh, kw = kernel

    def max_unpool_planes(gy, arg, dx, b0, b1):
        """gy and arg (N, C, OH, OW), dx (N, C, H, W), all C-contiguous, with H >= OH*KH and
        W >= OW*KW (the cells past them are left alone); samples b0:b1."""
        one, zero = gy.dtype.type(1), gy.dtype.type(0)
        oh, ow = gy.shape[2], gy.shape[3]
        h, w = dx.shape[2], dx.shape[3]
        gy_at, arg_at, dx_at = _data_pointer(gy), _data_pointer(arg), _data_pointer(dx)
        for plane in range(b0 * gy.shape[1], b1 * gy.shape[1]):
            for r in range(oh):
                row = (plane * oh + r) * ow
                for i in range(kh):
                    cells = (plane * h + r * kh + i) * w
                    for q in range(ow):
                        g, a = gy_at[row + q], arg_at[row + q]
                        for j in range(kw):
                            dx_at[cells + q * kw + j] = g * (one if a == i * kw + j else zero)

    return max_unpool_planes


def max_unpool_planes(gy, arg, dx, b0, b1, kernel):
    """Run `_max_unpool_planes_kernel`'s kernel for this window size."""
    _pool_kernel(_max_unpool_planes_kernel, tuple(kernel))(gy, arg, dx, b0, b1)


max_pool_rows = max_unpool_tiled = None
if njit is not None:
    _max_tap_value = njit(inline="always")(_max_tap_value)
    _max_tap = njit(inline="always")(_max_tap)
    _max_tap_nan_aware = njit(inline="always")(_max_tap_nan_aware)
    max_pool_rows = njit(nogil=True, cache=False)(_max_pool_rows)
    max_unpool_tiled = njit(nogil=True, cache=False)(_max_unpool_tiled)


def _relu_with_mask(x, y, mask):
    """y = max(x, 0) as np.maximum gives it (NaN stays NaN, -0.0 becomes 0.0) and mask =
    x > 0, over 1-D x, y, mask: the Relu op's two training passes in one."""
    zero = x.dtype.type(0)
    for k in range(x.shape[0]):
        v = x[k]
        mask[k] = v > zero
        y[k] = _relu_value(v, zero)


def _add_relu_with_mask(a, b, y, mask):
    """y = max(a + b, 0) and mask = a + b > 0 over 1-D a, b, y, mask: the Add op and the Relu
    op's two training passes in one, the sum never written out (ops.activation.AddRelu)."""
    zero = a.dtype.type(0)
    for k in range(a.shape[0]):
        v = a[k] + b[k]
        mask[k] = v > zero
        y[k] = _relu_value(v, zero)


def _relu_in_place(x):
    """x = max(x, 0) as np.maximum gives it, over 1-D x in place: one array, so LLVM
    vectorises the loop (1.5-3x NumPy's maximum, which runs its NaN rule per element)."""
    zero = x.dtype.type(0)
    for k in range(x.shape[0]):
        x[k] = _relu_value(x[k], zero)


def _masked_gradient(gy, mask, gx):
    """gx = gy * mask over 1-D arrays, the bool mask as 1.0 or 0.0 as NumPy casts it (so
    -0.0 where a negative gy is masked, NaN where an infinite one is)."""
    one, zero = gy.dtype.type(1), gy.dtype.type(0)
    for k in range(gy.shape[0]):
        gx[k] = gy[k] * (one if mask[k] else zero)


relu_with_mask = add_relu_with_mask = relu_in_place = masked_gradient = None
if njit is not None:
    relu_with_mask = njit(nogil=True, cache=False)(_relu_with_mask)
    add_relu_with_mask = njit(nogil=True, cache=False)(_add_relu_with_mask)
    relu_in_place = njit(nogil=True, cache=False)(_relu_in_place)
    masked_gradient = njit(nogil=True, cache=False)(_masked_gradient)


def _sgd_momentum(data, grad, buf, new_data, new_buf, lr, momentum, damping, decay, damped,
                  decayed, nesterov, maximize):
    """One SGD step with momentum over 1-D arrays into new_data and new_buf (the old ones are
    read only), each value computed with `optim.SGD._updated`'s NumPy operations in their
    order and dtype (the coefficients already in it; damping = 1 - dampening): g = -grad if
    maximize, + decay * data if decayed; b = buf * momentum + (damping * g if damped else g);
    data - lr * (g + momentum * b if nesterov else b). Returns whether every new value is
    finite (v - v == 0 fails only for NaN and infinities), so the step needs no pass of its
    own to check them."""
    zero = data.dtype.type(0)
    bad = 0
    for k in range(data.shape[0]):
        g = -grad[k] if maximize else grad[k]
        if decayed:
            g = g + decay * data[k]
        b = buf[k] * momentum
        b = b + damping * g if damped else b + g
        new_buf[k] = b
        u = g + momentum * b if nesterov else b
        p = data[k] - lr * u
        new_data[k] = p
        bad |= not (p - p == zero and b - b == zero)
    return bad == 0


sgd_momentum = None
if njit is not None:
    sgd_momentum = njit(nogil=True, cache=False)(_sgd_momentum)


def _col2im_rows(dcols, dx, b0, b1, sh, sw, dh, dw):
    """dx[b, r*sh + i*dh, q*sw + j*dw, :] += dcols[b, r, q, i, j, :] for samples b0:b1, tap by
    tap in row-major order: `kernels.col2im_nhwc`'s adds (one NumPy pass per tap over strided
    runs of C values) in one pass per sample, whose dx stays in cache. dcols: (N, OH, OW, KH,
    KW, C); dx: (N, HP, WP, C), holding what it already has (zeros for a fresh gradient)."""
    oh, ow, kh, kw, channels = dcols.shape[1:]
    for b in range(b0, b1):
        for i in range(kh):
            for j in range(kw):
                for r in range(oh):
                    rr = r * sh + i * dh
                    for q in range(ow):
                        qq = q * sw + j * dw
                        for c in range(channels):
                            dx[b, rr, qq, c] += dcols[b, r, q, i, j, c]


col2im_rows = None
if njit is not None:
    col2im_rows = njit(nogil=True, cache=False)(_col2im_rows)


# Elementwise programs: a short run of float arithmetic on one input x and scalar constants,
# compiled into one loop over x (an imported graph's chains of Add/Sub/Mul/Div/Clip nodes, see
# onnx/chains.py). A program is a tuple of instructions (op, *operands), op one of "add",
# "sub", "mul", "div" (two operands) or "clip" (value, low, high); an operand is ("x",), the
# input, ("c", i), constants[i], or ("v", k), instruction k's result; the program's result is
# its last instruction's. Each instruction becomes a small function inlined into the next, so
# the loop body does the same float operations, each rounded to x's dtype, as one NumPy pass
# per instruction: the same bits (no fast-math; division by zero gives inf or NaN, NumPy's
# error model). Kernels are cached by program, so the constants can differ between calls.
_INLINE = {"inline": "always", "error_model": "numpy"}
_programs = {}


def _input():
    return njit(**_INLINE)(lambda x, c: x)


def _constant(i):
    return njit(**_INLINE)(lambda x, c: c[i])


def _binary(op, a, b):
    functions = {"add": lambda x, c: a(x, c) + b(x, c), "sub": lambda x, c: a(x, c) - b(x, c),
                 "mul": lambda x, c: a(x, c) * b(x, c), "div": lambda x, c: a(x, c) / b(x, c)}
    return njit(**_INLINE)(functions[op])


def _clip(a, low, high):
    def clip(x, c):  # np.clip: v below low -> low, then above high -> high; NaN stays NaN
        v, lo, hi = a(x, c), low(x, c), high(x, c)
        v = lo if v < lo else v  # conditional expressions: with if-statements numba's inlined
        return hi if v > hi else v  # code did not vectorise and ran ~50x slower

    return njit(**_INLINE)(clip)


def _run_program(value):
    def run(x, out, constants):
        for k in range(x.shape[0]):
            out[k] = value(x[k], constants)

    return njit(nogil=True, cache=False, error_model="numpy")(run)


def program_kernel(program):
    """kernel(x, out, constants) computing `program` elementwise from 1-D x into 1-D out (a
    distinct array of x's dtype) with constants (a 1-D array of x's dtype); None without
    numba. Compiled on first use of each program (about 0.3 s) and kept for the process."""
    if njit is None:
        return None
    if program not in _programs:
        values = []
        for op, *refs in program:
            a, b, *bounds = [_input() if ref[0] == "x" else _constant(ref[1]) if ref[0] == "c"
                             else values[ref[1]] for ref in refs]
            values.append(_clip(a, b, bounds[0]) if op == "clip" else _binary(op, a, b))
        _programs[program] = _run_program(values[-1])
    return _programs[program]


def _winograd_weights(w, half, rows, u):
    """Winograd F(2x2, 3x3) weight tiles U = G g G^T of every 3x3 filter g = w[k, :, :, c] of
    channels-last weights w (K, 3, 3, C), into u (16, K, C) (u[4a + b, k, c] = U[a, b]), in
    w's dtype: G's rows take g0, (g0 + g1 + g2)/2, (g0 - g1 + g2)/2 and g2, first over g's
    rows (into the scratch rows (4, 3, C)), then over the columns of the result. Each loop
    over the channels has one output (LLVM vectorises it, see `_winograd_outputs`)."""
    for k in range(w.shape[0]):
        g = w[k]
        for a in range(4):
            for j in range(3):  # G g, column j
                _filter_row(g[0, j], g[1, j], g[2, j], half, a, rows[a, j])
        for a in range(4):
            for b in range(4):  # (G g) G^T, row a
                _filter_row(rows[a, 0], rows[a, 1], rows[a, 2], half, b, u[4 * a + b, k])


def _filter_row(g0, g1, g2, half, a, out):
    """out = row a of G applied to (g0, g1, g2): g0, (g0 + g1 + g2) * half,
    (g0 - g1 + g2) * half or g2, over 1-D arrays."""
    for c in range(out.shape[0]):
        if a == 0:
            out[c] = g0[c]
        elif a == 1:
            out[c] = (g0[c] + g1[c] + g2[c]) * half
        elif a == 2:
            out[c] = (g0[c] - g1[c] + g2[c]) * half
        else:
            out[c] = g2[c]


def _winograd_tiles(x, top, left, tiles_w, v, rows, patch, b0, b1, r0, r1):
    """Winograd F(2x2, 3x3) input tiles V = B^T d B of samples b0:b1, tile rows r0:r1, into
    v (16, T, C), tiles in (sample, tile row, tile column) order from v[:, 0].

    x: (N, H, W, C), C-contiguous, read as if padded by `top` rows and `left` columns of
    zeros (and by as many as the tiles need after it): tile (r, t) is the padded input's 4x4
    window d at (2r, 2t), the windows overlapping by two, tiles_w of them per row. A window
    inside x is read in place; one that reaches into the padding is first copied into
    patch (4, 4, C), with zeros around it: no padded copy of x is made."""
    h, w = x.shape[1], x.shape[2]
    o = 0
    for b in range(b0, b1):
        xb = x[b]
        for r in range(r0, r1):
            i = 2 * r - top
            for t in range(tiles_w):
                j = 2 * t - left
                if i >= 0 and i + 4 <= h and j >= 0 and j + 4 <= w:
                    _winograd_tile(xb, i, j, rows, v, o)
                else:
                    for a in range(4):
                        for s in range(4):
                            if 0 <= i + a < h and 0 <= j + s < w:
                                patch[a, s, :] = xb[i + a, j + s]
                            else:
                                patch[a, s, :] = 0
                    _winograd_tile(patch, 0, 0, rows, v, o)
                o += 1


def _winograd_tile(x, i, j, rows, v, o):
    """B^T d B of the 4x4 window d = x[i:i + 4, j:j + 4] (x: (H, W, C)) into v[:, o]: B^T's
    rows take d0 - d2, d1 + d2, d2 - d1 and d1 - d3, first over d's rows (into the scratch
    rows (4, 4, C)), then over the columns of the result. Each loop over a pixel's channels
    has one output (LLVM vectorises it, see `_winograd_outputs`)."""
    for s in range(4):  # B^T d, column s
        _add2(x[i, j + s], x[i + 2, j + s], -1, rows[0, s])
        _add2(x[i + 1, j + s], x[i + 2, j + s], 1, rows[1, s])
        _add2(x[i + 2, j + s], x[i + 1, j + s], -1, rows[2, s])
        _add2(x[i + 1, j + s], x[i + 3, j + s], -1, rows[3, s])
    for a in range(4):  # (B^T d) B, row a
        row = rows[a]
        _add2(row[0], row[2], -1, v[4 * a, o])
        _add2(row[1], row[2], 1, v[4 * a + 1, o])
        _add2(row[2], row[1], -1, v[4 * a + 2, o])
        _add2(row[1], row[3], -1, v[4 * a + 3, o])


def _add2(a, b, sign, out):
    """out = a + b (sign 1) or a - b (sign -1), over 1-D arrays."""
    if sign == 1:
        for k in range(out.shape[0]):
            out[k] = a[k] + b[k]
    else:
        for k in range(out.shape[0]):
            out[k] = a[k] - b[k]


def _winograd_outputs(m, y, sums, bias, relu, b0, b1, r0, r1):
    """The 2x2 outputs Y = A^T M A of the products m (16, T, K) (tiles as `_winograd_tiles`
    orders them) into y (N, OH, OW, K), samples b0:b1, tile rows r0:r1; A^T's rows take
    m0 + m1 + m2 and m1 - m2 - m3, first over M's rows (into the scratch sums (4, K)), then
    over the columns. A tile's second row or column is dropped where it falls outside an odd
    OH or OW. Each loop over the K channels has one output (LLVM vectorises it; with several
    it cannot rule out their overlap with the inputs and runs scalar: 1.6-2x). Then bias (K,)
    (none when empty) is added and, when relu, max(., 0) taken, as np.maximum gives it: the
    operations of the conv's epilogue pass (`kernels.conv_epilogue`), while the output is in
    L1."""
    oh, ow = y.shape[1], y.shape[2]
    tiles_w = (ow + 1) // 2
    s0, s1, s2, s3 = sums[0], sums[1], sums[2], sums[3]
    o = 0
    for b in range(b0, b1):
        for r in range(r0, r1):
            i = 2 * r
            for t in range(tiles_w):
                j = 2 * t
                for q in range(4):  # row 0 of A^T M: m0 + m1 + m2
                    _add3(m[q, o], m[4 + q, o], m[8 + q, o], 1, sums[q])
                _winograd_output_row(s0, s1, s2, s3, y[b, i], j, bias, relu)
                if i + 1 < oh:
                    for q in range(4):  # row 1: m1 - m2 - m3
                        _add3(m[4 + q, o], m[8 + q, o], m[12 + q, o], -1, sums[q])
                    _winograd_output_row(s0, s1, s2, s3, y[b, i + 1], j, bias, relu)
                o += 1


def _add3(a, b, c, sign, out):
    """out = a + b + c (sign 1) or a - b - c (sign -1), over 1-D arrays."""
    if sign == 1:
        for k in range(out.shape[0]):
            out[k] = a[k] + b[k] + c[k]
    else:
        for k in range(out.shape[0]):
            out[k] = a[k] - b[k] - c[k]


def _winograd_output_row(s0, s1, s2, s3, row, j, bias, relu):
    """One row (s0, s1, s2, s3) of A^T M times A into row[j] and, inside the row, row[j + 1],
    each finished by `_bias_relu`."""
    _add3(s0, s1, s2, 1, row[j])
    _bias_relu(row[j], bias, relu)
    if j + 1 < row.shape[0]:
        _add3(s1, s2, s3, -1, row[j + 1])
        _bias_relu(row[j + 1], bias, relu)


def _bias_relu(out, bias, relu):
    """out += bias (unless empty), then max(out, 0) as np.maximum gives it when relu (NaN
    stays NaN, -0.0 becomes 0.0), over 1-D arrays."""
    zero = out.dtype.type(0)
    if bias.shape[0]:
        for k in range(out.shape[0]):
            out[k] += bias[k]
    if relu:
        for k in range(out.shape[0]):
            out[k] = _relu_value(out[k], zero)


winograd_weights = winograd_tiles = winograd_outputs = None
if njit is not None:
    _filter_row = njit(inline="always")(_filter_row)
    _add2 = njit(inline="always")(_add2)
    _winograd_tile = njit(inline="always")(_winograd_tile)
    _add3 = njit(inline="always")(_add3)
    _bias_relu = njit(inline="always")(_bias_relu)
    _winograd_output_row = njit(inline="always")(_winograd_output_row)
    winograd_weights = njit(nogil=True, cache=False)(_winograd_weights)
    winograd_tiles = njit(nogil=True, cache=False)(_winograd_tiles)
    winograd_outputs = njit(nogil=True, cache=False)(_winograd_outputs)


def _direct_conv(xpad, w, sums, y, b0, b1, dh, dw):
    """Stride-1 convolution of samples b0:b1 of padded NCHW xpad (N, C, HP, WP), C-contiguous,
    by w (OC, C, KH, KW) into channels-last y (N, OH, OW, OC), for layers with a few channels
    in and out (LeNet-5's first, 1 -> 6), whose GEMMs are too thin for BLAS.

    Each output channel's plane is a sum of shifted whole input planes, flattened: output
    (r, q) sits at r*WP + q of the scratch sums (OC, (OH - 1)*WP + OW), so each tap is one
    multiply-add over a long run of memory (the WP - OW columns in between are computed and
    dropped). The taps are added in (c, i, j) order; then the planes go channels-last."""
    hp, wp = xpad.shape[2], xpad.shape[3]
    kh, kw = w.shape[2], w.shape[3]
    oh, ow = y.shape[1], y.shape[2]
    span = sums.shape[1]
    for b in range(b0, b1):
        for o in range(w.shape[0]):
            acc = sums[o]
            first = True
            for c in range(w.shape[1]):
                plane = xpad[b, c].reshape(hp * wp)
                for i in range(kh):
                    for j in range(kw):
                        f = w[o, c, i, j]
                        # a slice, not plane[off + p]: numba's index wrap-around check would
                        # keep LLVM from vectorising the loop (3.4 against 18.8 GMAC/s)
                        src = plane[i * dh * wp + j * dw : i * dh * wp + j * dw + span]
                        if first:
                            for p in range(span):
                                acc[p] = src[p] * f
                            first = False
                        else:
                            for p in range(span):
                                acc[p] += src[p] * f
        for r in range(oh):
            for q in range(ow):
                out = y[b, r, q]
                for o in range(w.shape[0]):
                    out[o] = sums[o, r * wp + q]


def _direct_conv_weight_grad(xpad, gy, sums, gw, b0, b1, dh, dw):
    """gw (OC, C, KH, KW), float64, += the weight gradient of `_direct_conv` for samples
    b0:b1: per sample and tap, the dot of gy's output plane, laid out like `_direct_conv`'s
    sums (zeros in the dropped columns), with the shifted input plane. Compiled with
    reassociation (fast-math "reassoc") so LLVM vectorises the dots: each is summed in
    partial sums, in the gradient's dtype, then added to gw in float64."""
    hp, wp = xpad.shape[2], xpad.shape[3]
    kh, kw = gw.shape[2], gw.shape[3]
    oh, ow = gy.shape[1], gy.shape[2]
    span = sums.shape[1]
    sums[:] = 0
    for b in range(b0, b1):
        for r in range(oh):
            for q in range(ow):
                g = gy[b, r, q]
                for o in range(gw.shape[0]):
                    sums[o, r * wp + q] = g[o]
        for o in range(gw.shape[0]):
            plane_gy = sums[o]
            for c in range(gw.shape[1]):
                plane = xpad[b, c].reshape(hp * wp)
                for i in range(kh):
                    for j in range(kw):
                        src = plane[i * dh * wp + j * dw : i * dh * wp + j * dw + span]
                        d = plane_gy[0] * src[0]
                        for p in range(1, span):
                            d += plane_gy[p] * src[p]
                        gw[o, c, i, j] += d


direct_conv = direct_conv_weight_grad = None
if njit is not None:
    direct_conv = njit(nogil=True, cache=False)(_direct_conv)
    direct_conv_weight_grad = njit(nogil=True, cache=False, fastmath={"reassoc"})(
        _direct_conv_weight_grad)


# A register-blocked direct convolution (`kernels.conv_nhwc_direct`) and its weight gradient.
# The inner block keeps 8 output pixels x 16 or 32 output channels of sums in registers and
# adds one input value times the filter values to each pixel's sums per step: 16 or 32
# fused multiply-adds per 8 broadcasts and one or two vector loads of filters, no im2col
# copy. LLVM turns the scalar sums into vector registers only with its SLP vectoriser, which
# numba leaves off, and without its loop vectoriser, which gathers and scatters them through
# memory: the kernels are compiled so (`_compile_with_slp`; 2.8 -> 52 GMAC/s on one thread,
# where BLAS runs the im2col columns of the same block at 34), and allowed 512-bit vectors
# (`_wide_vectors`: 16 lanes 52 -> 57 GMAC/s, 32 lanes 52 -> 70-80). They index through raw
# pointers: numba's array indexing, with its wrap-around of negative indices, costs 15%.
_PIXELS = 8  # output pixels per block of the conv


def _stack_scratch(typingctx, size):
    """A float32 scratch array of a literal size on the stack, as a pointer: LLVM keeps such
    an array in registers when every index into it is a constant after unrolling."""
    if not isinstance(size, numba_types.IntegerLiteral):
        return None  # typed again with the literal

    def codegen(context, builder, signature, args):
        scratch = cgutils.alloca_once(builder, llvm_ir.ArrayType(llvm_ir.FloatType(),
                                                                 size.literal_value))
        return builder.bitcast(scratch, llvm_ir.PointerType(llvm_ir.FloatType()))

    return numba_types.CPointer(numba_types.float32)(size), codegen


def _data_pointer(typingctx, array):
    """The pointer to a C-contiguous array's first element."""
    def codegen(context, builder, signature, args):
        return context.make_array(signature.args[0])(context, builder, args[0]).data

    return numba_types.CPointer(array.dtype)(array), codegen


_wide = [True]  # whether `_wide_vectors` marks the function (off if LLVM ever refuses it)


def _wide_vectors(typingctx):
    """Let LLVM use 512-bit vectors in the function that calls this: its x86 backend keeps
    to 256 bits on CPUs that have them unless a function asks (the string attributes clang
    sets for code that uses 512-bit intrinsics; llvmlite's attribute set knows only the
    keyword ones, so they are added to it as a plain set). A no-op on other CPUs."""
    def codegen(context, builder, signature, args):
        if _wide[0]:
            for attribute in ('"prefer-vector-width"="512"', '"min-legal-vector-width"="512"'):
                set.add(builder.function.attributes, attribute)
        return context.get_dummy_value()

    return numba_types.void(), codegen


def _add_outer(sums, count, lanes, column_at, column, step, row_at, row):
    """The register block's step: sums[p, o] += column_at[column + p*step] * row_at[row + o]
    for p < count, o < lanes, each a fused multiply-add (sums: (count, lanes) flat)."""
    for p in range(count):
        value = column_at[column + p * step]
        for o in range(lanes):
            sums[p * lanes + o] += value * row_at[row + o]


def _store_rows(sums, count, lanes, width, out_at, start, step):
    """out_at[start + p*step + o] = sums[p, o] for p < count, o < width (<= lanes)."""
    for p in range(count):
        for o in range(width):
            out_at[start + p * step + o] = sums[p * lanes + o]


def _nhwc_conv_kernel(lanes):
    """The conv kernel over blocks of `lanes` (16 or 32) output channels: a constant of the
    compiled function (a closure variable), so that its loops unroll."""

    def nhwc_conv(xpad, w, y, b0, b1, r0, r1, sh, sw, dh, dw):
        """Output rows r0:r1 of samples b0:b1 of a convolution of padded channels-last xpad
        (N, HP, WP, C) by w (KH, KW, C, OCP) into y (N, OH, OW, OC), all float32 and
        C-contiguous, at stride (sh, sw) and dilation (dh, dw); OCP the multiple of `lanes`
        at or above OC (the filters past OC are not read into y), OW at least 8. Each sum
        adds its KH*KW*C products in (i, j, c) order, each a fused multiply-add (so the bits
        do not depend on `lanes`). A row's last block of 8 pixels starts at OW - 8
        (overlapping the one before it when 8 does not divide OW: those sums are computed
        twice, the same way)."""
        _wide_vectors()
        kh, kw, c, ocp = w.shape
        hp, wp = xpad.shape[1], xpad.shape[2]
        oh, ow, oc = y.shape[1], y.shape[2], y.shape[3]
        x_at, w_at, y_at = _data_pointer(xpad), _data_pointer(w), _data_pointer(y)
        for b in range(b0, b1):
            for r in range(r0, r1):
                for start in range(0, ow, _PIXELS):
                    q0 = min(start, ow - _PIXELS)
                    for o0 in range(0, ocp, lanes):
                        sums = _stack_scratch(256)  # (_PIXELS, lanes), lanes <= 32
                        for k in range(_PIXELS * lanes):
                            sums[k] = 0.0
                        for i in range(kh):
                            for j in range(kw):
                                x_row = ((b * hp + r * sh + i * dh) * wp + q0 * sw + j * dw) * c
                                w_row = (i * kw + j) * c * ocp + o0
                                for ch in range(c):
                                    _add_outer(sums, _PIXELS, lanes, x_at, x_row + ch, sw * c,
                                               w_at, w_row + ch * ocp)
                        y_row = ((b * oh + r) * ow + q0) * oc + o0
                        if o0 + lanes <= oc:
                            _store_rows(sums, _PIXELS, lanes, lanes, y_at, y_row, oc)
                        else:  # the last block of filters padded past OC
                            _store_rows(sums, _PIXELS, lanes, oc - o0, y_at, y_row, oc)

    return nhwc_conv


def _nhwc_conv_weight_grad_kernel(lanes, block):
    """The weight gradient kernel over blocks of `lanes` (16 or 32) output channels and
    `block` (8, or 16 with 16 lanes) input channels: 8 or 16 vectors of sums."""

    def nhwc_conv_weight_grad(xpad, gy, gw, b0, b1, sh, sw, dh, dw):
        """The weight gradient of the conv kernel over samples b0:b1, written to gw (KH, KW,
        C, OC): gw[i, j, c, o] = the sum over output cells (b, r, q) of xpad[b, r*sh + i*dh,
        q*sw + j*dw, c] * gy[b, r, q, o], gy (N, OH, OW, OC); C at least `block`, OC a
        multiple of `lanes`. The inner block keeps `block` input channels x `lanes` output
        channels of sums in registers over all the block's output cells, added in (b, r, q)
        order, each a fused multiply-add; when `block` does not divide C the last block of
        channels starts at C - block (its overlap is computed twice, the same way)."""
        _wide_vectors()
        kh, kw, c, oc = gw.shape
        hp, wp = xpad.shape[1], xpad.shape[2]
        oh, ow = gy.shape[1], gy.shape[2]
        x_at, gy_at, gw_at = _data_pointer(xpad), _data_pointer(gy), _data_pointer(gw)
        for i in range(kh):
            for j in range(kw):
                for start in range(0, c, block):
                    c0 = min(start, c - block)
                    for o0 in range(0, oc, lanes):
                        sums = _stack_scratch(256)  # (block channels, lanes)
                        for k in range(block * lanes):
                            sums[k] = 0.0
                        for b in range(b0, b1):
                            for r in range(oh):
                                x_row = ((b * hp + r * sh + i * dh) * wp + j * dw) * c + c0
                                gy_row = (b * oh + r) * ow * oc + o0
                                for q in range(ow):
                                    _add_outer(sums, block, lanes, x_at, x_row + q * sw * c, 1,
                                               gy_at, gy_row + q * oc)
                        gw_row = ((i * kw + j) * c + c0) * oc + o0
                        _store_rows(sums, block, lanes, lanes, gw_at, gw_row, oc)

    return nhwc_conv_weight_grad


_COLUMNS = 16  # output columns per block of the channels-first conv: one 512-bit vector


def _nchw_conv_kernel(oc, rows):
    """The channels-first conv kernel for `oc` (1 to 8) output channels, `rows` output rows
    at a time (2): constants of the compiled function (closure variables), so that its loops
    unroll and its rows * oc vectors of 16 sums stay in registers."""

    def nchw_conv(xpad, w, bias, y, b0, b1, with_bias, dh, dw):
        """Samples b0:b1 of a stride-1 convolution of padded NCHW xpad (N, C, HP, WP) by w
        (OC, C, KH, KW) into channels-first y (N, OC, OH, OW), plus bias (1, 1, 1, OC) when
        with_bias, all float32 and C-contiguous, at dilation (dh, dw); OH at least `rows`,
        and WP at least 16 + dw*(KW - 1) (so a block's 16 columns never read past a row).
        The block keeps 16 output columns x OC channels x `rows` rows of sums in registers;
        each step adds one vector of 16 input values times a filter value to each channel's
        sums. Each sum adds its C*KH*KW products in (c, i, j) order, each a fused
        multiply-add; the bias is added to the sum as it is stored (the rounding of a bias
        pass after it). A row's last block of 16 columns starts at OW - 16 (overlapping the
        one before when 16 does not divide OW: those sums are computed twice, the same way);
        with OW < 16 one block, stored in part."""
        _wide_vectors()
        c, hp, wp = xpad.shape[1], xpad.shape[2], xpad.shape[3]
        kh, kw = w.shape[2], w.shape[3]
        oh, ow = y.shape[2], y.shape[3]
        x_at, w_at, y_at = _data_pointer(xpad), _data_pointer(w), _data_pointer(y)
        bias_at = _data_pointer(bias)
        for b in range(b0, b1):
            for r_start in range(0, oh, rows):
                r0 = min(r_start, oh - rows)
                for q_start in range(0, ow, _COLUMNS):
                    q0 = max(min(q_start, ow - _COLUMNS), 0)
                    sums = _stack_scratch(256)  # (rows, oc, _COLUMNS), rows * oc <= 16
                    for k in range(rows * oc * _COLUMNS):
                        sums[k] = 0.0
                    for ch in range(c):
                        for i in range(kh):
                            for j in range(kw):
                                tap = (ch * kh + i) * kw + j
                                for rr in range(rows):
                                    x_row = (((b * c + ch) * hp + r0 + rr + i * dh) * wp
                                             + q0 + j * dw)
                                    for o in range(oc):
                                        f = w_at[o * c * kh * kw + tap]
                                        for q in range(_COLUMNS):
                                            sums[(rr * oc + o) * _COLUMNS + q] += (
                                                x_at[x_row + q] * f)
                    count = min(_COLUMNS, ow - q0)
                    for rr in range(rows):
                        for o in range(oc):
                            y_row = ((b * oc + o) * oh + r0 + rr) * ow + q0
                            if with_bias:
                                for q in range(_COLUMNS):
                                    sums[(rr * oc + o) * _COLUMNS + q] += bias_at[o]
                            # a constant trip count, so the SLP vectoriser stores whole
                            # vectors (the loop vectoriser is off); a row's short block rarely
                            if count == _COLUMNS:
                                for q in range(_COLUMNS):
                                    y_at[y_row + q] = sums[(rr * oc + o) * _COLUMNS + q]
                            else:
                                for q in range(count):
                                    y_at[y_row + q] = sums[(rr * oc + o) * _COLUMNS + q]

    return nchw_conv


def _nchw_conv_weight_grad_kernel(block, kw):
    """The weight gradient kernel of `nchw_conv` over blocks of `block` output channels of a
    layer with `kw` kernel columns: block * kw vectors of 16 sums in registers."""

    def nchw_conv_weight_grad(xpad, gy, planes, gw, b0, b1, dh, dw):
        """gw (OC, C, KH, KW), float64, += the weight gradient of a stride-1 conv over samples
        b0:b1 of padded NCHW xpad (N, C, HP, WP) from channels-first gy (N, OC, OH, OW), both
        float32: gw[o, c, i, j] += sum over (b, r, q) of gy[b, o, r, q] * xpad[b, c,
        r + i*dh, q + j*dw]. Each sample's gy is first copied to planes (1, OC, OH, WQ),
        the scratch `planes`, zero past OW (WQ: OW rounded up to 16 columns), so xpad must be
        at least WQ + dw*(KW - 1) wide. Blocks of `block` output channels (which divide OC)
        x one kernel row of one channel keep 16 lanes of sums per (o, j) in registers over
        the sample's rows and 16-column chunks, each a fused multiply-add; then the lanes are
        added in order, in float64, to gw."""
        _wide_vectors()
        c, hp, wp = xpad.shape[1], xpad.shape[2], xpad.shape[3]
        oc, oh, ow = gy.shape[1], gy.shape[2], gy.shape[3]
        wq = planes.shape[3]
        kh = gw.shape[2]
        x_at, gy_at, g_at, gw_at = (_data_pointer(xpad), _data_pointer(gy),
                                    _data_pointer(planes), _data_pointer(gw))
        for k in range(oc * oh * wq):
            g_at[k] = 0.0
        for b in range(b0, b1):
            for o in range(oc):
                for r in range(oh):
                    for q in range(ow):
                        g_at[(o * oh + r) * wq + q] = gy_at[((b * oc + o) * oh + r) * ow + q]
            for o0 in range(0, oc, block):
                for ch in range(c):
                    for i in range(kh):
                        sums = _stack_scratch(512)  # (block, kw, _COLUMNS)
                        for k in range(block * kw * _COLUMNS):
                            sums[k] = 0.0
                        for r in range(oh):
                            x_row = ((b * c + ch) * hp + r + i * dh) * wp
                            g_row = (o0 * oh + r) * wq
                            for q0 in range(0, wq, _COLUMNS):
                                for j in range(kw):
                                    for o in range(block):
                                        for q in range(_COLUMNS):
                                            sums[(o * kw + j) * _COLUMNS + q] += (
                                                g_at[g_row + o * oh * wq + q0 + q]
                                                * x_at[x_row + q0 + j * dw + q])
                        for o in range(block):
                            for j in range(kw):
                                total = 0.0
                                for q in range(_COLUMNS):
                                    total += sums[(o * kw + j) * _COLUMNS + q]
                                gw_at[((o0 + o) * c + ch) * kh * kw + i * kw + j] += total

    return nchw_conv_weight_grad


DEPTHWISE_PIXELS = 8  # the most output pixels per block of `depthwise_blocked`
DEPTHWISE_LANES = 16  # channels per block: one 512-bit vector of float32 sums per pixel


def _tap_products(sums, pixels, x_at, x_row, x_step, t_at, t_row, t_step, fresh, inside):
    """One tap of `depthwise_blocked`'s block: sums[p, k] = (sums[p, k] +) x_at[x_row +
    p*x_step + k] * t_at[t_row + p*t_step + k] for each p < pixels and lane k < 16 (= when
    fresh), the input +0.0 instead when not `inside` (the tap reads the padding: x_at is not
    read). p counts the block's pixels (t_step 0), or blocks of 16 channels of one pixel
    (x_step = t_step = 16)."""
    lanes = DEPTHWISE_LANES
    if inside:
        for p in range(pixels):
            for k in range(lanes):
                product = x_at[x_row + p * x_step + k] * t_at[t_row + p * t_step + k]
                if fresh:
                    sums[p * lanes + k] = product
                else:
                    sums[p * lanes + k] += product
    else:
        zero = np.float32(0.0)
        for p in range(pixels):
            for k in range(lanes):
                product = zero * t_at[t_row + p * t_step + k]
                if fresh:
                    sums[p * lanes + k] = product
                else:
                    sums[p * lanes + k] += product


def _store_sums(sums, pixels, y_at, y_row, y_step, v_row, v_step, bias_at, scale_at, shift_at,
                with_bias, with_affine, activation):
    """y_at[y_row + p*y_step + k] = sums[p, k] for p < pixels, k < 16, finished as a conv
    epilogue's passes would: + bias_at[v_row + p*v_step + k] when with_bias, then * scale_at[.]
    + shift_at[.] (an eval-mode batch norm) when with_affine, then the activation (BIAS_ONLY,
    BIAS_RELU or BIAS_HARDSWISH, as `_affine_then` applies it), each operation rounded."""
    lanes = DEPTHWISE_LANES
    zero, three, six = np.float32(0), np.float32(3), np.float32(6)
    if with_bias:
        for p in range(pixels):
            for k in range(lanes):
                sums[p * lanes + k] += bias_at[v_row + p * v_step + k]
    if with_affine:
        for p in range(pixels):
            for k in range(lanes):
                v = v_row + p * v_step + k
                sums[p * lanes + k] = sums[p * lanes + k] * scale_at[v] + shift_at[v]
    if activation == BIAS_RELU:
        for p in range(pixels):
            for k in range(lanes):
                sums[p * lanes + k] = _relu_value(sums[p * lanes + k], zero)
    elif activation == BIAS_HARDSWISH:
        for p in range(pixels):
            for k in range(lanes):
                sums[p * lanes + k] = gate(sums[p * lanes + k], three, six, zero, True)
    for p in range(pixels):
        for k in range(lanes):
            y_at[y_row + p * y_step + k] = sums[p * lanes + k]


def _lone_pixel(sums, blocks, x_at, t_at, y_at, bias_at, scale_at, shift_at, x_sample, y_row,
                row0, col0, h, w, c, kh, kw, dh, dw, with_bias, with_affine, activation):
    """`depthwise_blocked` for one output pixel whose window reaches padded columns, `blocks`
    (1, 2 or 4) blocks of 16 channels at a time: that many vectors of sums, independent
    chains, in registers; x_sample: the index of the sample's first value in x_at."""
    lanes = DEPTHWISE_LANES
    for c0 in range(0, c, blocks * lanes):
        for i in range(kh):
            row = row0 + i * dh
            for j in range(kw):
                col = col0 + j * dw
                inside = 0 <= row < h and 0 <= col < w
                x_row = x_sample + (row * w + col) * c + c0
                t_row = (i * kw + j) * c + c0
                if i == 0 and j == 0:  # the first tap starts the sums
                    _tap_products(sums, blocks, x_at, x_row, lanes, t_at, t_row, lanes, True,
                                  inside)
                else:
                    _tap_products(sums, blocks, x_at, x_row, lanes, t_at, t_row, lanes, False,
                                  inside)
        _store_sums(sums, blocks, y_at, y_row + c0, lanes, c0, lanes, bias_at, scale_at,
                    shift_at, with_bias, with_affine, activation)


def inside_columns(w, ow, kw, sw, dw, left):
    """(q0, q1): the output columns q0:q1 of a conv whose windows read no padded column of an
    input W wide padded by `left` columns (KW taps at stride sw, dilation dw; OW outputs)."""
    q0 = min((left + sw - 1) // sw, ow)
    return q0, max(min((w - 1 - (kw - 1) * dw + left) // sw + 1, ow), q0)


def depthwise_pads_in_place(w, ow, kw, sw, dw, left):
    """Whether `depthwise_blocked` should read the padding in place: when the columns whose
    windows stay inside hold a block of pixels; else, the pixels all going one at a time, a
    padded copy and blocks are faster (512 channels 5x5 at 7x7, b8: 0.52 against 0.46 ms)."""
    q0, q1 = inside_columns(w, ow, kw, sw, dw, left)
    return q1 - q0 >= min(DEPTHWISE_PIXELS, ow)


def _depthwise_blocked_kernel(pixels):
    """The register-blocked depthwise kernel over blocks of `pixels` (1 to 8) output pixels
    of a row: a constant of the compiled function (a closure variable), so that its loops
    unroll."""

    def depthwise_blocked(x, taps, bias, scale, shift, y, b0, b1, r0, r1, sh, sw, dh, dw, top,
                          left, with_bias, with_affine, activation):
        """Output rows r0:r1 of samples b0:b1 of a depthwise cross-correlation of
        channels-last x (N, H, W, C), padded with zeros by `top` rows and `left` columns
        (and on the bottom and right as far as the windows reach), by taps (KH, KW, C, 1)
        into y (N, OH, OW, C), plus bias (1, 1, 1, C) when with_bias, then * scale + shift
        (each (1, 1, 1, C)) when with_affine, then the activation (BIAS_ONLY, BIAS_RELU or
        BIAS_HARDSWISH), as each sum is stored (`_store_sums`); all float32 and
        C-contiguous, C a multiple of 16; at stride (sh, sw) and dilation (dh, dw).

        A block keeps `pixels` output pixels x 16 channels of sums in registers: the pixels
        of a row whose windows lie inside the columns of x (a row's last block starts where
        they end, overlapping the one before: those sums are computed twice, the same way).
        The other pixels of a row go one at a time, 64 channels at a time where C allows.
        Each sum is the first tap's product, then each further tap's product added, taps in
        row-major order, then the bias added, every product and sum rounded (no fused
        multiply-add), a padded cell's value +0.0: the float operations of
        `kernels.depthwise_nhwc`'s NumPy passes over a padded copy.
        """
        _wide_vectors()
        h, w, c = x.shape[1], x.shape[2], x.shape[3]
        kh, kw = taps.shape[0], taps.shape[1]
        oh, ow = y.shape[1], y.shape[2]
        x_at, t_at, y_at = _data_pointer(x), _data_pointer(taps), _data_pointer(y)
        bias_at, scale_at = _data_pointer(bias), _data_pointer(scale)
        shift_at = _data_pointer(shift)
        lanes = DEPTHWISE_LANES
        sums = _stack_scratch(128)  # (pixels, lanes), pixels <= 8; or (blocks <= 4, lanes)
        q0, q1 = inside_columns(w, ow, kw, sw, dw, left)
        blocks = q1 - q0 >= pixels  # else every pixel goes alone
        for b in range(b0, b1):
            for c0 in range(0, c, lanes):  # a channel block's input and taps stay in L1
                for r in range(r0, r1):
                    row0 = r * sh - top
                    for q_start in range(q0, q1 if blocks else q0, pixels):
                        q = min(q_start, q1 - pixels)
                        col = q * sw - left
                        for i in range(kh):
                            row = row0 + i * dh
                            inside = 0 <= row < h
                            for j in range(kw):
                                x_row = ((b * h + row) * w + col + j * dw) * c + c0
                                t_row = (i * kw + j) * c + c0
                                if i == 0 and j == 0:  # the first tap starts the sums
                                    _tap_products(sums, pixels, x_at, x_row, sw * c, t_at,
                                                  t_row, 0, True, inside)
                                else:
                                    _tap_products(sums, pixels, x_at, x_row, sw * c, t_at,
                                                  t_row, 0, False, inside)
                        _store_sums(sums, pixels, y_at, ((b * oh + r) * ow + q) * c + c0, c,
                                    c0, 0, bias_at, scale_at, shift_at, with_bias, with_affine,
                                    activation)
            for r in range(r0, r1):
                for q in range(ow):
                    if blocks and q0 <= q < q1:
                        continue  # done in blocks
                    x_sample, y_row = b * h * w * c, ((b * oh + r) * ow + q) * c
                    row0, col0 = r * sh - top, q * sw - left
                    if c % 64 == 0:
                        _lone_pixel(sums, 4, x_at, t_at, y_at, bias_at, scale_at, shift_at,
                                    x_sample, y_row, row0, col0, h, w, c, kh, kw, dh, dw,
                                    with_bias, with_affine, activation)
                    elif c % 32 == 0:
                        _lone_pixel(sums, 2, x_at, t_at, y_at, bias_at, scale_at, shift_at,
                                    x_sample, y_row, row0, col0, h, w, c, kh, kw, dh, dw,
                                    with_bias, with_affine, activation)
                    else:
                        _lone_pixel(sums, 1, x_at, t_at, y_at, bias_at, scale_at, shift_at,
                                    x_sample, y_row, row0, col0, h, w, c, kh, kw, dh, dw,
                                    with_bias, with_affine, activation)

    return depthwise_blocked


def _compile_with_slp(function, signature, contract=True):
    """njit(signature, ...)(function), compiled now with LLVM's SLP vectoriser on and its loop
    vectoriser off (numba's SLP_VECTORIZE and LOOP_VECTORIZE settings; the loop vectoriser
    would otherwise turn the innermost runtime loop into gathers and scatters of the sums)
    and, when `contract`, fused multiply-adds allowed (fast-math "contract", nothing else;
    without it every product and sum is rounded, as in NumPy's passes). The settings are
    changed and restored under numba's compiler lock, so nothing else numba compiles, in any
    thread, sees them."""
    with global_compiler_lock:
        saved = numba_config.SLP_VECTORIZE, numba_config.LOOP_VECTORIZE
        numba_config.SLP_VECTORIZE, numba_config.LOOP_VECTORIZE = 1, 0
        try:
            return njit(signature, nogil=True, cache=False,
                        fastmath={"contract"} if contract else False)(function)
        finally:
            numba_config.SLP_VECTORIZE, numba_config.LOOP_VECTORIZE = saved


_slp_kernels = {}


def _run_with_slp(make_kernel, blocking, *args, contract=True):
    """make_kernel(*blocking)(*args) for C-contiguous 4-D arrays (float32, or float64 for
    sums), then int64s, compiled by `_compile_with_slp` (with `contract`) on the first call
    for `blocking` (about half a second, once per process). Should LLVM refuse the
    wide-vector attributes, compiled without them."""
    key = (make_kernel, blocking)
    kernel = _slp_kernels.get(key)
    if kernel is None:
        with global_compiler_lock:  # one compilation when several threads call at once
            if key not in _slp_kernels:
                arrays = [numba_types.Array(numba_types.float32 if a.dtype == np.float32
                                            else numba_types.float64, 4, "C")
                          for a in args if isinstance(a, np.ndarray)]
                signature = numba_types.void(
                    *arrays, *[numba_types.int64] * (len(args) - len(arrays)))
                try:
                    _slp_kernels[key] = _compile_with_slp(make_kernel(*blocking), signature,
                                                          contract)
                except Exception:  # noqa: BLE001 - any LLVM error: the 256-bit build
                    _wide[0] = False
                    _slp_kernels[key] = _compile_with_slp(make_kernel(*blocking), signature,
                                                          contract)
            kernel = _slp_kernels[key]
    kernel(*args)


def _lanes(oc):
    """Output channels per block: 32 when they divide OC (two 512-bit vectors of sums per
    pixel), else 16."""
    return 32 if oc % 32 == 0 else 16


def nhwc_conv(xpad, w, y, b0, b1, r0, r1, sh, sw, dh, dw):
    """The register-blocked conv (`_nhwc_conv_kernel`), compiled on the first call."""
    _run_with_slp(_nhwc_conv_kernel, (_lanes(w.shape[3]),), xpad, w, y, b0, b1, r0, r1,
                  sh, sw, dh, dw)


def weight_grad_channel_block(c, oc):
    """Input channels per block of the weight gradient for C channels in and OC out: 16
    with blocks of 16 output channels when C has 16, else 8 (its input must have at least
    that many channels, padded with zeros if need be)."""
    return 16 if _lanes(oc) == 16 and c >= 16 else 8


def nhwc_conv_weight_grad(xpad, gy, gw, b0, b1, sh, sw, dh, dw):
    """Its weight gradient (`_nhwc_conv_weight_grad_kernel`), compiled on the first call;
    xpad's channels are gw's padded to `weight_grad_channel_block` if need be."""
    c, oc = gw.shape[2:]
    blocking = (_lanes(oc), weight_grad_channel_block(c, oc))
    _run_with_slp(_nhwc_conv_weight_grad_kernel, blocking, xpad, gy, gw, b0, b1, sh, sw,
                  dh, dw)


def depthwise_blocked(x, taps, bias, scale, shift, y, b0, b1, r0, r1, sh, sw, dh, dw, top,
                      left, with_bias, with_affine, activation):
    """The register-blocked depthwise conv (`_depthwise_blocked_kernel`), compiled on the
    first call for the pixels per block (8, or OW when narrower); its products and sums
    rounded one by one."""
    _run_with_slp(_depthwise_blocked_kernel, (min(DEPTHWISE_PIXELS, y.shape[2]),), x, taps,
                  bias, scale, shift, y, b0, b1, r0, r1, sh, sw, dh, dw, top, left, with_bias,
                  with_affine, activation, contract=False)


NCHW_ROWS = 2  # output rows per block of `nchw_conv`
NCHW_MAX_CHANNELS = 8  # the most output channels of `nchw_conv`


def nchw_conv(xpad, w, bias, y, b0, b1, with_bias, dh, dw):
    """The channels-first register-blocked conv (`_nchw_conv_kernel`), compiled on the first
    call for the layer's output channels."""
    _run_with_slp(_nchw_conv_kernel, (w.shape[0], NCHW_ROWS), xpad, w, bias, y, b0, b1,
                  with_bias, dh, dw)


def nchw_weight_grad_block(oc, kw):
    """Output channels per block of `nchw_conv_weight_grad` for OC channels and KW kernel
    columns: the most that divide OC with block * KW vectors of sums (at most 30) in
    registers."""
    return max(b for b in range(1, oc + 1) if oc % b == 0 and b * kw <= 30)


def nchw_conv_weight_grad(xpad, gy, planes, gw, b0, b1, dh, dw):
    """Its weight gradient (`_nchw_conv_weight_grad_kernel`), compiled on the first call for
    the layer's blocking."""
    kw = gw.shape[3]
    blocking = (nchw_weight_grad_block(gw.shape[0], kw), kw)
    _run_with_slp(_nchw_conv_weight_grad_kernel, blocking, xpad, gy, planes, gw, b0, b1, dh,
                  dw)


if njit is not None:
    _add_outer = njit(inline="always")(_add_outer)
    _store_rows = njit(inline="always")(_store_rows)
    _tap_products = njit(inline="always")(_tap_products)
    _store_sums = njit(inline="always")(_store_sums)
    _lone_pixel = njit(inline="always")(_lone_pixel)
    inside_columns = njit(inline="always")(inside_columns)
    _stack_scratch = intrinsic(_stack_scratch)
    _data_pointer = intrinsic(_data_pointer)
    _wide_vectors = intrinsic(_wide_vectors)
else:
    nhwc_conv = nhwc_conv_weight_grad = nchw_conv = nchw_conv_weight_grad = None
    depthwise_blocked = None
    max_pool_planes = max_unpool_planes = None
