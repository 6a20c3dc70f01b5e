"""2-D convolution (cross-correlation, as in every framework) and its adjoint, the transposed
convolution. Both are GEMMs over channels-last columns:

- Conv2d (groups=1): im2col and GEMM fused per block of samples (`kernels.conv_nhwc`), or,
  for first layers with a few channels, channels-first columns (`kernels.conv_channels_first`).
  Backward: at stride 1, when the layer does not widen, the input gradient is the same kernel
  on the padded upstream gradient with the flipped filters, otherwise per-tap GEMMs scattered
  back (`conv_input_grad_nhwc`); the weight gradient reads the columns, kept when small and
  rebuilt in blocks from the input when big (`conv_weight_grad`), so a training step holds
  the input, not KH*KW copies of it.
- Grouped Conv2d: im2col then one GEMM per group; backward is GEMM then col2im.
- ConvTranspose2d: GEMM then col2im; backward is im2col then GEMM (a plain conv).

Two fast paths skip the window machinery: a 1x1 conv at stride 1 without padding is a direct
GEMM on the input, and a depthwise conv (one input channel per group) is a multiply-add per
kernel tap, which beats a batched GEMM of C tiny matrices. With the compiled path three more
replace the GEMM: in inference, 3x3 stride-1 float32 convs with enough channels run by
Winograd's F(2x2, 3x3) (`kernels.conv_winograd`, see `_winograd_wins`); stride-1 convs
with a few channels in and out (LeNet-5's first) run a direct kernel (`kernels.conv_direct`);
and float32 convs with up to 96 channels in and 128 out run register-blocked kernels without
im2col for the forward, the input gradient when it is a conv, and the weight gradient where
it beats BLAS (`kernels.direct_nhwc_runs`; ResNet-20's convs 2-3x faster).
`padding` is ((top, bottom), (left, right)) in every op here.
"""

import numpy as np

from juanji import backend
from juanji.arithmetic import conv_output_size
from juanji.backend import matmul, parallel_map, xp_of
from juanji.function import Function
from juanji.ops import activation as activation_ops
from juanji.ops import compiled
from juanji.ops.kernels import (
    AffineFinish,
    channel_combination,
    channel_sums,
    channels_first_sums,
    channels_last_rows,
    col2im_groups,
    conv_channels_first,
    conv_channels_first_weight_grad,
    conv_direct,
    conv_direct_weight_grad,
    conv_epilogue,
    conv_input_grad_nhwc,
    conv_nhwc,
    conv_nhwc_direct,
    conv_pointwise,
    conv_weight_grad,
    conv_winograd,
    depthwise_blocked_runs,
    depthwise_nhwc,
    depthwise_nhwc_grads,
    direct_grad_runs,
    direct_nhwc_runs,
    direct_planes_width,
    im2col_nhwc,
    is_channels_last,
    pad_nchw,
    pad_nhwc,
    relu_gradient,
    sample_blocks,
)

_NO_PAD = ((0, 0), (0, 0))
# Columns up to this size are kept for the weight gradient; bigger ones are rebuilt from the
# input in backward (costs one more im2col copy, saves KH*KW times the input's memory).
_KEEP_COLUMNS_BYTES = 16 << 20
# The fewest channels in and out, 2x2 output tiles, and tiles * C * OC products of a conv
# that runs by Winograd (see _winograd_wins)
_WINOGRAD_CHANNELS = 24
_WINOGRAD_TILES = 16
_WINOGRAD_WORK = 1 << 19
# Stride-1 convs with at most this many channel pairs (C * OC: LeNet-5's first, 1 -> 6) run
# the compiled direct kernel (`kernels.conv_direct`): their channels-first GEMM has 6
# columns, and BLAS runs it at 8 GMAC/s (b128: forward 1.37 -> 0.93 ms, weight gradient
# 2.56 -> 0.93). At 1 -> 30 or 3 -> 16 the GEMM is already faster.
_DIRECT_CHANNELS = 8


def weight_rows(weight, groups):
    """Conv weight (OC, Cg, KH, KW) -> per-group GEMM rows (G, OC/G, KH*KW*Cg).

    A view when the weight's memory is channels-last (OC, KH, KW, Cg), as
    Module.to(memory_format="channels_last") lays it out, or the kernel is 1x1 (in any
    layout, `input_major` included). Otherwise a transposing copy made on every call (all of
    ResNet-18's weights are 47 MB), so it runs in blocks of output channels over the threads.
    """
    xp = xp_of(weight)
    oc, cg, kh, kw = weight.shape
    ocg = oc // groups
    if (kh, kw) == (1, 1):
        return weight[:, :, 0, 0].reshape(groups, ocg, cg)  # splits one axis: a view
    rows_view = weight.transpose(0, 2, 3, 1)  # (OC, KH, KW, Cg)
    if rows_view.flags.c_contiguous:
        return rows_view.reshape(groups, ocg, kh * kw * cg)
    source = weight.reshape(groups, ocg, cg, kh, kw).transpose(0, 1, 3, 4, 2)  # a view
    rows = xp.empty((groups, ocg, kh, kw, cg), dtype=weight.dtype)

    def copy_block(block):
        rows[:, block[0] : block[1]] = source[:, block[0] : block[1]]

    parallel_map(copy_block, sample_blocks(ocg, groups * cg * kh * kw * weight.itemsize))
    return rows.reshape(groups, ocg, kh * kw * cg)  # (G, OCg, Kg)


