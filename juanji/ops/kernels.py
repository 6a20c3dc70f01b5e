"""Raw-array kernels for the windowed and resampling ops: window views, im2col/col2im and the
blocked convolution GEMMs, the depthwise tap loops, per-channel sums and affine passes over
channels-last rows (batch norm, bias), and the scatter-adds that undo a gather.

Layout: the window kernels work channels-last, (N, H, W, C), because that puts the reduction
axis of the convolution GEMM (KH*KW*C) next to each other in memory. The NCHW arrays the ops
receive are transposed views of it, so no copy is needed when an NHWC-backed array comes back in.
Every routine here has a naive reference test in tests/ops/test_kernels.py.

Threads: the memory-bound kernels work in blocks of samples (`sample_blocks`) that
`backend.parallel_map` spreads over the cores; each block writes only its own samples, and
sums over blocks are taken in block order, so results do not depend on the thread count.
"""

import math

import numpy as np

from juanji.backend import matmul, parallel_map, xp_of
from juanji.ops import compiled

_BLOCK_BYTES = 1 << 21  # about 2 MB per block of work: fits in L2/L3, enough for a thread
_WINOGRAD_BLOCK_TILES = 64  # the fewest tiles in a block of `conv_winograd`
# Up to this many channels the compiled depthwise kernel runs at stride 1 along whole output
# rows, the taps repeated along them (compiled._depthwise_row_runs); per output pixel above
_FLAT_DEPTHWISE_CHANNELS = 32
_DIRECT_BLOCK_MACS = 1 << 23  # work per block of `conv_nhwc_direct`, ~0.15 ms on one thread
_DIRECT_MAX_CHANNELS = (96, 128)  # the most channels in and out of a register-blocked conv


