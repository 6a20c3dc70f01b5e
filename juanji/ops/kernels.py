"""Raw-array kernels for the windowed and resampling ops: window views, im2col/col2im, the
depthwise tap loops and the scatter-adds that undo a gather.

Layout: the window kernels work channels-last, (N, H, W, C), because that puts the reduction
axis of the convolution GEMM (KH*KW*C) next to each other in memory. The NCHW arrays the ops
receive are transposed views of it, so no copy is needed when an NHWC-backed array comes back in.
Every routine here has a naive reference test in tests/ops/test_kernels.py.
"""

from juanji.backend import xp_of


def pad_nhwc(x, pad_h, pad_w, value=0.0, extra_h=0, extra_w=0):
    """NCHW x -> channels-last padded copy (N, PH0+H+PH1+extra_h, PW0+W+PW1+extra_w, C).

    pad_h = (top, bottom), pad_w = (left, right); `extra_*` adds cells on the bottom/right
    (ceil_mode windows that run past the padded input) filled with `value` too. Without any
    padding the result is a view, not a copy.
    """
    xp = xp_of(x)
    n, c, h, w = x.shape
    (top, bottom), (left, right) = pad_h, pad_w
    shape = (n, top + h + bottom + extra_h, left + w + right + extra_w, c)
    xnhwc = x.transpose(0, 2, 3, 1)  # (N, H, W, C) view
    if shape == xnhwc.shape:
        return xnhwc
    out = xp.full(shape, value, dtype=x.dtype)
    out[:, top : top + h, left : left + w, :] = xnhwc
    return out


def window_view(xp_nhwc, kernel, stride, dilation, out_size):
    """Zero-copy view of every window: (N, OH, OW, KH, KW, C) over padded (N, HP, WP, C)."""
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out_size
    n, _, _, c = xp_nhwc.shape
    s_n, s_h, s_w, s_c = xp_nhwc.strides
    return xp_of(xp_nhwc).lib.stride_tricks.as_strided(
        xp_nhwc,
        shape=(n, oh, ow, kh, kw, c),
        strides=(s_n, s_h * sh, s_w * sw, s_h * dh, s_w * dw, s_c),
        writeable=False,
    )


def window_slice(k_h, k_w, stride, dilation, out_size):
    """Index of the input cells that kernel tap (k_h, k_w) touches, for all outputs at once.

    Returns (slice over H, slice over W) into the padded channels-last input; the selected block
    has shape (N, OH, OW, C).
    """
    (sh, sw), (dh, dw), (oh, ow) = stride, dilation, out_size
    rows = slice(k_h * dh, k_h * dh + sh * (oh - 1) + 1, sh)
    cols = slice(k_w * dw, k_w * dw + sw * (ow - 1) + 1, sw)
    return rows, cols


def im2col_nhwc(xp_nhwc, kernel, stride, dilation, out_size, groups=1):
    """Windows of padded (N, HP, WP, C) as GEMM rows: (G, N*OH*OW, KH*KW*C/G), one copy.

    Row l = (n, oh, ow) in row-major order; column = (kh, kw, c) within group g.
    """
    windows = window_view(xp_nhwc, kernel, stride, dilation, out_size)  # (N,OH,OW,KH,KW,C)
    return group_columns(windows, groups)


def group_columns(windows, groups):
    """(N, OH, OW, KH, KW, C) windows -> GEMM rows per group (G, N*OH*OW, KH*KW*C/G)."""
    n, oh, ow, kh, kw, c = windows.shape
    cg = c // groups
    windows = windows.reshape(n, oh, ow, kh, kw, groups, cg).transpose(5, 0, 1, 2, 3, 4, 6)
    return windows.reshape(groups, n * oh * ow, kh * kw * cg)  # (G, L, Kg), the one copy


