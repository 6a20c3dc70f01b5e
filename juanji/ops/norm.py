"""Normalisation ops: batch, layer and group normalisation, local response normalisation.

Each is one fused Function. The statistics are the mean and the biased variance (divide by the
count, as every framework normalises), computed as the mean of squared deviations from the mean
rather than E[x^2] - E[x]^2, which cancels catastrophically in float32 and turns a constant
channel into noise.
"""

import math

from juanji.backend import xp_of
from juanji.function import Function
from juanji.ops.kernels import (
    batch_norm_input_grad,
    channel_combination,
    channel_grad_sums,
    channel_moments,
    channel_sums,
    channels_last_rows,
    compiled_relu_masking,
    relu_gradient,
    relu_in_place,
    rows_to_channels_first,
)


def _standardize(x, axes, eps):
    """(x - mean) / sqrt(var + eps) over `axes`; returns xhat, invstd (keepdims), mean, var."""
    xp = xp_of(x)
    mean = x.mean(axis=axes, keepdims=True)
    centered = x - mean
    var = (centered * centered).mean(axis=axes, keepdims=True)
    invstd = 1 / xp.sqrt(var + x.dtype.type(eps))
    centered *= invstd  # xhat, in place: no new array
    return centered, invstd, mean, var


def _standardize_grad(dxhat, xhat, invstd, axes):
    """Gradient through xhat = (x - mean(x)) * invstd(x) over `axes`, given d(loss)/d(xhat).

    dx = invstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)): the two means are the
    gradient paths through the mean and through the variance.
    """
    m1 = dxhat.mean(axis=axes, keepdims=True)
    m2 = (dxhat * xhat).mean(axis=axes, keepdims=True)
    return invstd * (dxhat - m1 - xhat * m2)


def _channel_shape(ndim):
    """Shape that broadcasts a (C,) vector along axis 1 of an (N, C, *) array."""
    return (1, -1) + (1,) * (ndim - 2)


def per_channel_affine(mean, var, weight, bias, eps, dtype):
    """Batch norm as one affine pass per channel, y = x * scale + shift, as PyTorch's CPU
    kernel: -> (invstd, scale, shift), each (C,) in `dtype`, with invstd = 1 / sqrt(var + eps),
    scale = invstd * weight and shift = bias - mean * scale (weight and bias may be None).
    The conv epilogue that applies an eval-mode batch norm (ops.conv.Conv2d's `affine`)
    takes the same vectors, so it gives the same bits."""
    xp = xp_of(mean)
    mean, var = mean.astype(dtype, copy=False), var.astype(dtype, copy=False)
    invstd = 1 / xp.sqrt(var + dtype.type(eps))
    scale = invstd if weight is None else invstd * weight
    shift = -mean * scale if bias is None else bias - mean * scale
    return invstd, scale, shift


