"""Max and average pooling over KH x KW windows, channels-last internally.

Both loop over the window taps only (KH*KW passes over the whole batch), never over N, H or W.
"""

from juanji.arithmetic import pool_output_size
from juanji.backend import xp_of
from juanji.function import Function
from juanji.ops.kernels import pad_nhwc, window_slice


def _geometry(x, kernel, stride, padding, dilation, ceil_mode):
    """Output size and the extra bottom/right cells that ceil_mode windows need."""
    h, w = x.shape[2:]
    oh = pool_output_size(h, kernel[0], stride[0], padding[0], dilation[0], ceil_mode)
    ow = pool_output_size(w, kernel[1], stride[1], padding[1], dilation[1], ceil_mode)
    extra_h = max(0, (oh - 1) * stride[0] + dilation[0] * (kernel[0] - 1) + 1 - h - 2 * padding[0])
    extra_w = max(0, (ow - 1) * stride[1] + dilation[1] * (kernel[1] - 1) + 1 - w - 2 * padding[1])
    return (oh, ow), (extra_h, extra_w)


class MaxPool2d(Function):
    """Max over each window; padding counts as -inf. x: (N, C, H, W) -> (N, C, OH, OW).

    Ties keep the first maximum in row-major window order and NaN propagates, as PyTorch's CPU
    kernel does. `indices()` gives PyTorch's flat `h * W + w` positions for return_indices.
    """

    def forward(self, x, kernel, stride, padding=(0, 0), dilation=(1, 1), ceil_mode=False):
        xp = xp_of(x)
        out, extra = _geometry(x, kernel, stride, padding, dilation, ceil_mode)
        pads = [(p, p + e) for p, e in zip(padding, extra)]
        xpad = pad_nhwc(x, *pads, value=-xp.inf)  # (N, HP, WP, C)
        best = arg = None
        for i in range(kernel[0]):
            for j in range(kernel[1]):
                rows, cols = window_slice(i, j, stride, dilation, out)
                block = xpad[:, rows, cols, :]  # (N, OH, OW, C)
                if best is None:
                    best = block.copy()
                    arg = xp.zeros(best.shape, dtype=xp.int32)
                    continue
                take = (block > best) | xp.isnan(block)
                best = xp.where(take, block, best)
                arg[take] = i * kernel[1] + j
        self.arg, self.padded_shape = arg, xpad.shape
        self.params = (x.shape, kernel, stride, padding, dilation, out)
        return best.transpose(0, 3, 1, 2)

    def backward(self, gy):
        xp = xp_of(gy)
        x_shape, kernel, stride, padding, dilation, out = self.params
        gy = gy.transpose(0, 2, 3, 1)  # (N, OH, OW, C)
        dxpad = xp.zeros(self.padded_shape, dtype=gy.dtype)
        for i in range(kernel[0]):
            for j in range(kernel[1]):
                rows, cols = window_slice(i, j, stride, dilation, out)
                dxpad[:, rows, cols, :] += gy * (self.arg == i * kernel[1] + j)
        h, w = x_shape[2:]
        dx = dxpad[:, padding[0] : padding[0] + h, padding[1] : padding[1] + w, :]
        return dx.transpose(0, 3, 1, 2)

    def indices(self):
        """Flat input positions h * W + w of each maximum, int64 (N, C, OH, OW)."""
        xp = xp_of(self.arg)
        x_shape, kernel, stride, padding, dilation, (oh, ow) = self.params
        tap_h, tap_w = self.arg // kernel[1], self.arg % kernel[1]  # (N, OH, OW, C)
        rows = xp.arange(oh)[:, None, None] * stride[0] - padding[0] + tap_h * dilation[0]
        cols = xp.arange(ow)[:, None] * stride[1] - padding[1] + tap_w * dilation[1]
        return (rows * x_shape[3] + cols).astype(xp.int64).transpose(0, 3, 1, 2)


class AvgPool2d(Function):
    """Mean over each window. x: (N, C, H, W) -> (N, C, OH, OW).

    The divisor follows PyTorch: with count_include_pad the window is clipped to the padded
    input (ceil_mode overhang is never counted); without it, to the real input;
    divisor_override replaces both.
    """

    def forward(self, x, kernel, stride, padding=(0, 0), ceil_mode=False,
                count_include_pad=True, divisor_override=None):
        xp = xp_of(x)
        out, extra = _geometry(x, kernel, stride, padding, (1, 1), ceil_mode)
        pads = [(p, p + e) for p, e in zip(padding, extra)]
        xpad = pad_nhwc(x, *pads)  # (N, HP, WP, C)
        total = xp.zeros((x.shape[0], out[0], out[1], x.shape[1]), dtype=x.dtype)
        for i in range(kernel[0]):
            for j in range(kernel[1]):
                rows, cols = window_slice(i, j, stride, (1, 1), out)
                total += xpad[:, rows, cols, :]
        if divisor_override is not None:
            divisor = xp.asarray(divisor_override, dtype=x.dtype)
        else:
            dh = _window_counts(xp, x.shape[2], out[0], kernel[0], stride[0], padding[0],
                                count_include_pad)
            dw = _window_counts(xp, x.shape[3], out[1], kernel[1], stride[1], padding[1],
                                count_include_pad)
            divisor = (dh[:, None] * dw[None, :])[:, :, None].astype(x.dtype)  # (OH, OW, 1)
        self.divisor, self.padded_shape = divisor, xpad.shape
        self.params = (x.shape, kernel, stride, padding, out)
        return (total / divisor).transpose(0, 3, 1, 2)

    def backward(self, gy):
        xp = xp_of(gy)
        x_shape, kernel, stride, padding, out = self.params
        share = gy.transpose(0, 2, 3, 1) / self.divisor  # (N, OH, OW, C)
        dxpad = xp.zeros(self.padded_shape, dtype=gy.dtype)
        for i in range(kernel[0]):
            for j in range(kernel[1]):
                rows, cols = window_slice(i, j, stride, (1, 1), out)
                dxpad[:, rows, cols, :] += share
        h, w = x_shape[2:]
        dx = dxpad[:, padding[0] : padding[0] + h, padding[1] : padding[1] + w, :]
        return dx.transpose(0, 3, 1, 2)


def _window_counts(xp, size, out, kernel, stride, padding, count_include_pad):
    """Cells each window covers along one axis, by PyTorch's avg-pool divisor rule."""
    start = xp.arange(out) * stride - padding
    end = xp.minimum(start + kernel, size + padding)
    if count_include_pad:
        return end - start
    return xp.minimum(end, size) - xp.maximum(start, 0)