def ungroup_columns(dcols, windows_shape):
    """Inverse of `group_columns`: (G, N*OH*OW, KH*KW*Cg) -> (N, OH, OW, KH, KW, G*Cg)."""
    n, oh, ow, kh, kw, c = windows_shape
    g = dcols.shape[0]
    dcols = dcols.reshape(g, n, oh, ow, kh, kw, c // g).transpose(1, 2, 3, 4, 5, 0, 6)
    return dcols.reshape(windows_shape)


def col2im_nhwc(dcols, padded_shape, kernel, stride, dilation):
    """Adjoint of `window_view`: scatter-add window values back onto the padded input.

    dcols: (N, OH, OW, KH, KW, C) -> (N, HP, WP, C). Loops only over the KH*KW taps; each tap
    adds one strided block, so no index array or np.add.at is needed.
    """
    xp = xp_of(dcols)
    n, oh, ow, kh, kw, c = dcols.shape
    dx = xp.zeros(padded_shape, dtype=dcols.dtype)
    for i in range(kh):
        for j in range(kw):
            rows, cols = window_slice(i, j, stride, dilation, (oh, ow))
            dx[:, rows, cols, :] += dcols[:, :, :, i, j, :]
    return dx


def conv_input_grad_nhwc(gy_rows, wtaps, padded_shape, stride, dilation, out_size,
                         chunk_bytes=1 << 18):
    """Gradient of a (groups=1) convolution w.r.t. its padded input, GEMM and col2im fused.

    gy_rows: (N, OH*OW, OC) upstream gradient; wtaps: (KH, KW, OC, C) weights tap-major
    -> (N, HP, WP, C) = sum over taps (i, j) of (gy_rows @ wtaps[i, j]) added at the tap's
    window offset (the adjoint of `window_view`). Samples go in chunks of about `chunk_bytes`
    per tap product, so each product is added back while still in cache; the adds then run
    over whole contiguous rows of OW*C values.
    """
    xp = xp_of(gy_rows)
    kh, kw, _, c = wtaps.shape
    n = gy_rows.shape[0]
    oh, ow = out_size
    dx = xp.zeros(padded_shape, dtype=gy_rows.dtype)
    step = max(1, chunk_bytes // (oh * ow * c * gy_rows.itemsize))
    buf = xp.empty((min(step, n) * oh * ow, c), dtype=gy_rows.dtype)
    for start in range(0, n, step):
        stop = min(start + step, n)
        gy_block = gy_rows[start:stop].reshape(-1, gy_rows.shape[2])  # (B*OH*OW, OC)
        block = buf[: gy_block.shape[0]]  # (B*OH*OW, C): one GEMM, not one per sample
        for i in range(kh):
            for j in range(kw):
                rows, cols = window_slice(i, j, stride, dilation, out_size)
                xp.matmul(gy_block, wtaps[i, j], out=block)
                dx[start:stop, rows, cols, :] += block.reshape(-1, oh, ow, c)
    return dx


def conv_weight_grad(x, gy_rows, kernel, stride, padding, dilation, out_size,
                     chunk_bytes=1 << 21):
    """Gradient of a (groups=1) convolution w.r.t. its weight rows, im2col recomputed in blocks.

    x: the unpadded input (N, C, H, W); gy_rows: (N*OH*OW, OC) upstream gradient
    -> (OC, KH*KW*C) = gy_rows^T @ im2col(pad(x)). Forward keeps only x, not the KH*KW times
    larger columns: here a few samples at a time (columns of about `chunk_bytes`) are padded
    and unrolled into one reused buffer and consumed while still in cache.
    """
    xp = xp_of(x)
    n, c = x.shape[:2]
    (kh, kw), (oh, ow) = kernel, out_size
    width = kh * kw * c
    step = max(1, chunk_bytes // (oh * ow * width * x.itemsize))
    buf = xp.empty((min(step, n) * oh * ow, width), dtype=x.dtype)
    gw = xp.zeros((gy_rows.shape[1], width), dtype=gy_rows.dtype)
    for start in range(0, n, step):
        stop = min(start + step, n)
        cols = buf[: (stop - start) * oh * ow]  # (B*OH*OW, KH*KW*C)
        xpad = pad_nhwc(x[start:stop], *padding)  # (B, HP, WP, C)
        windows = window_view(xpad, kernel, stride, dilation, out_size)
        cols.reshape(windows.shape)[...] = windows
        # (cols^T gy)^T: OpenBLAS runs this form of the long reduction markedly faster
        gw += (cols.T @ gy_rows[start * oh * ow : stop * oh * ow]).T
    return gw


def col2im_groups(dcols, padded_shape, kernel, stride, dilation, out_size):
    """Adjoint of `im2col_nhwc`: (G, N*OH*OW, KH*KW*Cg) -> padded (N, HP, WP, G*Cg)."""
    shape = (padded_shape[0], *out_size, *kernel, padded_shape[3])
    dwindows = ungroup_columns(dcols, shape)  # (N, OH, OW, KH, KW, C)
    return col2im_nhwc(dwindows, padded_shape, kernel, stride, dilation)


_CACHE_FLOATS = 1 << 17  # about 512 KB of float32: a working block that fits in L2


def depthwise_nhwc(xp_nhwc, taps, stride, dilation, out_size):
    """Depthwise cross-correlation, one multiply-add pass per kernel tap.

    xp_nhwc: padded (N, HP, WP, C); taps: (KH, KW, C, M) (M outputs per channel, the depth
    multiplier) -> (N, OH, OW, C, M). Faster than a batched GEMM of C tiny matrices.
    """
    xp = xp_of(xp_nhwc)
    kh, kw, c, m = taps.shape
    n = xp_nhwc.shape[0]
    y = xp.zeros((n, *out_size, c, m), dtype=xp_nhwc.dtype)
    # a few samples at a time, so each output block stays in cache across the KH*KW passes
    # (memory-bound otherwise: 1.45x faster on b32 96x32x32)
    chunk = max(1, _CACHE_FLOATS // (out_size[0] * out_size[1] * c * m))
    for start in range(0, n, chunk):
        x_block, y_block = xp_nhwc[start:start + chunk], y[start:start + chunk]
        for i in range(kh):
            for j in range(kw):
                rows, cols = window_slice(i, j, stride, dilation, out_size)
                y_block += x_block[:, rows, cols, :, None] * taps[i, j]
    return y


def depthwise_nhwc_grads(gy, taps, padded_shape, stride, dilation, xp_nhwc=None, need_x=True):
    """Gradients of `depthwise_nhwc`: (d padded input (N, HP, WP, C), d taps (KH, KW, C, M)).

    gy: (N, OH, OW, C, M). The input gradient is None unless need_x; the taps gradient is None
    unless the padded input xp_nhwc is given.
    """
    xp = xp_of(gy)
    kh, kw, c, m = taps.shape
    out_size = gy.shape[1:3]
    dxpad = xp.zeros(padded_shape, dtype=gy.dtype) if need_x else None
    dtaps = None if xp_nhwc is None else xp.empty(taps.shape, dtype=gy.dtype)
    gy_rows = gy.reshape(-1, c, m)  # (L, C, M)
    for i in range(kh):
        for j in range(kw):
            rows, cols = window_slice(i, j, stride, dilation, out_size)
            if need_x:
                if m == 1:
                    dxpad[:, rows, cols, :] += gy[..., 0] * taps[i, j, :, 0]
                else:
                    dxpad[:, rows, cols, :] += xp.einsum("nhwcm,cm->nhwc", gy, taps[i, j])
            if dtaps is not None:
                block = xp_nhwc[:, rows, cols, :].reshape(-1, c)  # (L, C)
                dtaps[i, j] = xp.einsum("lc,lcm->cm", block, gy_rows)
    return dxpad, dtaps


def channels_last_rows(x):
    """(N, C, *S) -> 2-D channels-last rows (R, P*C): column k holds channel k % C.

    P is the last spatial size (1 without spatial axes), R = N * the other spatial sizes. A
    view when x is an NCHW view of channels-last memory (what conv returns), else one copy.
    Per-channel work on these rows runs NumPy's inner loops over P*C values, not C: a per-channel
    vector broadcasts as `tile_channels(v, P)`. Returns (rows, P); `rows_to_channels_first`
    undoes it.
    """
    xp = xp_of(x)
    moved = xp.ascontiguousarray(xp.moveaxis(x, 1, -1))  # (N, *S, C), a view when it can be
    period = x.shape[-1] if x.ndim > 2 else 1
    return moved.reshape(-1, period * x.shape[1]), period


def rows_to_channels_first(rows, shape):
    """Inverse of `channels_last_rows`: (R, P*C) -> NCHW view (N, C, *S) of `shape`."""
    xp = xp_of(rows)
    n, c, *spatial = shape
    return xp.moveaxis(rows.reshape(n, *spatial, c), -1, 1)


def tile_channels(v, period):
    """Per-channel vector (C,) -> (P*C,), matching the columns of `channels_last_rows`."""
    return xp_of(v).tile(v, period)


def channel_sums(rows, channels, dtype=None):
    """Sum of every channel over channels-last rows (R, P*C) -> (C,).

    By default a matrix-vector product with ones (BLAS, all threads) then a fold of the P column
    groups: about 10x faster than ndarray.sum over the strided axes when C is small. With a
    dtype (float64), a NumPy reduce that accumulates in it instead, about 5x slower but exact
    enough that a constant channel's mean is that constant, as PyTorch's double accumulator is.
    """
    xp = xp_of(rows)
    if dtype is None:
        column_sums = xp.ones(rows.shape[0], dtype=rows.dtype) @ rows  # (P*C,)
    else:
        column_sums = rows.sum(axis=0, dtype=dtype)
    return column_sums.reshape(-1, channels).sum(axis=0)


def channel_dots(a, b, channels):
    """Per-channel sum of a * b over channels-last rows (R, P*C) -> (C,), no temporary."""
    column_dots = xp_of(a).einsum("rk,rk->k", a, b)  # (P*C,)
    return column_dots.reshape(-1, channels).sum(axis=0)


def index_add_axis(values, index, size, axis):
    """Adjoint of `xp.take(x, index, axis)`: sum the slices of `values` along `axis` into `size`
    bins, slice k going to bin index[k] (repeated indices accumulate; empty bins are 0).

    values: (..., len(index), ...) -> (..., size, ...). Non-decreasing indices (interpolation,
    adaptive pooling) need no sort; others are sorted once. Uses ufunc.reduceat, no add.at.
    """
    xp = xp_of(values)
    index = xp.asarray(index)
    values = xp.moveaxis(values, axis, 0)  # (K, ...)
    if index.size > 1 and bool((index[1:] < index[:-1]).any()):
        order = xp.argsort(index, kind="stable")
        index, values = index[order], values[order]
    out = xp.zeros((size,) + values.shape[1:], dtype=values.dtype)
    if index.size:
        starts = xp.flatnonzero(xp.concatenate([xp.ones(1, dtype=bool), index[1:] != index[:-1]]))
        out[index[starts]] = xp.add.reduceat(values, starts, axis=0)
    return xp.moveaxis(out, 0, axis)


def scatter_add_flat(index, values, size):
    """out[index[k]] += values[k] over flat arrays, out of length `size` (repeats accumulate).

    index: non-negative ints, any shape; values: same shape. One bincount pass (it sums in
    float64; the result is cast back to values' dtype), no np.add.at.
    """
    xp = xp_of(values)
    out = xp.bincount(index.ravel(), weights=values.ravel(), minlength=size)
    return out.astype(values.dtype, copy=False)