def sample_blocks(n, bytes_per_sample, block_bytes=None):
    """Split range(n) into consecutive (start, stop) blocks of at most about `block_bytes`
    each (default _BLOCK_BYTES), as even as the count allows (128 samples that need two
    blocks go 64 + 64, not 109 + 19, so the threads share the work)."""
    block_bytes = _BLOCK_BYTES if block_bytes is None else block_bytes
    step = max(1, block_bytes // max(1, bytes_per_sample))
    step = _even_step(n, step)
    return [(start, min(start + step, n)) for start in range(0, n, step)]


def _even_step(total, step):
    """The step that splits `total` items into as many blocks as `step` does, evenly."""
    count = max(1, -(-total // step))
    return max(1, -(-total // count))


def sample_row_blocks(n, rows, bytes_per_row, block_bytes=None):
    """Blocks (start, stop, row_start, row_stop) over samples and, within each sample, over
    `rows` rows of about `block_bytes` (default _BLOCK_BYTES) each: whole samples when a block
    holds at least one, else row ranges of single samples, so a batch of one splits too."""
    block_bytes = _BLOCK_BYTES if block_bytes is None else block_bytes
    if rows * bytes_per_row <= block_bytes:
        return [(start, stop, 0, rows)
                for start, stop in sample_blocks(n, rows * bytes_per_row, block_bytes)]
    step = max(1, block_bytes // max(1, bytes_per_row))
    step = _even_step(rows, step)
    return [(b, b + 1, r, min(r + step, rows)) for b in range(n) for r in range(0, rows, step)]


def sum_in_order(partials):
    """Sum of the blocks' partial results, added in block order (so the same for any thread
    count); the first partial is not modified."""
    total = partials[0].copy()
    for partial in partials[1:]:
        total += partial
    return total


def is_channels_last(x):
    """True when the NCHW array x is a view of C-contiguous (N, H, W, C) memory."""
    return x.transpose(0, 2, 3, 1).flags.c_contiguous


def pad_nhwc(x, pad_h, pad_w, value=0.0, extra_h=0, extra_w=0):
    """NCHW x -> channels-last padded copy (N, PH0+H+PH1+extra_h, PW0+W+PW1+extra_w, C).

    pad_h = (top, bottom), pad_w = (left, right); `extra_*` adds cells on the bottom/right
    (ceil_mode windows that run past the padded input) filled with `value` too. Always
    C-contiguous: without any padding, a view of an NCHW view of channels-last memory (what
    conv returns), else a copy, so the window copies that follow read runs of C values.
    """
    xp = xp_of(x)
    n, c, h, w = x.shape
    (top, bottom), (left, right) = pad_h, pad_w
    shape = (n, top + h + bottom + extra_h, left + w + right + extra_w, c)
    xnhwc = x.transpose(0, 2, 3, 1)  # (N, H, W, C) view
    if shape == xnhwc.shape and is_channels_last(x):
        return xnhwc
    out = xp.empty(shape, dtype=x.dtype)
    # fill only the border (if any), then copy the inside in sample blocks
    out[:, :top], out[:, top + h :] = value, value
    out[:, top : top + h, :left], out[:, top : top + h, left + w :] = value, value

    def copy_block(block):
        start, stop, r0, r1 = block
        out[start:stop, top + r0 : top + r1, left : left + w, :] = xnhwc[start:stop, r0:r1]

    parallel_map(copy_block, sample_row_blocks(n, h, w * c * x.itemsize))
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
    xp = xp_of(windows)
    n, oh, ow, kh, kw, c = windows.shape
    if groups == 1:  # the one copy, in sample blocks over the threads
        cols = xp.empty(windows.shape, dtype=windows.dtype)

        def copy_block(block):
            start, stop, r0, r1 = block
            cols[start:stop, r0:r1] = windows[start:stop, r0:r1]

        parallel_map(copy_block, sample_row_blocks(n, oh, ow * kh * kw * c * windows.itemsize))
        return cols.reshape(1, n * oh * ow, kh * kw * c)  # (1, L, K)
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


def conv_nhwc(xp_nhwc, wrows, kernel, stride, dilation, out_size, keep_columns=False,
              block_bytes=None, epilogue=None):
    """A (groups=1) convolution of padded (N, HP, WP, C) by weight rows (OC, KH*KW*C)
    -> (y (N, OH, OW, OC), the columns (1, N*OH*OW, KH*KW*C) or None).

    im2col and GEMM fused per block of samples (or of one sample's output rows) with about
    `block_bytes` (default 2 * _BLOCK_BYTES) of columns: each block is unrolled and multiplied
    while in cache, the blocks spread over the threads with BLAS on one thread inside (1.3-1.6x
    over one whole-batch copy and GEMM). keep_columns unrolls into one array that is returned
    for the weight gradient; otherwise each block unrolls into a buffer of its own.
    `epilogue(block)`, when given, finishes each block's output (B, OH', OW, OC) in place
    while it is in cache (see `conv_epilogue`).
    """
    xp = xp_of(xp_nhwc)
    n, (oh, ow) = xp_nhwc.shape[0], out_size
    oc, width = wrows.shape
    windows = window_view(xp_nhwc, kernel, stride, dilation, out_size)  # (N,OH,OW,KH,KW,C)
    y = xp.empty((n, oh, ow, oc), dtype=xp.result_type(xp_nhwc, wrows))
    cols = xp.empty(windows.shape, dtype=xp_nhwc.dtype) if keep_columns else None

    def block_conv(block):
        start, stop, r0, r1 = block
        if cols is None:
            piece = xp.ascontiguousarray(windows[start:stop, r0:r1])
        else:
            piece = cols[start:stop, r0:r1]
            piece[...] = windows[start:stop, r0:r1]
        matmul(piece.reshape(-1, width), wrows.T, out=y[start:stop, r0:r1].reshape(-1, oc))
        if epilogue is not None:
            epilogue(y[start:stop, r0:r1])

    block_bytes = 2 * _BLOCK_BYTES if block_bytes is None else block_bytes
    parallel_map(block_conv, sample_row_blocks(n, oh, ow * width * xp_nhwc.itemsize, block_bytes),
                 calls_blas=True)
    return y, None if cols is None else cols.reshape(1, n * oh * ow, width)


def direct_nhwc_runs(arrays, c, oc, out_size):
    """Whether a groups=1 conv with c channels in and oc out, on `arrays` (its input and
    filters, or what backward combines), runs the compiled register-blocked kernel
    (`compiled.nhwc_conv`; its weight gradient too where `direct_grad_runs`) instead of
    im2col and BLAS: the arrays float32 NumPy arrays, at most
    _DIRECT_MAX_CHANNELS channels in and out, at least 8 output columns, and output channels
    a multiple of 16 or at most 1/8 short of one (the filters are padded with zeros to it,
    `_padded_filters`: SimpleConvNet's 30 to 32). BLAS on the columns
    gains with the channels and overtakes the kernel past them (3x3 forward, b32, against
    BLAS: 16 -> 16 0.46x the time, 32 -> 64 0.64x, 64 -> 128 0.81x, 96 -> 96 0.75x,
    128 -> 128 0.99x, 96 -> 192 1.10x, 128 -> 256 1.37x; b8: ResNet-18's 7x7 stride-2 stem
    0.70x; b1: PP-OCRv4's 3 -> 32 stride-2 stem at 640x640 0.51x channels-first columns)."""
    return (compiled.nhwc_conv is not None
            and all(isinstance(a, np.ndarray) and a.dtype == np.float32 for a in arrays)
            and c <= _DIRECT_MAX_CHANNELS[0]
            and oc <= _DIRECT_MAX_CHANNELS[1] and 8 * _padded_filters(oc) <= 9 * oc
            and out_size[1] >= 8)


def _padded_filters(oc):
    """OC rounded up to the register-blocked kernel's blocks of 16 output channels."""
    return -(-oc // 16) * 16


def direct_grad_runs(c, oc):
    """Whether a register-blocked conv (see `direct_nhwc_runs`) with c channels in and oc out
    has its weight gradient by the compiled kernel too: a multiple of 16 out, and enough
    channels in for its blocks of 8, padded with zeros, to beat BLAS on the columns: 6 ->
    8 (LeNet-5's second conv, b128: 0.71 against 1.35 ms), or 3 -> 8 with 16 out (ResNet-20's
    stem: 2.5 against 4.1 by channels-first columns), where BLAS runs thin products badly;
    not 3 -> 8 with 32 out (3.8 / 3.3) or 64 (ResNet-18's stem, b8: 34 / 15), nor 1 -> 8."""
    return oc % 16 == 0 and (c >= 6 or (c >= 3 and oc <= 16))


def padded_rows(x_nhwc, start, stop, rows, padding, channels=None):
    """Samples start:stop of channels-last x (N, H, W, C), any strides, padded with zeros:
    rows rows[0]:rows[1] of the padded image, whose row 0 is `top` rows above x's first, and
    `channels` channels (default C; more are zeros) -> C-contiguous (B, rows[1] - rows[0],
    left + W + right, channels). A view of x when nothing is padded and x's memory is
    channels-last, else a copy (a block's worth, while in cache)."""
    (top, bottom), (left, right) = padding
    h, w, c = x_nhwc.shape[1:]
    channels = c if channels is None else channels
    lo, hi = rows[0] - top, rows[1] - top  # in x's rows
    first = min(max(lo, 0), h)  # the rows of x inside, first:last (none in the padding)
    last = max(min(hi, h), first)
    inside = x_nhwc[start:stop, first:last]
    if (lo >= 0 and hi <= h and left == right == 0 and channels == c
            and inside.flags.c_contiguous):
        return inside
    out = np.zeros((stop - start, hi - lo, left + w + right, channels), x_nhwc.dtype)
    rows_out, cols_out = slice(first - lo, last - lo), slice(left, left + w)
    if c <= 4 and inside.strides[3] > inside.strides[2]:
        # a few channels of channels-first memory (an image batch into a first conv): one
        # plane at a time, so the copy's inner loop reads along a row instead of across
        # planes (b1 3x224x224: 0.18 -> 0.05 ms)
        for channel in range(c):
            out[:, rows_out, cols_out, channel] = inside[..., channel]
    else:
        out[:, rows_out, cols_out, :c] = inside
    return out


def conv_nhwc_direct(x_nhwc, padding, taps, stride, dilation, out_size, epilogue=None):
    """A (groups=1) convolution of x_nhwc (N, H, W, C), any strides, padded by `padding`, by
    the filters tap-major, taps (KH, KW, C, OC), any strides -> y (N, OH, OW, OC), with the
    compiled register-blocked kernel (`compiled.nhwc_conv`: no im2col copy; see
    `direct_nhwc_runs`), in blocks of samples or output rows over the threads: each block
    pads the input rows it reads (`padded_rows`), so no padded copy of the whole input is
    made; `epilogue(block)` then finishes each block (see `conv_epilogue`)."""
    n, (oh, ow) = x_nhwc.shape[0], out_size
    kh, kw, c, oc = taps.shape
    padded = np.zeros((kh, kw, c, _padded_filters(oc)), dtype=np.float32)  # (KH, KW, C, OCP)
    padded[..., :oc] = taps
    y = np.empty((n, oh, ow, oc), dtype=np.float32)
    reach = dilation[0] * (kh - 1) + 1  # the input rows under one output row

    def block_conv(block):
        start, stop, r0, r1 = block
        xpad = padded_rows(x_nhwc, start, stop, (r0 * stride[0], (r1 - 1) * stride[0] + reach),
                           padding)
        compiled.nhwc_conv(xpad, padded, y[start:stop, r0:r1], 0, stop - start, 0, r1 - r0,
                           *stride, *dilation)
        if epilogue is not None:
            epilogue(y[start:stop, r0:r1])

    # blocks of about _DIRECT_BLOCK_MACS multiply-adds (a few samples of a small layer)
    row_macs = ow * oc * kh * kw * c
    parallel_map(block_conv, sample_row_blocks(n, oh, row_macs, _DIRECT_BLOCK_MACS))
    return y


def conv_pointwise(x_nhwc, wrows, epilogue, block_bytes=None):
    """A 1x1 stride-1 (groups=1) convolution of channels-last x (N, H, W, C) by weight rows
    (OC, C) -> y (N, H, W, OC): the GEMM in blocks of whole output rows over the threads, each
    finished by `epilogue(block)` while in cache (see `conv_epilogue`) instead of a separate
    pass over y for the bias."""
    xp = xp_of(x_nhwc)
    n, h, w, c = x_nhwc.shape
    oc = wrows.shape[0]
    y = xp.empty((n, h, w, oc), dtype=xp.promote_types(x_nhwc.dtype, wrows.dtype))

    def block_product(block):
        start, stop, r0, r1 = block
        rows = x_nhwc[start:stop, r0:r1].reshape(-1, c)  # a view when x is channels-last
        matmul(rows, wrows.T, out=y[start:stop, r0:r1].reshape(-1, oc))
        epilogue(y[start:stop, r0:r1])

    block_bytes = 2 * _BLOCK_BYTES if block_bytes is None else block_bytes
    parallel_map(block_product, sample_row_blocks(n, h, w * max(c, oc) * y.itemsize, block_bytes),
                 calls_blas=True)
    return y


def conv_winograd(x, weight, padding, out_size, bias=None, relu=False, epilogue=None,
                  block_bytes=None):
    """A 3x3 stride-1 (groups=1) convolution by Winograd's minimal filtering F(2x2, 3x3), with
    the compiled kernels: x (N, C, H, W) padded by `padding` ((top, bottom), (left, right)),
    by weight (OC, C, 3, 3) -> y (N, OH, OW, OC). The tiles are read from channels-last memory
    (what a conv returns) in place, the padding as zeros around it (ResNet-18 b8's 64-channel
    layer: 3.2 -> 2.1 ms against a padded copy and its tiles); other x is first copied
    channels-last.

    Each 2x2 block of outputs takes 16 products per channel pair instead of 36: the input's
    4x4 tiles and the filters are transformed (V = B^T d B, U = G g G^T), the 16 positions are
    16 GEMMs (tiles, C) @ (C, OC) over the channels, and A^T M A turns each tile's 16 sums into
    its 2x2 outputs. Blocks of tile rows are transformed, multiplied and transformed back,
    spread over the threads. The output transform adds `bias` (OC,) and applies a ReLU
    (`relu`) as it writes each output, with the operations of `conv_epilogue`'s pass;
    `epilogue(block)`, when given, then finishes each block's output rows in place (another
    activation, see `conv_epilogue`).

    The sums come in another order than the direct conv's, through the transforms' adds and
    halvings, so the result differs from `conv_nhwc`'s in the last bits, as cuDNN's Winograd
    kernels' do: the error is within gamma_(C+12) of the same evaluation in absolute values
    (tests/ops/test_conv.py checks that bound against float64). The blocks depend on the
    sizes alone, so the result does not depend on the thread count.
    """
    n, (oh, ow) = x.shape[0], out_size
    oc, c = weight.shape[:2]
    tiles_h, tiles_w = (oh + 1) // 2, (ow + 1) // 2
    x_nhwc = pad_nhwc(x, (0, 0), (0, 0))  # (N, H, W, C): a view of channels-last memory
    (top, _), (left, _) = padding
    u = np.empty((16, oc, c), dtype=weight.dtype)  # the filters' transforms
    half = weight.dtype.type(0.5)
    taps = weight.transpose(0, 2, 3, 1)  # (OC, 3, 3, C): a view for channels-last weights

    def transform(s):  # the filters of output channels s
        compiled.winograd_weights(taps[s], half, np.empty((4, 3, c), u.dtype), u[:, s])

    parallel_map(transform, [slice(0, oc // 2), slice(oc // 2, oc)] if oc * c >= 1 << 16
                 else [slice(0, oc)])
    y = np.empty((n, oh, ow, oc), dtype=np.result_type(x, weight))
    bias_y = np.empty(0, y.dtype) if bias is None else bias.astype(y.dtype)
    ut = u.transpose(0, 2, 1)  # (16, C, OC), read by BLAS in place

    def block_conv(block):
        start, stop, r0, r1 = block
        v = np.empty((16, (stop - start) * (r1 - r0) * tiles_w, c), dtype=x.dtype)
        compiled.winograd_tiles(x_nhwc, top, left, tiles_w, v, np.empty((4, 4, c), v.dtype),
                                np.empty((4, 4, c), v.dtype), start, stop, r0, r1)
        m = np.matmul(v, ut)  # (16, T, OC)
        compiled.winograd_outputs(m, y, np.empty((4, oc), dtype=y.dtype), bias_y, relu, start,
                                  stop, r0, r1)
        if epilogue is not None:
            epilogue(y[start:stop, 2 * r0 : min(2 * r1, oh)])

    # Blocks of about `block_bytes` (default 4 * _BLOCK_BYTES) of V and M, at least two (two
    # threads share the work) of at least _WINOGRAD_BLOCK_TILES tiles: BLAS repacks the 16
    # filters' transforms for each block's products, so few big blocks beat cache-sized ones
    # (b8: 64 channels at 56x56 7.9 -> 7.0 ms from 2 to 8 MB, 256 at 14x14 6.2 -> 5.4). They
    # depend on the sizes alone, not on the threads: BLAS may sum a row in another order in
    # a product of another height.
    tile_bytes = 16 * (c + oc) * x.itemsize  # a tile's V and M
    block_bytes = 4 * _BLOCK_BYTES if block_bytes is None else block_bytes
    half_the_tiles = -(-n * tiles_h * tiles_w // 2)
    tiles = max(_WINOGRAD_BLOCK_TILES, min(block_bytes // tile_bytes, half_the_tiles))
    blocks = sample_row_blocks(n, tiles_h, tiles_w * tile_bytes, tiles * tile_bytes)
    parallel_map(block_conv, blocks, calls_blas=True)
    return y


def conv_epilogue(bias, finish, out_width, dtype):
    """What a conv applies to each block of its channels-last output (B, OH', OW, OC) in place,
    right after the block's GEMM: + bias, then `finish(rows)`, an activation in place (see
    ops.activation.in_place), with the same float operations as a separate bias pass and
    activation op, so the result is bit-identical. It works on rows of OW*OC values, with the
    bias tiled to match, so NumPy's loops run long even for a few channels. None when there is
    nothing to apply."""
    if bias is None and finish is None:
        return None
    tiled = None if bias is None else tile_channels(bias, out_width).astype(dtype)
    # the bias and an activation the compiled pass knows in one loop over the rows, instead
    # of a pass each (ONNX imports' convs have both: PP-LCNet's pointwise 16 -> 32 at
    # 112x112 with hardswish, b1, the whole conv 0.34 -> 0.25 ms)
    together = (tiled is not None and compiled.runs_on(compiled.bias_then, tiled)
                and (finish is None or finish in BIAS_ACTIVATIONS))

    def epilogue(block):
        rows = block.reshape(-1, block.shape[-2] * block.shape[-1])  # (B*OH', OW*OC), a view
        if together and rows.dtype == tiled.dtype and rows.flags.c_contiguous:
            compiled.bias_then(rows, tiled, BIAS_ACTIVATIONS.get(finish, compiled.BIAS_ONLY))
            return
        if tiled is not None:
            rows += tiled
        if finish is not None:
            finish(rows)

    return epilogue


class AffineFinish:
    """finish(rows) after rows * scale + shift per output channel, over a conv epilogue's rows
    (B*OH', OW*OC), as a callable: an eval-mode batch norm's pass (affine = (scale, shift)
    from `norm.per_channel_affine`, cast to `dtype`; the same two roundings per value as its
    pass), then the activation, if any. With the compiled path, and an activation it knows
    (`in_one_pass`), all in one pass (`compiled.affine_then`: PP-LCNet's 256-channel pointwise
    conv at 14x14 with hardswish, b1, the epilogue 0.042 -> 0.011 ms against the multiply,
    the add and the activation's pass); the depthwise kernel then applies it as it stores
    each sum (`scale`, `shift` and `activation`, a BIAS_* code; see `_stored_finish`)."""

    def __init__(self, affine, finish, out_width, dtype):
        self.scale, self.shift = (v.astype(dtype, copy=False) for v in affine)  # (OC,)
        self.finish, self.out_width = finish, out_width
        self.in_one_pass = (compiled.runs_on(compiled.affine_then, self.scale, self.shift)
                            and (finish is None or finish in BIAS_ACTIVATIONS))
        self.activation = BIAS_ACTIVATIONS.get(finish, compiled.BIAS_ONLY)

    def __call__(self, rows):
        scale, shift = self.scale, self.shift
        if self.in_one_pass and rows.dtype == scale.dtype and rows.flags.c_contiguous:
            compiled.affine_then(rows.reshape(-1, scale.shape[0]), scale, shift,
                                 self.activation)
            return
        xp_of(rows).multiply(rows, tile_channels(scale, self.out_width), out=rows)
        rows += tile_channels(shift, self.out_width)
        if self.finish is not None:
            self.finish(rows)


def _stored_finish(finish, dtype):
    """(scale, shift) or None, and the activation code, that the compiled depthwise kernel
    applies as it stores each sum in place of a conv's `finish` (None, an activation it
    knows, or an AffineFinish in one pass, in `dtype`); None when it cannot."""
    if finish is None or finish in BIAS_ACTIVATIONS:
        return None, BIAS_ACTIVATIONS.get(finish, compiled.BIAS_ONLY)
    if (isinstance(finish, AffineFinish) and finish.in_one_pass
            and finish.scale.dtype == dtype):
        return (finish.scale, finish.shift), finish.activation
    return None


def _planes_epilogue(bias, finish, dtype):
    """`conv_epilogue` for a block of channels-first output (B, OC, OH, OW), C-contiguous:
    + bias per plane, then `finish(block)`, the same float operations. None when there is
    nothing to apply."""
    if bias is None and finish is None:
        return None
    column = None if bias is None else bias.astype(dtype).reshape(-1, 1, 1)

    def epilogue(block):
        if column is not None:
            block += column
        if finish is not None:
            finish(block)

    return epilogue


def pad_nchw(x, pad_h, pad_w):
    """NCHW x -> C-contiguous zero-padded copy (N, C, top+H+bottom, left+W+right)."""
    xp = xp_of(x)
    n, c, h, w = x.shape
    (top, bottom), (left, right) = pad_h, pad_w
    out = xp.zeros((n, c, top + h + bottom, left + w + right), dtype=x.dtype)
    out[:, :, top : top + h, left : left + w] = x
    return out


def channels_first_columns(xpad, kernel, stride, dilation, out_size, out):
    """Unroll the windows of padded NCHW xpad (B, C, HP, WP) into out (C, KH, KW, B, OH, OW).

    The transpose of im2col, Caffe's layout: row (c, kh, kw) holds one tap of one channel for
    every output cell, so each of the KH*KW copies moves runs of OW values where the
    channels-last columns move runs of KW*C. For the first layer of a network (C = 1 or 3)
    that is 1.5-2x faster, and the rows are already in the weight's (C, KH, KW) order. It is
    one copy from a view of every window, not one per tap (LeNet-5's first conv, batch 128:
    1.9 -> 1.5 ms; the Python between 25 copies held up the other thread).
    """
    windows = window_view(xpad.transpose(0, 2, 3, 1), kernel, stride, dilation, out_size)
    out[...] = windows.transpose(5, 3, 4, 0, 1, 2)  # (B, OH, OW, KH, KW, C) -> (C, KH, KW, ...)


def _channels_first_block(xpad, block, kernel, stride, dilation, out_size, cols=None,
                          ones=False):
    """The channels-first columns of the samples block = (start, stop) as a (C*KH*KW, B*OH*OW)
    matrix (with a last row of ones when `ones`: a bias's input), unrolled into their slice of
    `cols` (the whole batch's columns, (C*KH*KW (+ 1), N*OH*OW)) when given, else into a
    buffer of their own."""
    xp = xp_of(xpad)
    start, stop = block
    c, (kh, kw), (oh, ow) = xpad.shape[1], kernel, out_size
    width, cells = c * kh * kw, oh * ow
    if cols is None:
        matrix = xp.empty((width + ones, (stop - start) * cells), dtype=xpad.dtype)
        if ones:
            matrix[width] = 1
        piece = matrix[:width].reshape(c, kh, kw, stop - start, oh, ow)
    else:
        matrix = cols[:, start * cells : stop * cells]  # a view
        piece = cols[:width].reshape(c, kh, kw, -1, oh, ow)[:, :, :, start:stop]
    channels_first_columns(xpad[start:stop], kernel, stride, dilation, out_size, piece)
    return matrix


def conv_channels_first(xpad, wrows, kernel, stride, dilation, out_size, keep_columns=False,
                        block_bytes=None, epilogue=None, bias=None):
    """A (groups=1) convolution of padded NCHW xpad (N, C, HP, WP) by weight rows
    (OC, C*KH*KW), through `channels_first_columns` -> (y (N, OH, OW, OC), the columns
    (C*KH*KW, N*OH*OW) or None).

    Blocks of samples as in `conv_nhwc`: unrolled, then multiplied as columns^T @ wrows^T
    (BLAS reads the transpose in place) into channels-last rows of y, then `epilogue(block)`.
    A bias (OC,) goes into the product as one more weight column whose input is a row of
    ones (the columns then have C*KH*KW + 1 rows): no pass of its own over y, and the weight
    gradient's product gives its gradient too (LeNet-5's and SimpleConvNet's first convs: the
    bias cost 0.65 ms of a 3.1 ms forward and backward as a separate pass and sum).
    """
    xp = xp_of(xpad)
    n, (oh, ow) = xpad.shape[0], out_size
    oc, width = wrows.shape
    ones = bias is not None
    if ones:
        wrows = xp.concatenate([wrows, bias.reshape(oc, 1).astype(wrows.dtype)], axis=1)
    y = xp.empty((n, oh, ow, oc), dtype=xp.result_type(xpad, wrows))
    cols = None
    if keep_columns:
        cols = xp.empty((width + ones, n * oh * ow), dtype=xpad.dtype)
        if ones:
            cols[width] = 1

    def block_conv(block):
        matrix = _channels_first_block(xpad, block, kernel, stride, dilation, out_size, cols,
                                       ones)
        matmul(matrix.T, wrows.T, out=y[block[0] : block[1]].reshape(-1, oc))
        if epilogue is not None:
            epilogue(y[block[0] : block[1]])

    block_bytes = 2 * _BLOCK_BYTES if block_bytes is None else block_bytes
    parallel_map(block_conv, sample_blocks(n, oh * ow * width * xpad.itemsize, block_bytes),
                 calls_blas=True)
    return y, cols


def conv_direct(xpad, weight, dilation, out_size, bias=None, finish=None, padding=None):
    """A stride-1 (groups=1) convolution of padded NCHW xpad (N, C, HP, WP), C-contiguous,
    by weight (OC, C, KH, KW) -> y (N, OH, OW, OC) (a view of channels-first memory where
    the register-blocked kernel runs, else channels-last), + bias, then `finish` (an in-place
    activation, see `conv_epilogue`, which runs on the channels-first blocks as they are),
    for layers with a few channels out, in blocks of samples over the
    threads. Where `nchw_blocked_runs`, the register-blocked kernel (`compiled.nchw_conv`:
    LeNet-5's first conv, b128, 1.74 -> 0.47 ms on one thread), which adds the bias as it
    stores each sum, else the plane kernel (`compiled.direct_conv`: a multiply-add of
    shifted whole planes per tap); the rest of the epilogue follows each block. With
    `padding` ((top, bottom), (left, right)), xpad is NCHW of any strides, unpadded, and each
    block pads its own samples (over the threads, while in cache)."""
    n, (oh, ow), oc = xpad.shape[0], out_size, weight.shape[0]
    width = xpad.shape[3] + (0 if padding is None else sum(padding[1]))  # the padded planes'
    span = (oh - 1) * width + ow
    dtype = np.result_type(xpad, weight)
    blocked = nchw_blocked_runs(xpad, weight, width, oh, dilation, copied=padding is not None)
    in_kernel = blocked and bias is not None and bias.dtype == np.float32
    bias4 = np.ascontiguousarray(bias if in_kernel else np.zeros(oc, np.float32)).reshape(
        1, 1, 1, oc)
    if blocked:  # channels-first memory, which it writes in runs of 16 columns
        planes = np.empty((n, oc, oh, ow), dtype=dtype)
        y = planes.transpose(0, 2, 3, 1)
        epilogue = _planes_epilogue(None if in_kernel else bias, finish, dtype)
    else:
        y = np.empty((n, oh, ow, oc), dtype=dtype)
        epilogue = conv_epilogue(bias, finish, ow, dtype)

    def block_conv(block):
        start, stop = block
        source = xpad[start:stop] if padding is None else pad_nchw(xpad[start:stop], *padding)
        if blocked:
            compiled.nchw_conv(source, weight, bias4, planes[start:stop], 0, stop - start,
                               in_kernel, *dilation)
        else:
            compiled.direct_conv(source, weight, np.empty((oc, span), dtype=y.dtype),
                                 y[start:stop], 0, stop - start, *dilation)
        if epilogue is not None:
            epilogue(planes[start:stop] if blocked else y[start:stop])

    # blocks of about _DIRECT_BLOCK_MACS multiply-adds: a layer with few outputs per sample
    # (LeNet-5's second conv's input gradient, 6 channels at 14x14) still splits
    sample_macs = oh * ow * oc * math.prod(weight.shape[1:])
    parallel_map(block_conv, sample_blocks(n, sample_macs, _DIRECT_BLOCK_MACS))
    return y


def nchw_blocked_runs(x, weight, width, oh, dilation, copied=False):
    """Whether `compiled.nchw_conv` takes a stride-1 conv of NCHW x (padded to planes
    `width` wide) by weight (OC, C, KH, KW) with OH output rows: float32 arrays, the filters
    C-contiguous and x too unless each block pads it into a copy (`copied`), at most
    NCHW_MAX_CHANNELS out, enough rows for its blocks, and planes wide enough for its blocks
    of 16 columns (OW >= 16, or planes padded wider)."""
    return (compiled.nchw_conv is not None
            and all(isinstance(a, np.ndarray) and a.dtype == np.float32 for a in (x, weight))
            and weight.flags.c_contiguous and (copied or x.flags.c_contiguous)
            and weight.shape[0] <= compiled.NCHW_MAX_CHANNELS and oh >= compiled.NCHW_ROWS
            and width >= 16 + dilation[1] * (weight.shape[3] - 1))


def conv_direct_weight_grad(xpad, gy_nhwc, w_shape, dilation):
    """Weight gradient (OC, C, KH, KW) of `conv_direct` from gy_nhwc (N, OH, OW, OC): blocks
    of samples over the threads, each summed in float64, then the blocks in order, so the
    result does not depend on the thread count. Where `nchw_grad_runs`, the register-blocked
    kernel (`compiled.nchw_conv_weight_grad`: LeNet-5's first conv, b128, 1.71 -> 1.00 ms on
    one thread, gy's planes laid out in it), else the plane kernel
    (`compiled.direct_conv_weight_grad`)."""
    n, oh, ow, oc = gy_nhwc.shape
    span = (oh - 1) * xpad.shape[3] + ow
    blocked = nchw_grad_runs(xpad, gy_nhwc, w_shape, dilation)
    columns = _nchw_columns(ow)
    if blocked:  # channels-first gy, a view when its memory is (as `conv_direct`'s output)
        gy_planes = np.ascontiguousarray(gy_nhwc.transpose(0, 3, 1, 2))  # (N, OC, OH, OW)

    def block_grad(block):
        start, stop = block
        gw = np.zeros(w_shape, dtype=np.float64)
        if blocked:
            planes = np.empty((1, oc, oh, columns), dtype=np.float32)  # one sample's gy
            compiled.nchw_conv_weight_grad(xpad, gy_planes, planes, gw, start, stop, *dilation)
        else:
            compiled.direct_conv_weight_grad(xpad, gy_nhwc, np.empty((oc, span), gy_nhwc.dtype),
                                             gw, start, stop, *dilation)
        return gw

    sample_macs = oh * ow * math.prod(w_shape)
    blocks = sample_blocks(n, sample_macs, _DIRECT_BLOCK_MACS)
    return sum_in_order(parallel_map(block_grad, blocks)).astype(gy_nhwc.dtype)


def _nchw_columns(ow):
    """OW rounded up to the channels-first kernels' blocks of 16 columns."""
    return -(-ow // 16) * 16


def direct_planes_width(ow, kw, dw):
    """The padded width of a `conv_direct` input whose weight gradient the register-blocked
    kernel can take: its blocks of 16 output columns (zero past OW) read that far."""
    return _nchw_columns(ow) + dw * (kw - 1)


def nchw_grad_runs(xpad, gy_nhwc, w_shape, dilation):
    """Whether `compiled.nchw_conv_weight_grad` takes the weight gradient of a stride-1 conv
    of padded NCHW xpad: float32 C-contiguous arrays, at most NCHW_MAX_CHANNELS out, at
    most 30 kernel columns, and xpad as wide as `direct_planes_width`."""
    oc, _, _, kw = w_shape
    return (compiled.nchw_conv_weight_grad is not None
            and all(isinstance(a, np.ndarray) and a.dtype == np.float32
                    for a in (xpad, gy_nhwc))
            and xpad.flags.c_contiguous and oc <= compiled.NCHW_MAX_CHANNELS and kw <= 30
            and xpad.shape[3] >= direct_planes_width(gy_nhwc.shape[2], kw, dilation[1]))


def conv_channels_first_weight_grad(gy_rows, kernel, stride, dilation, out_size, xpad=None,
                                    cols=None, chunk_bytes=None, ones=False):
    """Weight gradient of `conv_channels_first`: (OC, C*KH*KW) = gy_rows^T @ columns^T, with
    the bias's gradient as one more column (the sum of gy_rows) when the columns have their
    row of ones (`ones`, or kept columns with C*KH*KW + 1 rows).

    gy_rows: (N*OH*OW, OC). Reads the kept columns (C*KH*KW (+ 1), N*OH*OW) when given, else
    unrolls padded NCHW xpad (N, C, HP, WP) again, a block of samples at a time. Blocks run
    over the threads (a thin product of very long rows: 2x faster than one BLAS call at
    C = 1) and are summed in block order.
    """
    (kh, kw), (oh, ow) = kernel, out_size
    n = gy_rows.shape[0] // (oh * ow)
    width = cols.shape[0] if xpad is None else xpad.shape[1] * kh * kw + ones

    def block_grad(block):
        start, stop = block
        if xpad is None:
            matrix = cols[:, start * oh * ow : stop * oh * ow]
        else:
            matrix = _channels_first_block(xpad, block, kernel, stride, dilation, out_size,
                                           ones=ones)
        return matmul(matrix, gy_rows[start * oh * ow : stop * oh * ow])  # (K, OC)

    blocks = sample_blocks(n, oh * ow * width * gy_rows.itemsize, chunk_bytes)
    return sum_in_order(parallel_map(block_grad, blocks, calls_blas=True)).T


def conv_input_grad_nhwc(gy_rows, wtaps, padded_shape, stride, dilation, out_size,
                         chunk_bytes=None):
    """Gradient of a (groups=1) convolution w.r.t. its padded input, GEMM and col2im fused.

    gy_rows: (N, OH*OW, OC) upstream gradient; wtaps: (KH, KW, OC, C) weights tap-major
    -> (N, HP, WP, C) = sum over taps (i, j) of (gy_rows @ wtaps[i, j]) added at the tap's
    window offset (the adjoint of `window_view`). Samples go in blocks of about `chunk_bytes`
    (default _BLOCK_BYTES / 8) per tap product, so each product is added back while still in
    cache; the adds then run over whole contiguous rows of OW*C values. With the compiled
    path, one GEMM per block of samples and a compiled col2im instead (see below).
    """
    xp = xp_of(gy_rows)
    kh, kw, oc, c = wtaps.shape
    oh, ow = out_size
    dx = xp.zeros(padded_shape, dtype=gy_rows.dtype)
    if compiled.runs_on(compiled.col2im_rows, dx):
        # One GEMM per block into its columns' gradient (N = KH*KW*C, a product BLAS runs
        # well, where a GEMM per tap has N = C), then the compiled col2im adds them back tap
        # by tap while the block's dx is in cache: LeNet-5's 6->16 conv 2.3 -> 1.5 ms,
        # ResNet-20's 16->32 stride-2 conv 5.7 -> 3.1 ms.
        wrows = xp.ascontiguousarray(wtaps.transpose(2, 0, 1, 3)).reshape(oc, -1)

        def block_col2im(block):
            start, stop = block
            dcols = matmul(gy_rows[start:stop].reshape(-1, oc), wrows)  # (B*OH*OW, KH*KW*C)
            compiled.col2im_rows(dcols.reshape(stop - start, oh, ow, kh, kw, c),
                                 dx[start:stop], 0, stop - start, *stride, *dilation)

        parallel_map(block_col2im, sample_blocks(
            gy_rows.shape[0], oh * ow * kh * kw * c * gy_rows.itemsize, _BLOCK_BYTES // 2),
            calls_blas=True)
        return dx

    def block_grad(block):
        start, stop = block
        gy_block = gy_rows[start:stop].reshape(-1, gy_rows.shape[2])  # (B*OH*OW, OC)
        product = xp.empty((gy_block.shape[0], c), dtype=gy_rows.dtype)  # one GEMM per tap
        for i in range(kh):
            for j in range(kw):
                rows, cols = window_slice(i, j, stride, dilation, out_size)
                matmul(gy_block, wtaps[i, j], out=product)
                dx[start:stop, rows, cols, :] += product.reshape(-1, oh, ow, c)

    chunk_bytes = _BLOCK_BYTES // 8 if chunk_bytes is None else chunk_bytes
    parallel_map(block_grad, sample_blocks(gy_rows.shape[0], oh * ow * c * gy_rows.itemsize,
                                           chunk_bytes), calls_blas=True)
    return dx


def conv_weight_grad(x, gy_rows, kernel, stride, padding, dilation, out_size,
                     chunk_bytes=None):
    """Gradient of a (groups=1) convolution w.r.t. its weight rows, im2col recomputed in blocks
    (or the compiled register-blocked kernel where `direct_grad_runs`, see
    `conv_weight_grad_direct`).

    x: the unpadded input (N, C, H, W); gy_rows: (N*OH*OW, OC) upstream gradient
    -> (OC, KH*KW*C) = gy_rows^T @ im2col(pad(x)). Forward keeps only x, not the KH*KW times
    larger columns: here a few samples at a time (columns of about `chunk_bytes`, default
    2 * _BLOCK_BYTES like the forward's blocks: on ResNet-20's 16-channel convs, 128 x 16 x
    32 x 32, 8.3 ms against 10.6 with 2 MB) are padded, unrolled and consumed while still in
    cache; the blocks' sums are added in block order.
    """
    xp = xp_of(x)
    n, c = x.shape[:2]
    (kh, kw), (oh, ow) = kernel, out_size
    width = kh * kw * c
    oc = gy_rows.shape[-1]
    if direct_grad_runs(c, oc) and direct_nhwc_runs((x, gy_rows), c, oc, out_size):
        return conv_weight_grad_direct(x, gy_rows, kernel, stride, padding, dilation, out_size)

    def block_grad(block):
        start, stop = block
        windows = window_view(pad_nhwc(x[start:stop], *padding), kernel, stride, dilation,
                              out_size)  # (B, OH, OW, KH, KW, C)
        cols = xp.ascontiguousarray(windows).reshape(-1, width)  # (B*OH*OW, KH*KW*C)
        # (cols^T gy)^T: OpenBLAS runs this form of the long reduction markedly faster
        return matmul(cols.T, gy_rows[start * oh * ow : stop * oh * ow]).T

    chunk_bytes = 2 * _BLOCK_BYTES if chunk_bytes is None else chunk_bytes
    return sum_in_order(parallel_map(
        block_grad, sample_blocks(n, oh * ow * width * x.itemsize, chunk_bytes), calls_blas=True))


def conv_weight_grad_direct(x, gy_rows, kernel, stride, padding, dilation, out_size):
    """`conv_weight_grad` by the compiled register-blocked kernel
    (`compiled.nhwc_conv_weight_grad`, see `direct_nhwc_runs`), in blocks of samples or of
    one sample's output rows as in the forward (the kernel passes over its block's upstream
    gradient once per tap, so a block must stay in cache: ResNet-18's 112x112 stem gradient
    by whole samples was 4x slower), each padded channels-last on its own and reduced over
    the threads; the blocks' sums are added in block order."""
    n, c = x.shape[:2]
    (kh, kw), (oh, ow) = kernel, out_size
    oc = gy_rows.shape[-1]
    gy = np.ascontiguousarray(gy_rows).reshape(n, oh, ow, oc)
    x_nhwc = x.transpose(0, 2, 3, 1)  # (N, H, W, C) view
    reach = dilation[0] * (kh - 1) + 1  # the input rows under one output row
    # the kernel's blocks of 8 or 16 channels: fewer are padded with zeros
    channels = max(c, compiled.weight_grad_channel_block(c, oc))

    def block_grad(block):
        start, stop, r0, r1 = block
        xpad = padded_rows(x_nhwc, start, stop, (r0 * stride[0], (r1 - 1) * stride[0] + reach),
                           padding, channels)  # (B, rows, WP, channels)
        gw = np.empty((kh, kw, channels, oc), dtype=np.float32)
        compiled.nhwc_conv_weight_grad(xpad, gy[start:stop, r0:r1], gw, 0, stop - start,
                                       *stride, *dilation)
        return gw[:, :, :c]

    row_macs = ow * kh * kw * channels * oc
    blocks = sample_row_blocks(n, oh, row_macs, _DIRECT_BLOCK_MACS)
    gw = sum_in_order(parallel_map(block_grad, blocks))
    return gw.reshape(kh * kw * c, oc).T  # (OC, KH*KW*C)


def col2im_groups(dcols, padded_shape, kernel, stride, dilation, out_size):
    """Adjoint of `im2col_nhwc`: (G, N*OH*OW, KH*KW*Cg) -> padded (N, HP, WP, G*Cg)."""
    shape = (padded_shape[0], *out_size, *kernel, padded_shape[3])
    dwindows = ungroup_columns(dcols, shape)  # (N, OH, OW, KH, KW, C)
    return col2im_nhwc(dwindows, padded_shape, kernel, stride, dilation)


def depthwise_nhwc(xp_nhwc, taps, stride, dilation, out_size, bias=None, finish=None,
                   padding=None):
    """Depthwise cross-correlation, one multiply-add pass per kernel tap, + bias, then
    `finish` (a conv's epilogue, see `conv_epilogue`) on each block while in cache.

    xp_nhwc: padded (N, HP, WP, C), or with `padding` ((top, bottom), (left, right)) the
    unpadded channels-last x (N, H, W, C), padded here: the register-blocked kernel reads the
    padding as zeros without a copy where a block of pixels fits between the padded columns
    (`compiled.depthwise_pads_in_place`), else a padded copy is made; taps: (KH, KW, C, M) (M
    outputs per channel, the depth multiplier); bias: (C*M,) or None -> (N, OH, OW, C, M).
    Faster than a batched GEMM of C tiny matrices. Works in sample blocks that stay in cache
    across the KH*KW passes (memory-bound otherwise), over the threads; a block is a few samples
    or, for big maps (a batch of one), a band of one sample's output rows. With the compiled
    path (ops/compiled.py, M = 1) each block is one pass instead of two NumPy passes per tap,
    the same float operations in the same order: per output pixel, or for few channels at stride
    1 along whole output rows (b8, one thread: 256 channels 5x5 at 14x14 1.14 -> 0.71-0.81 ms,
    32 at 112x112 stride 2 1.35 -> 0.97-1.08, 16 at 112x112 4.0 -> 1.35-1.4 against the per-tap
    per-pixel kernel before it). In float32 with channels a multiple of 16 (and M = 1) the
    register-blocked kernel runs instead (`_depthwise_blocked`; b1, PP-LCNet's layers, min of
    200 runs: 256 channels 5x5 at 14x14 0.134 -> 0.105 ms, 64 3x3 at 56x56 0.309 -> 0.181,
    16 at 112x112 0.221 -> 0.130; b8 256 at 14x14 0.633 -> 0.533, 16 at 112x112
    1.110 -> 0.538). It reads `padding` as zeros in place of a padded copy (a padded copy and
    the kernel against the kernel alone: 32 channels at 112x112 stride 2 0.240 -> 0.103 ms,
    128 at 28x28 0.093 -> 0.050, 64 at 56x56 0.145 -> 0.123).
    """
    xp = xp_of(xp_nhwc)
    kh, kw, c, m = taps.shape
    n = xp_nhwc.shape[0]
    oh, ow = out_size
    (sh, _), (dh, _) = stride, dilation
    y = xp.empty((n, oh, ow, c, m), dtype=xp_nhwc.dtype)
    blocked = depthwise_blocked_runs(xp_nhwc, taps)
    if padding is not None and not (
            blocked and xp_nhwc.flags.c_contiguous
            and compiled.depthwise_pads_in_place(xp_nhwc.shape[2], ow, kw, stride[1],
                                                 dilation[1], padding[1][0])):
        xp_nhwc, padding = pad_nhwc(xp_nhwc.transpose(0, 3, 1, 2), *padding), None
    if blocked:
        top_left = (0, 0) if padding is None else (padding[0][0], padding[1][0])
        return _depthwise_blocked(np.ascontiguousarray(xp_nhwc), taps, stride, dilation,
                                  top_left, y, bias, finish)
    blocks = sample_row_blocks(n, oh, ow * c * m * y.itemsize, _BLOCK_BYTES // 4)
    if (compiled.depthwise_rows is not None and xp is np and m == 1
            and xp_nhwc.dtype == taps.dtype):
        flat_y = y[..., 0]  # (N, OH, OW, C)
        flat_bias = np.empty(0, y.dtype) if bias is None else bias.astype(y.dtype, copy=False)
        then = conv_epilogue(None, finish, ow, y.dtype)  # the bias is in the kernel
        if stride[1] == 1 and c <= _FLAT_DEPTHWISE_CHANNELS:  # a pass per output row
            row_taps = np.ascontiguousarray(np.broadcast_to(
                taps[:, :, None, :, 0], (kh, kw, ow, c))).reshape(kh, kw, ow * c)
            row_bias = tile_channels(flat_bias, ow) if bias is not None else flat_bias
            x_rows = np.ascontiguousarray(xp_nhwc).reshape(*xp_nhwc.shape[:2], -1)
            y_rows = y.reshape(n, oh, ow * c)

            def kernel(start, stop, r0, r1):
                compiled.depthwise_row_runs(x_rows, row_taps, row_bias, y_rows, start, stop,
                                            r0, r1, sh, dh, dilation[1] * c)
        else:  # a pass per output pixel
            flat_taps = np.ascontiguousarray(taps[..., 0])  # (KH, KW, C)

            def kernel(start, stop, r0, r1):
                compiled.depthwise_rows(xp_nhwc, flat_taps, flat_bias, flat_y, start, stop,
                                        r0, r1, *stride, *dilation)

        def block_compiled(block):
            kernel(*block)
            if then is not None:
                start, stop, r0, r1 = block
                then(flat_y[start:stop, r0:r1])

        parallel_map(block_compiled, blocks)
        return y
    epilogue = conv_epilogue(bias, finish, ow, y.dtype)
    # taps repeated along OW: at stride 1 NumPy then runs each pass over whole rows of OW*C
    # values instead of C at a time (1.5x on b32 96x32x32)
    row_taps = xp.ascontiguousarray(xp.broadcast_to(taps[:, :, None], (kh, kw, ow, c, m)))

    def block_taps(block):
        start, stop, r0, r1 = block
        # output rows r0:r1 read the input rows from r0 * SH on, where their windows start
        x_block = xp_nhwc[start:stop, r0 * sh : (r1 - 1) * sh + (kh - 1) * dh + 1]
        y_block = y[start:stop, r0:r1]
        product = xp.empty(y_block.shape, dtype=y.dtype)
        for i in range(kh):
            for j in range(kw):
                rows, cols = window_slice(i, j, stride, dilation, (r1 - r0, ow))
                if i == j == 0:  # the first tap starts the sum
                    xp.multiply(x_block[:, rows, cols, :, None], row_taps[i, j], out=y_block)
                    continue
                xp.multiply(x_block[:, rows, cols, :, None], row_taps[i, j], out=product)
                y_block += product
        if epilogue is not None:
            epilogue(y_block.reshape(*y_block.shape[:3], c * m))

    parallel_map(block_taps, blocks)
    return y


def depthwise_blocked_runs(x_nhwc, taps):
    """Whether `depthwise_nhwc` runs the register-blocked kernel on x (N, H, W, C) and taps
    (KH, KW, C, M): float32 NumPy arrays, depth multiplier 1, channels a multiple of 16."""
    return (compiled.runs_on(compiled.depthwise_blocked, x_nhwc, taps) and taps.shape[3] == 1
            and x_nhwc.dtype == taps.dtype == np.float32
            and taps.shape[2] % compiled.DEPTHWISE_LANES == 0)


def _depthwise_blocked(x, taps, stride, dilation, top_left, y, bias, finish):
    """`depthwise_nhwc` by the register-blocked kernel (`compiled.depthwise_blocked`, float32,
    channels a multiple of 16, depth multiplier 1) on channels-last x padded by top_left
    (top rows, left columns; (0, 0) for a padded copy), into y (N, OH, OW, C, 1), in blocks
    of about _DIRECT_BLOCK_MACS multiply-adds over the threads (a batch of one's small
    layers run on one thread: no hand-off), each finished while in cache: by the kernel as
    it stores each sum where it knows `finish` (an activation, or an AffineFinish in one pass:
    PP-LCNet's thirteen depthwise convs, b1, no pass of their own for the batch norm and
    hardswish), else by a pass over the block."""
    n, oh, ow, c, _ = y.shape
    kh, kw = taps.shape[:2]
    flat_y = y.reshape(n, oh, ow, c)
    with_bias = bias is not None
    bias4 = (bias.astype(np.float32, copy=False) if with_bias
             else np.zeros(c, np.float32)).reshape(1, 1, 1, c)
    taps = np.ascontiguousarray(taps)
    stored = _stored_finish(finish, y.dtype)  # applied as each sum is stored, if it can be
    affine, activation = (None, compiled.BIAS_ONLY) if stored is None else stored
    scale4, shift4 = (bias4, bias4) if affine is None else (
        v.reshape(1, 1, 1, c) for v in affine)
    then = None if stored is not None else conv_epilogue(None, finish, ow, y.dtype)

    def block(item):
        start, stop, r0, r1 = item
        compiled.depthwise_blocked(x, taps, bias4, scale4, shift4, flat_y, start, stop, r0, r1,
                                   *stride, *dilation, *top_left, with_bias,
                                   affine is not None, activation)
        if then is not None:
            then(flat_y[start:stop, r0:r1])

    parallel_map(block, sample_row_blocks(n, oh, ow * c * kh * kw, _DIRECT_BLOCK_MACS))
    return y


def depthwise_nhwc_grads(gy, taps, padded_shape, stride, dilation, xp_nhwc=None, need_x=True):
    """Gradients of `depthwise_nhwc`: (d padded input (N, HP, WP, C), d taps (KH, KW, C, M)).

    gy: (N, OH, OW, C, M). The input gradient is None unless need_x; the taps gradient is None
    unless the padded input xp_nhwc is given. Sample blocks over the threads, as the forward;
    the blocks' tap gradients are added in block order.
    """
    xp = xp_of(gy)
    kh, kw, c, m = taps.shape
    n, oh, ow = gy.shape[:3]
    dxpad = xp.zeros(padded_shape, dtype=gy.dtype) if need_x else None
    row_taps = xp.ascontiguousarray(xp.broadcast_to(taps[:, :, None], (kh, kw, ow, c, m)))

    def block_grads(block):
        start, stop = block
        gy_block = gy[start:stop]  # (B, OH, OW, C, M)
        product = xp.empty(gy_block.shape, dtype=gy.dtype)
        dtaps = None if xp_nhwc is None else xp.empty(taps.shape, dtype=gy.dtype)
        for i in range(kh):
            for j in range(kw):
                rows, cols = window_slice(i, j, stride, dilation, out_size=(oh, ow))
                if need_x:
                    xp.multiply(gy_block, row_taps[i, j], out=product)
                    dxpad[start:stop, rows, cols, :] += (
                        product[..., 0] if m == 1 else product.sum(axis=-1))  # over M
                if dtaps is not None:
                    xp.multiply(xp_nhwc[start:stop, rows, cols, :, None], gy_block, out=product)
                    # sum over the (B, OH) rows of OW*C*M values (a BLAS product), then fold OW
                    column_sums = ones[: (stop - start) * oh] @ product.reshape(-1, ow * c * m)
                    dtaps[i, j] = column_sums.reshape(ow, c, m).sum(axis=0)
        return dtaps

    blocks = sample_blocks(n, oh * ow * c * m * gy.itemsize, _BLOCK_BYTES // 4)
    ones = xp.ones((blocks[0][1] - blocks[0][0]) * oh, dtype=gy.dtype)
    partials = parallel_map(block_grads, blocks, calls_blas=True)
    return dxpad, None if xp_nhwc is None else sum_in_order(partials)


def channels_last_rows(x):
    """(N, C, *S) -> 2-D channels-last rows (R, P*C): column k holds channel k % C.

    P is the last spatial size (1 without spatial axes), R = N * the other spatial sizes. A
    view when x is an NCHW view of channels-last memory (what conv returns), else one copy.
    Per-channel work on these rows runs NumPy's inner loops over P*C values, not C: a per-channel
    vector broadcasts as `tile_channels(v, P)`. Returns (rows, P); `rows_to_channels_first`
    undoes it.
    """
    xp = xp_of(x)
    last = (0, *range(2, x.ndim), 1)  # moveaxis(x, 1, -1) without its argument checks
    moved = xp.ascontiguousarray(x.transpose(last))  # (N, *S, C), a view when it can be
    period = x.shape[-1] if x.ndim > 2 else 1
    return moved.reshape(-1, period * x.shape[1]), period


def rows_to_channels_first(rows, shape):
    """Inverse of `channels_last_rows`: (R, P*C) -> NCHW view (N, C, *S) of `shape`."""
    n, c, *spatial = shape
    first = (0, len(shape) - 1, *range(1, len(shape) - 1))  # moveaxis(..., -1, 1)
    return rows.reshape(n, *spatial, c).transpose(first)


def tile_channels(v, period):
    """Per-channel vector (C,) -> (P*C,), matching the columns of `channels_last_rows`."""
    return xp_of(v).tile(v, period)


def row_blocks(rows):
    """(start, stop) blocks over the first axis of `rows`, about _BLOCK_BYTES each."""
    return sample_blocks(rows.shape[0], rows[:1].nbytes)


def channel_sums(rows, channels, dtype=None):
    """Sum of every channel over channels-last rows (R, P*C) -> (C,).

    By default a matrix-vector product with ones per row block, then a fold of the P column
    groups: about 10x faster than ndarray.sum over the strided axes when C is small. With a
    dtype (float64), a NumPy reduce that accumulates in it instead, slower but exact enough
    that a constant channel's mean is that constant, as PyTorch's double accumulator is.
    """
    xp = xp_of(rows)

    def block_sums(block):
        piece = rows[block[0] : block[1]]
        if dtype is None:
            return xp.ones(piece.shape[0], dtype=rows.dtype) @ piece  # (P*C,)
        return piece.sum(axis=0, dtype=dtype)

    partials = parallel_map(block_sums, row_blocks(rows), calls_blas=dtype is None)
    return _fold(partials, channels, rows, dtype or rows.dtype)


def channels_first_sums(x):
    """Sum of every channel of C-contiguous channels-first x (N, C, *S) -> (C,): each plane's
    sum as a product with ones, in blocks of samples over the threads, then the blocks' in
    order (no channels-last copy of x, as `channel_sums` would need)."""
    xp = xp_of(x)
    n, c = x.shape[:2]
    size = math.prod(x.shape[2:])
    ones = xp.ones(size, dtype=x.dtype)

    def block_sums(block):
        planes = x[block[0] : block[1]].reshape(-1, size)  # (B*C, S)
        return (planes @ ones).reshape(-1, c).sum(axis=0)  # (C,)

    partials = parallel_map(block_sums, sample_blocks(n, x[:1].nbytes), calls_blas=True)
    return sum_in_order(partials) if partials else xp.zeros(c, dtype=x.dtype)


def channel_dots(a, b, channels):
    """Per-channel sum of a * b over channels-last rows (R, P*C) -> (C,), no temporary."""
    xp = xp_of(a)
    partials = parallel_map(
        lambda block: xp.einsum("rk,rk->k", a[block[0] : block[1]], b[block[0] : block[1]]),
        row_blocks(a))
    return _fold(partials, channels, a, a.dtype)


def _fold(column_partials, channels, rows, dtype):
    """Block partials of (P*C,) column sums, added in block order -> per-channel (C,).

    No partials (`rows` has no rows: an empty batch) sum to zeros in `dtype`."""
    if not column_partials:
        return xp_of(rows).zeros(channels, dtype=dtype)
    return sum_in_order(column_partials).reshape(-1, channels).sum(axis=0)


def channel_moments(rows, channels, period):
    """Per-channel mean and biased variance of channels-last rows (R, P*C) -> float64 (C,), (C,),
    reading the rows from memory once.

    Each block of rows, while in cache, gives its float64 sums and its squared deviations from
    its own mean (rounded to the rows' dtype, as the centred values are); the blocks combine in
    block order with the exact correction for each block's centre (Chan, Golub and LeVeque), so
    a constant channel has variance exactly 0 and the result does not depend on the threads.
    """
    xp = xp_of(rows)

    def block_moments(block):
        piece = rows[block[0] : block[1]]
        count = piece.shape[0] * period
        if (compiled.channel_sums_and_squares is not None and xp is np
                and piece.flags.c_contiguous):  # one compiled call
            sums, squares = np.empty(channels), np.empty(channels)
            centre = compiled.channel_sums_and_squares(piece.reshape(-1, channels), sums,
                                                       squares)
            return count, sums, centre.astype(np.float64), squares
        sums = piece.sum(axis=0, dtype=xp.float64).reshape(period, channels).sum(axis=0)  # (C,)
        centre = (sums / count).astype(rows.dtype)
        centered = piece - tile_channels(centre, period)  # (B, P*C), in cache
        squares = xp.einsum("rk,rk->k", centered, centered)  # (P*C,)
        return count, sums, centre.astype(xp.float64), squares.reshape(period, channels).sum(
            axis=0, dtype=xp.float64)

    partials = parallel_map(block_moments, row_blocks(rows))
    if not partials:
        return xp.zeros(channels), xp.zeros(channels)
    total = sum(count for count, _, _, _ in partials)
    mean = sum_in_order([sums for _, sums, _, _ in partials]) / total
    m2 = xp.zeros(channels)
    for count, sums, centre, squares in partials:
        # sum over the block of (x - mean)^2, from its squares about `centre`
        offset = centre - mean
        m2 += squares + 2 * offset * (sums - count * centre) + count * offset * offset
    return mean, m2 / total


def relu_in_place(x):
    """x <- max(x, 0) (NaN stays NaN), the Relu op's forward on a block in place: one
    compiled pass over contiguous float memory, else NumPy's maximum."""
    if compiled.runs_on(compiled.relu_in_place, x) and x.flags.c_contiguous:
        compiled.relu_in_place(x.reshape(-1))  # a view
    else:
        xp_of(x).maximum(x, x.dtype.type(0), out=x)


# The in-place activations that `compiled.bias_then` applies with a conv's bias, by its code
# for each (ops.activation adds its hard gate, the hardswish)
BIAS_ACTIVATIONS = {relu_in_place: compiled.BIAS_RELU}


def relu_gradient(gy, y):
    """gy * (y > 0), the gradient of a ReLU from its output y (max(x, 0) > 0 exactly where
    x > 0), by the same multiply with a bool mask as the Relu op: the same bits, -0.0
    included. In blocks over the threads -> gx in y's memory layout."""
    xp = xp_of(gy)
    gx = xp.empty_like(y, dtype=gy.dtype)
    elementwise_blocks(lambda gy, y, gx: xp.multiply(gy, y > 0, out=gx), gy, y, gx)
    return gx


def channel_grad_sums(gy_rows, x_rows, mean, period, relu_rows=None):
    """Batch norm's two backward sums per channel, reading gy and x from memory once:
    sum(gy) and sum(gy * (x - mean)) over channels-last rows (R, P*C) -> (C,), (C,).
    relu_rows: a fused ReLU's output (R, P*C), by which gy is masked block by block (batch
    norm does it so only when the compiled passes run, see `compiled_relu_masking`: in NumPy
    the mask costs a pass per block each time)."""
    xp = xp_of(gy_rows)
    channels = mean.shape[0]
    tiled_mean = tile_channels(mean, period).astype(x_rows.dtype)
    # compiled (ops/compiled.py): one pass, the products summed in float64, so the sums
    # differ from the NumPy path's float32 ones by float32 rounding
    use_compiled = _compiled_rows(compiled.channel_grad_sums, gy_rows, x_rows)
    flat_mean = mean.astype(x_rows.dtype)

    def block_sums(block):
        gy = gy_rows[block[0] : block[1]]
        if use_compiled:
            sums, dots = np.empty(channels), np.empty(channels)
            compiled.channel_grad_sums(gy.reshape(-1, channels), x_rows[block[0] : block[1]]
                                       .reshape(-1, channels), flat_mean,
                                       _rows_or_none(relu_rows, block, channels), sums, dots)
            return sums, dots
        if relu_rows is not None:
            gy = gy * (relu_rows[block[0] : block[1]] > 0)
        centered = x_rows[block[0] : block[1]] - tiled_mean  # in cache
        ones = xp.ones(gy.shape[0], dtype=gy.dtype)
        return ones @ gy, xp.einsum("rk,rk->k", gy, centered)  # (P*C,) each

    partials = parallel_map(block_sums, row_blocks(gy_rows), calls_blas=True)
    return (_fold([s for s, _ in partials], channels, gy_rows, gy_rows.dtype).astype(
                gy_rows.dtype, copy=False),
            _fold([d for _, d in partials], channels, gy_rows, gy_rows.dtype).astype(
                gy_rows.dtype, copy=False))


def _compiled_rows(kernel, *rows):
    """Whether the compiled `kernel` (None without numba) runs on these rows: NumPy arrays,
    C-contiguous."""
    return kernel is not None and all(xp_of(r) is np and r.flags.c_contiguous for r in rows)


def compiled_relu_masking(gy_rows, x_rows):
    """Whether the compiled batch-norm backward passes run for these rows and can mask gy by
    a fused ReLU's output inside them (saving the separate `relu_gradient` pass)."""
    return (_compiled_rows(compiled.channel_grad_sums, gy_rows, x_rows)
            and _compiled_rows(compiled.batch_norm_input_grad, gy_rows, x_rows))


def _rows_or_none(relu_rows, block, channels):
    """The block's rows of a fused ReLU's output as (L, C), or an empty (0, C) array (none)."""
    if relu_rows is None:
        return np.empty((0, channels), dtype=np.float32)
    return relu_rows[block[0] : block[1]].reshape(-1, channels)


def batch_norm_input_grad(gy_rows, x_rows, mean, scale, k, shift, period, relu_rows=None):
    """gy * scale + (x - mean) * k + shift per channel over channels-last rows (R, P*C): batch
    norm's training input gradient in one pass, x centred block by block in cache (relu_rows:
    as in `channel_grad_sums`)."""
    xp = xp_of(gy_rows)
    out = xp.empty_like(gy_rows)
    tiled = [tile_channels(v, period).astype(gy_rows.dtype) for v in (mean, scale, k, shift)]
    tiled_mean, tiled_scale, tiled_k, tiled_shift = tiled

    use_compiled = _compiled_rows(compiled.batch_norm_input_grad, gy_rows, x_rows)
    channels = mean.shape[0]
    flat = [v.astype(gy_rows.dtype) for v in (mean, scale, k, shift)]

    def block_grad(block):
        start, stop = block
        piece = out[start:stop]
        if use_compiled:  # the same operations in one pass
            compiled.batch_norm_input_grad(
                gy_rows[start:stop].reshape(-1, channels),
                x_rows[start:stop].reshape(-1, channels), *flat,
                _rows_or_none(relu_rows, block, channels), piece.reshape(-1, channels))
            return
        gy = gy_rows[start:stop]
        if relu_rows is not None:
            gy = gy * (relu_rows[start:stop] > 0)
        xp.subtract(x_rows[start:stop], tiled_mean, out=piece)
        piece *= tiled_k
        piece += gy * tiled_scale
        piece += tiled_shift

    parallel_map(block_grad, row_blocks(gy_rows))
    return out


def channel_combination(terms, shift, period, out=None, finish=None):
    """sum over terms of rows * tile(scale), plus tile(shift): one pass per term, in row blocks.

    terms: [(rows (R, P*C) channels-last, scale (C,) or None)]; shift: (C,) or None. `out` is a
    fresh array by default, or one of the terms' rows to work in place. `finish(block)` applies
    an activation to each block in place while it is in cache (see ops.activation.in_place).
    """
    xp = xp_of(terms[0][0])
    first = terms[0][0]
    out = xp.empty_like(first) if out is None else out
    # batch norm's x * scale + shift (and ReLU): one compiled pass, the same operations
    channels = None if shift is None else shift.shape[0]
    affine = (compiled.affine is not None and xp is np and len(terms) == 1 and out is not first
              and terms[0][1] is not None and shift is not None and first.flags.c_contiguous
              and finish in (None, relu_in_place))
    flat = None if not affine else [v.astype(first.dtype) for v in (terms[0][1], shift)]
    tiled = tiled_shift = None  # the NumPy passes' per-channel vectors along the rows
    if not affine:
        tiled = [(rows, None if scale is None else
                  tile_channels(scale, period).astype(first.dtype)) for rows, scale in terms]
        tiled_shift = None if shift is None else tile_channels(shift, period).astype(first.dtype)

    def combine(block):
        start, stop = block
        piece = out[start:stop]
        if affine:
            compiled.affine(first[start:stop].reshape(-1, channels), *flat,
                            finish is not None, piece.reshape(-1, channels))
            return
        for k, (rows, scale) in enumerate(tiled):
            part = rows[start:stop]
            if k == 0 and scale is not None:
                xp.multiply(part, scale, out=piece)
            elif k == 0 and rows is not out:
                piece[...] = part
            elif k > 0:
                piece += part if scale is None else part * scale
        if tiled_shift is not None:
            piece += tiled_shift
        if finish is not None:
            finish(piece)

    parallel_map(combine, row_blocks(first))
    return out


def flat_in_memory_order(*arrays):
    """1-D views of same-shape arrays in memory order when all are laid out alike (each one
    contiguous block of memory, axes in the same stride order), else None."""
    if all(array.flags.c_contiguous for array in arrays):  # the common case, found at once
        return [array.reshape(-1) for array in arrays]
    xp = xp_of(arrays[0])
    order = xp.argsort(arrays[0].strides, kind="stable")[::-1]  # axes, largest stride first
    moved = [array.transpose(order) for array in arrays]
    if all(m.flags.c_contiguous for m in moved):
        return [m.reshape(-1) for m in moved]  # views
    return None


def elementwise_blocks(fn, *arrays, flat_only=False):
    """Call fn(*pieces) on matching pieces of same-shape arrays, in blocks over the threads.

    When all are laid out alike (`flat_in_memory_order`) the pieces are 1-D runs in memory
    order, so NumPy's loops run over long rows; otherwise they are blocks of samples (the
    first axis), or, with flat_only, nothing is done and False is returned (True otherwise).
    """
    itemsize = max(array.itemsize for array in arrays)
    flat = flat_in_memory_order(*arrays)
    if flat is not None:
        pieces = flat
        blocks = sample_blocks(pieces[0].size, itemsize)
    elif flat_only:
        return False
    else:
        pieces = arrays
        blocks = sample_blocks(arrays[0].shape[0], arrays[0][:1].size * itemsize)
    parallel_map(lambda block: fn(*(piece[block[0] : block[1]] for piece in pieces)), blocks)
    return True


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