class BatchNorm(Function):
    """y = (x - mean) / sqrt(var + eps) * weight + bias, per channel; x: (N, C, *).

    training=True: mean and biased var over every axis but 1 (N and all spatial axes); the
    caller reads `batch_mean` and `batch_var` (biased, shape (C,)) afterwards to update running
    statistics. training=False: the given `mean` and `var` (C,) are used and are constants.
    weight and bias (C,) may be None. activation="relu" returns max(y, 0), the ReLU applied in
    the same pass (bit-identical to a separate Relu op, gradient included).

    Works on channels-last rows (see `channels_last_rows`): the sums are BLAS products and every
    per-channel broadcast runs over long rows; the output is an NCHW view of channels-last
    memory, like conv's. Training mode reads x once for both statistics and once more for
    y = x * scale + shift; backward reads gy and x once for the two sums and once for dx.
    """

    input_kinds = "f"

    def forward(self, x, weight=None, bias=None, mean=None, var=None, eps=1e-5, training=True,
                activation=None):
        c = x.shape[1]
        rows, period = channels_last_rows(x)  # (R, P*C)
        if training:
            # one read of x for both statistics (see channel_moments)
            mean, var = (m.astype(x.dtype) for m in channel_moments(rows, c, period))  # (C,)
            self.batch_mean, self.batch_var = mean, var
        invstd, scale, shift = per_channel_affine(mean, var, weight, bias, eps, x.dtype)
        mean = mean.astype(x.dtype, copy=False)
        if activation not in (None, "relu"):
            raise ValueError(f"batch norm fuses only activation='relu'; got {activation!r}")
        relu = activation == "relu"
        y = channel_combination([(rows, scale)], shift, period,
                                finish=relu_in_place if relu else None)
        # a ReLU fused into the same pass (see nn.utils.fuse_activations); backward masks gy
        # by the output first, as the ReLU's own backward would
        self.relu_rows = y if relu and any(self.needs_grad) else None
        # Backward re-centres x block by block rather than this op keeping a centred copy: x
        # is kept anyway as the input tensor, and its rows are a view of it when x comes from
        # a conv, so batch norm holds no activation-sized array of its own.
        self.rows, self.mean = rows, mean
        self.invstd, self.scale, self.training = invstd, scale, training
        return rows_to_channels_first(y, x.shape)

    def backward(self, gy):
        """Training mode reuses the two channel sums the parameter gradients need anyway:
        mean(dxhat) = weight * sum(gy) / M and mean(dxhat * xhat) = weight * sum(gy * xhat) / M
        (M = N * spatial), so dx = invstd * weight * (gy - sum(gy) / M - xhat * sum(gy xhat) / M).
        Both sums come from one read of gy and x, and dx from a second.
        """
        c = gy.shape[1]
        rows, period = channels_last_rows(gy)  # (R, P*C)
        count = max(rows.size // c, 1)
        need_x = self.needs_grad[0]
        need_w = len(self.needs_grad) > 1 and self.needs_grad[1]
        need_b = len(self.needs_grad) > 2 and self.needs_grad[2]
        relu_rows = self.relu_rows
        if relu_rows is not None and not (
                need_x and self.training and compiled_relu_masking(rows, self.rows)):
            rows, relu_rows = relu_gradient(rows, relu_rows), None  # the ReLU's gradient first
        # else the compiled passes below mask gy themselves
        gx = gw = gb = None
        if need_w or (need_x and self.training):
            gb, dots = channel_grad_sums(rows, self.rows, self.mean, period, relu_rows)
            gw = dots * self.invstd  # sum(gy * xhat), (C,)
        elif need_b:
            gb = channel_sums(rows, c)  # (C,)
        if need_x:
            if self.training:
                # xhat * k = (x - mean) * (invstd * k)
                k = -self.scale * self.invstd * gw / count
                gx = batch_norm_input_grad(rows, self.rows, self.mean, self.scale, k,
                                           -self.scale * gb / count, period, relu_rows)
            else:
                gx = channel_combination([(rows, self.scale)], None, period)
            gx = rows_to_channels_first(gx, gy.shape)
        return gx, gw if need_w else None, gb if need_b else None


class LayerNorm(Function):
    """Normalise over the last `ndim` axes of x, then * weight + bias (shaped like those axes).

    x: (*, D1, ..., Dk) with k = ndim; weight, bias: (D1, ..., Dk) or None.
    """

    input_kinds = "f"

    def forward(self, x, weight=None, bias=None, ndim=1, eps=1e-5):
        axes = tuple(range(x.ndim - ndim, x.ndim))
        self.xhat, self.invstd, _, _ = _standardize(x, axes, eps)
        self.axes, self.weight = axes, weight
        y = self.xhat if weight is None else self.xhat * weight
        return y if bias is None else y + bias

    def backward(self, gy):
        lead = tuple(range(gy.ndim - len(self.axes)))
        dxhat = gy if self.weight is None else gy * self.weight
        gx = gw = gb = None
        if self.needs_grad[0]:
            gx = _standardize_grad(dxhat, self.xhat, self.invstd, self.axes)
        if len(self.needs_grad) > 1 and self.needs_grad[1]:
            gw = (gy * self.xhat).sum(axis=lead)
        if len(self.needs_grad) > 2 and self.needs_grad[2]:
            gb = gy.sum(axis=lead)
        return gx, gw, gb


class GroupNorm(Function):
    """Split the C channels into G groups and normalise each (sample, group) over its
    C/G channels and all spatial positions, then * weight[c] + bias[c].

    x: (N, C, *), weight and bias: (C,) or None.
    """

    input_kinds = "f"

    def forward(self, x, weight=None, bias=None, groups=1, eps=1e-5):
        n = x.shape[0]
        xg = x.reshape(n, groups, math.prod(x.shape[1:]) // groups)  # (N, G, C/G * spatial)
        xhat, invstd, _, _ = _standardize(xg, (2,), eps)
        self.xhat, self.invstd, self.groups, self.weight = xhat, invstd, groups, weight
        xhat = xhat.reshape(x.shape)  # (N, C, *)
        shape = _channel_shape(x.ndim)
        y = xhat if weight is None else xhat * weight.reshape(shape)
        return y if bias is None else y + bias.reshape(shape)

    def backward(self, gy):
        shape = _channel_shape(gy.ndim)
        axes = (0,) + tuple(range(2, gy.ndim))
        dxhat = gy if self.weight is None else gy * self.weight.reshape(shape)
        gx = gw = gb = None
        if self.needs_grad[0]:
            dxg = dxhat.reshape(self.xhat.shape)  # (N, G, C/G * spatial)
            gx = _standardize_grad(dxg, self.xhat, self.invstd, (2,)).reshape(gy.shape)
        if len(self.needs_grad) > 1 and self.needs_grad[1]:
            gw = (gy * self.xhat.reshape(gy.shape)).sum(axis=axes)
        if len(self.needs_grad) > 2 and self.needs_grad[2]:
            gb = gy.sum(axis=axes)
        return gx, gw, gb


def _channel_window_sum(a, before, after):
    """s[:, c] = sum of a[:, c - before : c + after + 1] with zeros outside [0, C); a: (N, C, *).

    Loops over the window taps only (size = before + after + 1 is small).
    """
    xp = xp_of(a)
    c = a.shape[1]
    pad = [(0, 0)] * a.ndim
    pad[1] = (before, after)
    padded = xp.pad(a, pad)  # (N, before + C + after, *)
    total = padded[:, 0:c].copy()
    for j in range(1, before + after + 1):
        total += padded[:, j : j + c]
    return total


class LocalResponseNorm(Function):
    """y = x / (k + alpha / size * sum of x^2 over a channel window) ** beta; x: (N, C, *).

    PyTorch's window: channels c - size//2 .. c + (size-1)//2, zero outside the input, and the
    sum divided by `size` even where the window is cut (an average with zero padding).
    With d = k + alpha/size * S and t = gy * x * d^(-beta-1), the input gradient is
    gy * d^-beta - 2 alpha beta / size * x * (sum of t over the channels whose window holds x),
    the transposed window.
    """

    input_kinds = "f"

    def forward(self, x, size, alpha=1e-4, beta=0.75, k=1.0):
        xp = xp_of(x)
        before, after = size // 2, (size - 1) // 2
        summed = _channel_window_sum(x * x, before, after)
        d = x.dtype.type(k) + x.dtype.type(alpha / size) * summed
        self.scale = xp.power(d, x.dtype.type(-beta))  # d^-beta
        self.x, self.d = x, d
        self.params = (size, alpha, beta, before, after)
        return x * self.scale

    def backward(self, gy):
        size, alpha, beta, before, after = self.params
        t = gy * self.x * self.scale / self.d  # gy * x * d^(-beta-1)
        back = _channel_window_sum(t, after, before)
        return gy * self.scale - gy.dtype.type(2 * alpha * beta / size) * self.x * back
