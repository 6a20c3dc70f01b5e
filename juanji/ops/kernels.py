"""Raw-array kernels for the windowed ops (conv, pool): window views and their adjoints.

Layout: the kernels work channels-last, (N, H, W, C), because that puts the reduction axis of
the convolution GEMM (KH*KW*C) next to each other in memory. The NCHW arrays the ops receive are
transposed views of it, so no copy is needed when an NHWC-backed array comes back in.
"""

from juanji.backend import xp_of


def pad_nhwc(x, pad_h, pad_w, value=0.0, extra_h=0, extra_w=0):
    """NCHW x -> channels-last padded copy (N, PH0+H+PH1+extra_h, PW0+W+PW1+extra_w, C).

    pad_h = (top, bottom), pad_w = (left, right); `extra_*` adds cells on the bottom/right
    (ceil_mode windows that run past the padded input) filled with `value` too.
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

def col2im_nhwc(dcols, padded_shape, kernel, stride, dilation):
    """Adjoint of `window_view`: scatter-add window gradients back onto the padded input.

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