def input_major(weight):
    """A 1x1 conv's weight (OC, C, 1, 1) with memory (C, OC), a copy unless it already
    has it: the same values and shape, laid out so that the transposed GEMM rows the conv
    multiplies by, W.T (C, OC), are C-contiguous. OpenBLAS packs that operand faster than the
    transposed one: at batch 1, where packing the weights is much of a 1x1 conv's product,
    196x256 @ 256x256 189 -> 168 us, 49x512 @ 512x512 299 -> 230, 49x256 @ 256x512 146 -> 106
    (PP-LCNet's pointwise convs; products with 8 or more rows get the same bits in either
    layout, with one or two rows BLAS takes its matrix-vector routines, whose sums come in
    another order)."""
    oc, c = weight.shape[:2]
    return np.ascontiguousarray(weight.reshape(oc, c).T).T.reshape(weight.shape)


def weight_from_rows(gw, shape):
    """Inverse of `weight_rows`: (G, OCg, KH*KW*Cg) -> (OC, Cg, KH, KW)."""
    oc, cg, kh, kw = shape
    g = gw.shape[0]
    return gw.reshape(g, oc // g, kh, kw, cg).transpose(0, 1, 4, 2, 3).reshape(shape)


def rows_by_group(a, groups):
    """Channels-last (..., C) -> (G, L, C/G), L the product of the leading dims."""
    c = a.shape[-1]
    return a.reshape(-1, groups, c // groups).transpose(1, 0, 2)  # (G, L, Cg)


def reduce_rows(a, b):
    """a^T b per group over the long row axis: (G, L, P), (G, L, Q) -> (G, P, Q).

    Computed as (b^T a)^T, which OpenBLAS runs markedly faster than a^T b for the weight
    gradient's shape (small P and Q, very long L)."""
    return matmul(b.transpose(0, 2, 1), a).transpose(0, 2, 1)


def add_bias(y, bias, finish=None):
    """y += bias in place, then `finish` (an activation in place, see activation.IN_PLACE;
    y must then be contiguous, as a conv's fresh output is); y: (N, OH, OW, OC) channels-last,
    bias: (OC,) or None. Over rows of OW*OC values and the threads when y is contiguous (a
    folded batch norm makes every conv biased)."""
    n, oh, ow, oc = y.shape
    if bias is None and finish is None:
        return
    if not y.flags.c_contiguous:  # a cropped transposed conv: no activation is fused there
        y += bias
        return
    rows = y.reshape(n * oh, ow * oc)  # a view
    channel_combination([(rows, None)], bias, ow, out=rows, finish=finish)


def bias_grad(gy):
    """Sum of (N, OC, OH, OW) gy per output channel -> (OC,), as a BLAS product over its
    channels-last rows (a view when gy is, as conv's own outputs mostly are), or over its
    planes when its memory is channels-first (as the outputs of `kernels.conv_direct`)."""
    if gy.flags.c_contiguous and not is_channels_last(gy):
        return channels_first_sums(gy)
    rows, _ = channels_last_rows(gy)  # (N*OH, OW*OC)
    return channel_sums(rows, gy.shape[1])


def crop_nchw(xpad_nhwc, padding, size):
    """Cut the padding off a channels-last array and return an NCHW view (N, C, H, W)."""
    (top, _), (left, _) = padding
    h, w = size
    return xpad_nhwc[:, top : top + h, left : left + w, :].transpose(0, 3, 1, 2)


def _rebuilds_columns(rows, width, itemsize):
    """Whether a groups=1 conv's (rows, width) columns are too big to keep for the weight
    gradient (over _KEEP_COLUMNS_BYTES): then it keeps its input and backward rebuilds them."""
    return rows * width * itemsize > _KEEP_COLUMNS_BYTES


def _winograd_wins(x, weight, stride, dilation, out_size):
    """Whether a (groups=1) conv runs by Winograd's F(2x2, 3x3) (`kernels.conv_winograd`),
    when `backend.set_winograd` allows it and the compiled path is there: float32 3x3 filters
    at stride 1 without dilation, at least _WINOGRAD_CHANNELS channels in and out,
    _WINOGRAD_TILES 2x2 tiles of output and _WINOGRAD_WORK tile-channel products (below that
    the filters' transform and the fixed costs outweigh the saving). Measured against the
    direct GEMM (2 threads, the weight's re-layout included): b8, 64 channels at 56x56 11.6
    -> 7.3 ms, 512 at 7x7 11.8 -> 10.2; b1, 256 at 14x14 3.6 -> 2.2, 512 at 7x7 4.8 -> 3.8,
    PP-OCRv4's 96 -> 24 at 160x160 10.8 -> 6.8. With 16 channels (ResNet-20's first stage,
    b128: 7.1-7.4 -> 7.9-8.0 ms) the transforms cost more than they save."""
    n, c = x.shape[:2]
    oc = weight.shape[0]
    tiles = n * ((out_size[0] + 1) // 2) * ((out_size[1] + 1) // 2)
    return (backend.get_winograd() and weight.shape[2:] == (3, 3) and stride == (1, 1)
            and dilation == (1, 1) and x.dtype == weight.dtype == np.float32
            and compiled.runs_on(compiled.winograd_tiles, x, weight)
            and min(c, oc) >= _WINOGRAD_CHANNELS and tiles >= _WINOGRAD_TILES
            and tiles * c * oc >= _WINOGRAD_WORK)


def _channels_first_wins(c, kernel, stride, dilation, ow):
    """Whether a (groups=1) conv unrolls faster channels-first than channels-last: when the
    runs its copies move, OW values against KW*C (C when dilated), are the longer, at stride 1
    or, at stride 2, when the channels-last runs are at most 9 values (first layers with C = 1
    or 3 on 28-32 pixels: measured 1.7-2.2x; PP-LCNet's 3x3 stride-2 stem at 224x224, b8:
    3.6 -> 2.7 ms; 16 channels at OW 32, 6 at OW 10, or ResNet's 7x7 stride-2 stem, runs of
    21: no gain or a 10-30% loss)."""
    run_channels_last = kernel[1] * c if dilation[1] == 1 else c
    return (kernel != (1, 1) and run_channels_last < ow
            and (stride[1] == 1 or (stride[1] == 2 and run_channels_last <= 9)))


def _few_channels_in(gy, c, h):
    """Whether the input gradient of a stride-1 conv with c channels in and h input rows
    runs as a conv by the channels-first register-blocked kernel (kernels.nchw_blocked_runs)
    when its output has so few channels: float32, at most its channels, enough rows."""
    return (compiled.nchw_conv is not None and isinstance(gy, np.ndarray)
            and gy.dtype == np.float32 and c <= compiled.NCHW_MAX_CHANNELS
            and h >= compiled.NCHW_ROWS)


def dense_input_grad(gy, gy_rows, wtaps, padded_shape, geometry):
    """Input gradient of a groups=1 conv, x: (N, C, H, W), from gy (N, OC, OH, OW), its rows
    (N*OH*OW, OC) or None (made here if needed: a copy when gy's memory is channels-first)
    and the weights tap-major, wtaps (KH, KW, OC, C); padded_shape is the channels-last
    padded input's (N, HP, WP, C)."""
    kernel, stride, padding, dilation, out, x_shape, _ = geometry
    (kh, kw), (_, _, oc, c) = kernel, wtaps.shape
    # At stride 1 the input gradient is itself a convolution: gy, padded by D*(K-1) - P,
    # correlated with the flipped kernel, blocked like the forward. It unrolls KH*KW*OC
    # values per input cell where the per-tap scatter below adds KH*KW*C per output cell, so
    # it wins when OC <= C (measured 1.4-1.9x on 16->16 and 128->64) and loses when the layer
    # widens (6->16: 2.1x slower by the channels-last conv), except where the layer has at
    # most 8 channels in, which the channels-first kernel's blocks suit (`_few_channels_in`).
    reach = (dilation[0] * (kh - 1), dilation[1] * (kw - 1))
    widening = oc > c and _few_channels_in(gy, c, x_shape[2])
    if stride == (1, 1) and (oc <= c or widening) and all(
            p <= r for r, pad in zip(reach, padding) for p in pad):
        flipped = wtaps[::-1, ::-1]  # (KH, KW, OC, C): the filters of a conv from OC to C
        pads = [(r - top, r - bottom) for r, (top, bottom) in zip(reach, padding)]
        if widening:
            # a widening layer with a few channels in (LeNet-5's 6 -> 16, b128: 1.8 -> 1.0 ms
            # against the scatter): the channels-first kernel on gy's planes, each block padded
            # and widened with zeros to its blocks of 16 columns where the input is narrower
            wider = max(0, 16 - x_shape[3])
            gx_nhwc = conv_direct(gy, np.ascontiguousarray(flipped.transpose(3, 2, 0, 1)),
                                  dilation, x_shape[2:],
                                  padding=(pads[0], (pads[1][0], pads[1][1] + wider)))
        elif direct_nhwc_runs((gy, wtaps), oc, c, x_shape[2:]):
            gx_nhwc = conv_nhwc_direct(gy.transpose(0, 2, 3, 1), pads, flipped, stride,
                                       dilation, x_shape[2:])
        else:
            rows = flipped.transpose(3, 0, 1, 2).reshape(c, -1)  # (C, KH*KW*OC)
            gx_nhwc, _ = conv_nhwc(pad_nhwc(gy, *pads), rows, kernel, stride, dilation,
                                   x_shape[2:])
        return gx_nhwc.transpose(0, 3, 1, 2)  # (N, C, H, W) view of (N, H, W, C)
    n = x_shape[0]
    if gy_rows is None:
        gy_rows = gy.transpose(0, 2, 3, 1).reshape(-1, oc)  # (N*OH*OW, OC)
    dxpad = conv_input_grad_nhwc(gy_rows.reshape(n, -1, oc), wtaps, padded_shape, stride,
                                 dilation, out)
    return crop_nchw(dxpad, padding, x_shape[2:])


def empty_batch_grads(needs_grad, x, weight, oc):
    """Zero gradients of a conv's (x, weight, bias) for an empty batch (N = 0): no sample adds
    anything, and the blocked kernels need at least one sample, so the ops skip them."""
    xp = xp_of(x)
    zeros = [xp.zeros_like(x), xp.zeros_like(weight), xp.zeros(oc, dtype=weight.dtype)]
    return tuple(z if need else None for z, need in zip(zeros, needs_grad))


class Conv2d(Function):
    """y[n, oc] = sum over (c, kh, kw) of W[oc, c, kh, kw] * x_pad[n, g*Cg + c, ...] + b[oc].

    x: (N, C, H, W), weight: (OC, C/G, KH, KW), bias: (OC,) or None -> y: (N, OC, OH, OW).
    Output channel oc belongs to group oc // (OC/G), as in PyTorch (depthwise with a depth
    multiplier M: oc = c * M + m). The GEMM runs channels-last: the returned array is an NCHW
    view of NHWC memory, which the next windowed op reads without a copy.

    activation ('relu' or 'hardswish') and, for inference only, affine ((scale, shift), each
    (OC,): an eval-mode batch norm's y * scale + shift, see norm.per_channel_affine, applied
    before the activation) are applied to each block of the output while in cache, with the
    float operations of the separate passes: the same bits.
    """

    input_kinds = "f"
    empty = None  # (x, weight) of an empty batch, whose gradients are zeros
    bias_in_product = False  # the channels-first path multiplies its bias in (see forward)

    def forward(self, x, weight, bias=None, stride=(1, 1), padding=_NO_PAD, dilation=(1, 1),
                groups=1, activation=None, affine=None):
        n, c, h, w = x.shape
        oc, cg, kh, kw = weight.shape
        oh = conv_output_size(h, kh, stride[0], padding[0], dilation[0])
        ow = conv_output_size(w, kw, stride[1], padding[1], dilation[1])
        self.geometry = ((kh, kw), stride, padding, dilation, (oh, ow), x.shape, weight.shape)
        self.groups = groups
        # activation "relu" or "hardswish" (fused in, see nn.utils.fuse_activations): applied
        # to each block of the product while in cache. Backward needs the ReLU's output, which
        # is the conv's, or the hardswish's input: when there will be a backward, that is kept
        # and the gate runs as a pass of its own after the conv.
        self.activation, self.pre_activation = activation, None
        separate = activation == "hardswish" and any(self.needs_grad)
        finish = None if activation is None or separate else activation_ops.IN_PLACE[activation]
        y_dtype = xp_of(x).result_type(x, weight)
        if affine is not None:  # an eval-mode batch norm after the conv, before the activation
            if any(self.needs_grad):
                raise ValueError("Conv2d's affine (a batch norm in the same pass) is for "
                                 "inference: no gradient flows through it")
            finish = AffineFinish(affine, finish, ow, y_dtype)
        epilogue = conv_epilogue(bias, finish, ow, y_dtype)
        if n == 0:
            self.empty = (x, weight)
            return xp_of(x).zeros((0, oc, oh, ow), dtype=y_dtype)
        # the register-blocked kernel (groups=1 convs it suits, see direct_nhwc_runs)
        direct = groups == 1 and direct_nhwc_runs((x, weight), c, oc, (oh, ow))
        if groups == c and cg == 1 and groups > 1:
            self.path = "depthwise"
            taps = weight.reshape(c, oc // c, kh, kw).transpose(2, 3, 0, 1)  # (KH, KW, C, M)
            padded_shape = (n, h + sum(padding[0]), w + sum(padding[1]), c)
            if self.needs_grad[1]:  # the taps' gradient reads the padded input
                xpad = pad_nhwc(x, *padding)  # (N, HP, WP, C)
                y = depthwise_nhwc(xpad, taps, stride, dilation, (oh, ow), bias, finish)
            else:  # no padded copy where the kernel reads the padding as zeros
                xpad = None
                y = depthwise_nhwc(x.transpose(0, 2, 3, 1), taps, stride, dilation, (oh, ow),
                                   bias, finish, padding=padding)
            y = y.reshape(n, oh, ow, oc)  # (N, OH, OW, C, M) -> (N, OH, OW, OC), finished
            epilogue = None
            self.saved = (xpad, taps, padded_shape)
        elif (groups == 1 and not any(self.needs_grad)
              and _winograd_wins(x, weight, stride, dilation, (oh, ow))):
            self.path = "winograd"
            # a ReLU alone is applied in the output transform, with the bias
            relu = finish is activation_ops.IN_PLACE["relu"]
            y = conv_winograd(x, weight, padding, (oh, ow), bias, relu, None if relu else
                              conv_epilogue(None, finish, ow, y_dtype))  # (N, OH, OW, OC)
            epilogue = None  # applied
            self.saved = None  # inference only
        elif (groups == 1 and stride == (1, 1) and c * oc <= _DIRECT_CHANNELS
              and x.dtype == weight.dtype and compiled.runs_on(compiled.direct_conv, x, weight)):
            self.path = "direct"
            (left, right), wp = padding[1], w + sum(padding[1])
            if self.needs_grad[1]:  # zero columns on the right for the weight gradient's
                right += max(0, direct_planes_width(ow, kw, dilation[1]) - wp)  # blocks
            xpad = pad_nchw(x, padding[0], (left, right))  # (N, C, HP, WP or wider)
            # an eval-mode batch norm's epilogue works on channels-last rows: after the conv,
            # on a channels-last copy where the conv's memory is channels-first
            y = conv_direct(xpad, weight, dilation, (oh, ow), bias,
                            None if affine is not None else finish)  # (N, OH, OW, OC)
            if affine is not None:
                y = np.ascontiguousarray(y)
                finish(y.reshape(n * oh, ow * oc))
            epilogue = None  # applied
            self.saved = (xpad if self.needs_grad[1] else None, weight,
                          (n, xpad.shape[2], wp, c))
        elif (groups == 1 and _channels_first_wins(c, (kh, kw), stride, dilation, ow)
              and not (direct and (direct_grad_runs(c, oc) or not self.needs_grad[1]))):
            # the columns serve the weight gradient too: where the compiled one does not run,
            # they beat the register-blocked forward and a rebuild in backward (SimpleConvNet's
            # 1 -> 30, forward and backward: 4.0 against 4.3 ms); without a weight gradient
            # the kernel wins (PP-OCRv4's 3 -> 32 stride-2 stem at 640x640: 2.4 against 4.7)
            self.path = "channels_first"
            xpad = pad_nchw(x, *padding)  # (N, C, HP, WP)
            wrows = weight.reshape(oc, -1)  # (OC, C*KH*KW): already the columns' order
            self.rebuild = _rebuilds_columns(n * oh * ow, wrows.shape[1], x.itemsize)
            # the bias goes into the product (a weight column on a row of ones): no epilogue
            # pass for it, and backward's weight-gradient product gives its gradient
            self.bias_in_product = bias is not None
            y, cols = conv_channels_first(xpad, wrows, (kh, kw), stride, dilation, (oh, ow),
                                          keep_columns=self.needs_grad[1] and not self.rebuild,
                                          epilogue=conv_epilogue(None, finish, ow, y_dtype),
                                          bias=bias)
            epilogue = None  # applied
            kept = None
            if self.needs_grad[1]:
                kept = xpad if self.rebuild else cols
            self.saved = (kept, weight, (n, xpad.shape[2], xpad.shape[3], c))
        else:
            if (kh, kw) == (1, 1) and stride == (1, 1) and padding == _NO_PAD:
                self.path = "pointwise"
                cols = rows_by_group(x.transpose(0, 2, 3, 1), groups)  # (G, L, Cg)
                padded_shape = None
            else:
                self.path = "im2col"
                # the register-blocked kernels pad block by block: no padded copy here
                xpad = None if direct else pad_nhwc(x, *padding)  # (N, HP, WP, C)
                padded_shape = (n, h + sum(padding[0]), w + sum(padding[1]), c)
            wg = weight_rows(weight, groups)  # (G, OCg, Kg)
            # The weight gradient needs the columns again. A pointwise conv's are a view of x;
            # otherwise they are KH*KW times the input, so when they are big a plain conv
            # keeps x itself and rebuilds them in backward (grouped convs keep them: rare).
            self.rebuild = False
            if self.path == "im2col" and groups == 1:
                # no columns are made: backward reads x (the compiled weight gradient) or
                # rebuilds them in blocks
                self.rebuild = direct or _rebuilds_columns(n * oh * ow, wg.shape[2], x.itemsize)
                if direct:
                    taps = wg[0].reshape(oc, kh, kw, c).transpose(1, 2, 3, 0)  # a view
                    y = conv_nhwc_direct(x.transpose(0, 2, 3, 1), padding, taps, stride,
                                         dilation, (oh, ow), epilogue)  # (N, OH, OW, OC)
                else:
                    keep = self.needs_grad[1] and not self.rebuild
                    y, cols = conv_nhwc(xpad, wg[0], (kh, kw), stride, dilation, (oh, ow),
                                        keep_columns=keep, epilogue=epilogue)
                epilogue = None  # applied
            elif self.path == "pointwise" and groups == 1 and epilogue is not None:
                y = conv_pointwise(cols[0].reshape(n, oh, ow, c), wg[0], epilogue)  # (N,H,W,OC)
                epilogue = None  # applied
            else:
                if self.path == "im2col":
                    cols = im2col_nhwc(xpad, (kh, kw), stride, dilation, (oh, ow), groups)
                # cols: (G, L, Kg) -> y: (L, OC)
                y = matmul(cols[0], wg[0].T) if groups == 1 else (
                    matmul(cols, wg.transpose(0, 2, 1)).transpose(1, 0, 2).reshape(-1, oc))
                y = y.reshape(n, oh, ow, oc)
            kept = None
            if self.needs_grad[1]:
                kept = x if self.rebuild else cols
            self.saved = (kept, wg, padded_shape)
        if epilogue is not None:
            add_bias(y, bias, finish)
        if separate:
            self.pre_activation = y
            y = activation_ops.hard_gate(y, times_x=True)
        elif activation == "relu" and any(self.needs_grad):
            self.pre_activation = y  # its output: y > 0 exactly where its input is
        return y.transpose(0, 3, 1, 2)  # NCHW view of NHWC

    def backward(self, gy):
        kernel, stride, padding, dilation, out, x_shape, w_shape = self.geometry
        need_x, need_w = self.needs_grad[0], self.needs_grad[1]
        if self.empty is not None:
            return empty_batch_grads(self.needs_grad, *self.empty, w_shape[0])
        if self.activation == "relu":  # the fused activation's gradient first
            gy = relu_gradient(gy, self.pre_activation.transpose(0, 3, 1, 2))
        elif self.activation == "hardswish":
            gy = activation_ops.hardswish_gradient(gy, self.pre_activation.transpose(0, 3, 1, 2))
        need_b = len(self.needs_grad) > 2 and self.needs_grad[2]
        # a bias that went into the channels-first product gets its gradient from the weight
        # gradient's product (when that runs)
        from_product = self.path == "channels_first" and self.bias_in_product and need_w
        gb = bias_grad(gy) if need_b and not from_product else None
        gy_nhwc = gy.transpose(0, 2, 3, 1)  # (N, OH, OW, OC)
        if self.path == "depthwise":
            xpad, taps, padded_shape = self.saved
            n, oh, ow, oc = gy_nhwc.shape
            c = x_shape[1]
            # channels-last memory first (a no-op for what a conv or batch norm passes back):
            # the 2*KH*KW passes below would otherwise stride by OH*OW elements
            gy5 = xp_of(gy).ascontiguousarray(gy_nhwc).reshape(n, oh, ow, c, oc // c)
            dxpad, dtaps = depthwise_nhwc_grads(gy5, taps, padded_shape, stride, dilation,
                                                xp_nhwc=xpad, need_x=need_x)
            gx = crop_nchw(dxpad, padding, x_shape[2:]) if need_x else None
            gw = dtaps.transpose(2, 3, 0, 1).reshape(w_shape) if need_w else None
            return gx, gw, gb
        if self.path in ("channels_first", "direct"):
            kept, weight, padded_shape = self.saved
            n, oh, ow, oc = gy_nhwc.shape
            gx = gw = None
            # gy's rows (N*OH*OW, OC) are made only where read: a copy when gy's memory is
            # channels-first, as the direct kernel's outputs are (0.32 ms per LeNet-5 conv)
            if need_x:
                gx = dense_input_grad(gy, None, weight.transpose(2, 3, 0, 1), padded_shape,
                                      self.geometry)
            if need_w and self.path == "direct":  # kept: the padded input
                gw = conv_direct_weight_grad(kept, gy_nhwc, w_shape, dilation)
            elif need_w:
                xpad, cols = (kept, None) if self.rebuild else (None, kept)
                gy_rows = gy_nhwc.reshape(-1, oc)  # (N*OH*OW, OC)
                full = conv_channels_first_weight_grad(
                    gy_rows, kernel, stride, dilation, out, xpad=xpad, cols=cols,
                    ones=self.bias_in_product)  # (OC, C*KH*KW), then the bias's column
                width = full.shape[1] - self.bias_in_product
                gw = full[:, :width].reshape(w_shape)
                if need_b:
                    gb = full[:, width].copy()
            return gx, gw, gb
        kept, wg, padded_shape = self.saved
        gyg = rows_by_group(gy_nhwc, self.groups)  # (G, L, OCg)
        gx = gw = None
        if need_x:
            if self.path == "im2col" and self.groups == 1:
                n, oh, ow, oc = gy_nhwc.shape
                kh, kw = kernel
                c = x_shape[1]
                wtaps = wg[0].reshape(oc, kh, kw, c).transpose(1, 2, 0, 3)  # (KH, KW, OC, C)
                gx = dense_input_grad(gy, gyg[0], wtaps, padded_shape, self.geometry)
            elif self.path == "pointwise":
                dcols = matmul(gyg, wg)  # (G, L, Cg)
                n, c, h, w = x_shape
                gx = dcols.transpose(1, 0, 2).reshape(n, h, w, c).transpose(0, 3, 1, 2)
            else:
                dcols = matmul(gyg, wg)  # (G, L, Kg)
                dxpad = col2im_groups(dcols, padded_shape, kernel, stride, dilation, out)
                gx = crop_nchw(dxpad, padding, x_shape[2:])
        if need_w:
            if self.rebuild:  # kept: the input
                gw = conv_weight_grad(kept, gyg[0], kernel, stride, padding, dilation, out)[None]
            else:  # kept: the columns
                gw = reduce_rows(gyg, kept)
            gw = weight_from_rows(gw, w_shape)  # from (G, OCg, Kg)
        return gx, gw, gb


class InferenceConv:
    """Conv2d's forward without gradients at one geometry, its path chosen once: an imported
    graph runs each conv at the same geometry call after call, and at batch 1 choosing the
    path costs more than the conv (Function.run and Conv2d.forward: ~50 us of Python around
    a depthwise 3x3 kernel of 5 us on 16 channels at 16x16).

    `InferenceConv(x, weight, bias, stride, padding, dilation, groups, activation,
    with_affine)` takes what Conv2d.apply would (arrays; `with_affine`: whether an eval-mode
    batch norm's affine will be given). Its `path` is "depthwise" (the register-blocked
    kernel: float32, channels a multiple of 16, depth multiplier 1), "pointwise" (a 1x1
    stride-1 GEMM), or None where Conv2d.forward would take another path; the input must be
    float32 and C-contiguous channels-last (an NCHW view of NHWC memory, as convs give).
    `fits(...)` says whether a call has this geometry (the same input shape, strides and
    dtype, the same weight and bias arrays: their values may change, nothing made from
    them is kept); calling it, `(x, weight, bias, affine)`, runs the kernels Conv2d.forward
    runs for that path on the same arrays: the same bits (tests/ops/test_conv.py).
    """

    def __init__(self, x, weight, bias, stride, padding, dilation, groups, activation,
                 with_affine):
        self.key = (x.shape, x.strides, x.dtype, stride, padding, dilation, groups, activation,
                    with_affine)
        self.weight, self.bias = weight, bias  # compared by identity in `fits`
        self.stride, self.padding, self.dilation = stride, padding, dilation
        n, c, h, w = x.shape
        oc, _, kh, kw = weight.shape
        self.out_size = (conv_output_size(h, kh, stride[0], padding[0], dilation[0]),
                         conv_output_size(w, kw, stride[1], padding[1], dilation[1]))
        self.finish = None if activation is None else activation_ops.IN_PLACE[activation]
        self.path = None
        plain = (isinstance(x, np.ndarray) and n > 0 and x.dtype == weight.dtype == np.float32
                 and (bias is None or bias.dtype == np.float32)
                 and x.transpose(0, 2, 3, 1).flags.c_contiguous)
        if not plain:
            return
        if groups == c == oc and groups > 1 and weight.shape[1] == 1:
            taps = weight.reshape(c, 1, kh, kw).transpose(2, 3, 0, 1)  # (KH, KW, C, 1)
            if depthwise_blocked_runs(x.transpose(0, 2, 3, 1), taps):
                self.path = "depthwise"
        elif (groups == 1 and (kh, kw) == (1, 1) and stride == (1, 1) and padding == _NO_PAD
              and c * oc > _DIRECT_CHANNELS
              and not _winograd_wins(x, weight, stride, dilation, self.out_size)):
            self.path = "pointwise"

    def fits(self, x, weight, bias, stride, padding, dilation, groups, activation,
             with_affine):
        return (weight is self.weight and bias is self.bias
                and (x.shape, x.strides, x.dtype, stride, padding, dilation, groups,
                     activation, with_affine) == self.key)

    def __call__(self, x, weight, bias, affine):
        """The conv's output (N, OC, OH, OW), an NCHW view of NHWC memory, as
        Conv2d.forward(x, weight, bias, ..., activation, affine) gives it."""
        (n, c), (oh, ow) = x.shape[:2], self.out_size
        stride, padding, dilation = self.stride, self.padding, self.dilation
        finish = self.finish
        if affine is not None:
            finish = AffineFinish(affine, finish, ow, x.dtype)
        x_nhwc = x.transpose(0, 2, 3, 1)  # (N, H, W, C), C-contiguous
        if self.path == "depthwise":  # Conv2d.forward's call without a gradient
            kh, kw = weight.shape[2:]
            taps = weight.reshape(c, 1, kh, kw).transpose(2, 3, 0, 1)  # (KH, KW, C, 1)
            y = depthwise_nhwc(x_nhwc, taps, stride, dilation, (oh, ow), bias, finish,
                               padding=padding)
            return y.reshape(n, oh, ow, c).transpose(0, 3, 1, 2)
        rows = weight_rows(weight, 1)[0]  # (OC, C)
        epilogue = conv_epilogue(bias, finish, ow, x.dtype)
        if epilogue is None:  # as Conv2d.forward: one product, not conv_pointwise's blocks
            y = matmul(x_nhwc.reshape(-1, c), rows.T).reshape(n, oh, ow, -1)
        else:
            y = conv_pointwise(x_nhwc, rows, epilogue)  # (N, H, W, OC)
        return y.transpose(0, 3, 1, 2)


class ConvTranspose2d(Function):
    """The adjoint of Conv2d in x: each input cell scatters W[c, :, :, :] * x onto the output.

    x: (N, C, H, W), weight: (C, OC/G, KH, KW), bias: (OC,) or None -> y: (N, OC, OH, OW) with
    OH = (H - 1) * SH + DH * (KH - 1) + 1 - top - bottom + output_padding. The full scatter
    canvas is cropped by `padding`; output_padding adds rows/columns at the bottom/right that
    only the bias reaches when they lie past the canvas.
    """

    input_kinds = "f"
    empty = None  # (x, weight) of an empty batch, whose gradients are zeros

    def forward(self, x, weight, bias=None, stride=(1, 1), padding=_NO_PAD,
                output_padding=(0, 0), dilation=(1, 1), groups=1):
        n, c, h, w = x.shape
        _, ocg, kh, kw = weight.shape
        oc = ocg * groups
        full = [(size - 1) * s + d * (k - 1) + 1
                for size, s, d, k in zip((h, w), stride, dilation, (kh, kw))]
        out = [f - sum(p) + op for f, p, op in zip(full, padding, output_padding)]
        if n == 0:
            self.empty = (x, weight)
            return xp_of(x).zeros((0, oc, *out), dtype=xp_of(x).result_type(x, weight))
        canvas = (n, max(full[0], padding[0][0] + out[0]), max(full[1], padding[1][0] + out[1]),
                  oc)
        xg = rows_by_group(x.transpose(0, 2, 3, 1), groups)  # (G, L, Cg)
        wt = weight.reshape(groups, c // groups, ocg, kh, kw).transpose(0, 1, 3, 4, 2)
        wt = wt.reshape(groups, c // groups, kh * kw * ocg)  # (G, Cg, Kg)
        cols = matmul(xg, wt)  # (G, L, Kg)
        ycanvas = col2im_groups(cols, canvas, (kh, kw), stride, dilation, (h, w))  # (N,HC,WC,OC)
        (top, _), (left, _) = padding
        y = ycanvas[:, top : top + out[0], left : left + out[1], :]  # (N, OH, OW, OC)
        if bias is not None:
            add_bias(y, bias)
        self.saved = (xg if self.needs_grad[1] else None, wt)
        self.geometry = ((kh, kw), stride, padding, dilation, tuple(out), canvas, x.shape,
                         weight.shape, groups)
        return y.transpose(0, 3, 1, 2)  # NCHW view of NHWC

    def backward(self, gy):
        if self.empty is not None:
            return empty_batch_grads(self.needs_grad, *self.empty, gy.shape[1])
        xg, wt = self.saved
        kernel, stride, padding, dilation, out, canvas, x_shape, w_shape, groups = self.geometry
        n, c, h, w = x_shape
        (top, _), (left, _) = padding
        gx = gw = gb = None
        if len(self.needs_grad) > 2 and self.needs_grad[2]:
            gb = bias_grad(gy)
        gcanvas = pad_nhwc(gy, (top, canvas[1] - top - out[0]),
                           (left, canvas[2] - left - out[1]))  # (N, HC, WC, OC)
        gcols = im2col_nhwc(gcanvas, kernel, stride, dilation, (h, w), groups)  # (G, L, Kg)
        if self.needs_grad[0]:
            gxg = matmul(gcols, wt.transpose(0, 2, 1))  # (G, L, Cg)
            gx = gxg.transpose(1, 0, 2).reshape(n, h, w, c).transpose(0, 3, 1, 2)
        if self.needs_grad[1]:
            gwg = reduce_rows(xg, gcols)  # (G, Cg, Kg)
            _, ocg, kh, kw = w_shape
            gw = gwg.reshape(groups, c // groups, kh, kw, ocg).transpose(0, 1, 4, 2, 3)
            gw = gw.reshape(w_shape)
        return gx, gw, gb
