"""Batch-norm training statistics over the global batch: the reductions of nn.SyncBatchNorm.

Each rank holds a slice of the global batch. Forward allreduces, per channel, the sum and the
sum of squares (and the count), so every rank normalises with the global mean and biased
variance; backward allreduces the two per-channel sums the input gradient needs. The result is
one process's batch norm over the global batch, up to float rounding.
"""

import numpy as np

from juanji.distributed import world
from juanji.function import Function
from juanji.ops.kernels import (
    channel_combination,
    channel_dots,
    channel_sums,
    channels_last_rows,
    rows_to_channels_first,
)


class SyncBatchNorm(Function):
    """y = (x - mean) / sqrt(var + eps) * weight + bias per channel, x: (N, C, *) this rank's
    slice, mean and biased var over the slices of all ranks. weight, bias: (C,) or None.

    Numerics: the local sum accumulates in float64 and the local sum of squares is taken about
    the local mean (as BatchNorm centres before squaring); the global sum of squares is rebuilt
    from those in float64, so E[x^2] - E[x]^2 does not cancel. After forward, `batch_mean`,
    `batch_var` (C,) and `count` (N * spatial over all ranks) serve the running statistics.

    Gradients: the weight and bias gradients returned are this rank's own sums (the gradient
    averaging of DistributedDataParallel weights them by sample count). The input gradient needs
    sum(dL/dy) and sum(dL/dy * xhat) over the global batch of the global loss; each rank's loss
    is the mean over its n_r samples, so these are allreduced weighted by n_r (= N here) and
    divided by this rank's n_r: exact for uneven slices, PyTorch's unweighted sums when equal.
    """

    input_kinds = "f"

    def forward(self, x, weight=None, bias=None, eps=1e-5):
        c = x.shape[1]
        rows, period = channels_last_rows(x)  # (R, P*C)
        local = rows.size // c
        sums = channel_sums(rows, c, np.float64)  # (C,)
        local_mean = (sums / max(local, 1)).astype(x.dtype)  # (C,)
        centered = channel_combination([(rows, None)], -local_mean, period)  # (R, P*C)
        # sum x^2 = sum (x - a)^2 + 2 a sum x - n a^2, with a the local mean as used above
        a = local_mean.astype(np.float64)
        squares = channel_dots(centered, centered, c) + 2 * a * sums - local * a * a  # (C,)
        totals = np.concatenate([sums, squares, [local]])  # (2C + 1,) float64
        world.allreduce_sum(totals, "SyncBatchNorm's statistics allreduce")
        count = int(totals[-1])
        if count == 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got a "
                             f"global batch of {count} value per channel")
        mean64 = totals[:c] / max(count, 1)
        var64 = np.maximum(totals[c : 2 * c] / max(count, 1) - mean64 * mean64, 0)
        mean, var = mean64.astype(x.dtype), var64.astype(x.dtype)
        channel_combination([(rows, None)], -mean, period, out=centered)  # x - global mean
        invstd = 1 / np.sqrt(var + x.dtype.type(eps))  # (C,)
        scale = invstd if weight is None else invstd * weight
        y = channel_combination([(centered, scale)], bias, period)  # xhat * w + b
        self.batch_mean, self.batch_var, self.count = mean, var, count
        self.rows, self.mean, self.invstd, self.scale = rows, mean, invstd, scale
        self.samples = x.shape[0]
        return rows_to_channels_first(y, x.shape)

    def backward(self, gy):
        c = gy.shape[1]
        rows, period = channels_last_rows(gy)  # (R, P*C)
        need_x = self.needs_grad[0]
        need_w = len(self.needs_grad) > 1 and self.needs_grad[1]
        need_b = len(self.needs_grad) > 2 and self.needs_grad[2]
        gb = channel_sums(rows, c)  # sum(gy), (C,)
        centered = channel_combination([(self.rows, None)], -self.mean, period)
        gw = channel_dots(rows, centered, c) * self.invstd  # sum(gy * xhat), (C,)
        gx = None
        if need_x:
            n = self.samples
            totals = np.concatenate([gb, gw]).astype(np.float64) * n  # (2C,)
            world.allreduce_sum(totals, "SyncBatchNorm's gradient allreduce")
            mine = (totals / n if n else totals).astype(gy.dtype)
            sum_gy, sum_gy_xhat = mine[:c], mine[c:]
            k = -self.scale * self.invstd * sum_gy_xhat / self.count  # xhat * k = centered * ..
            terms = [(rows, self.scale), (centered, k)]
            gx = channel_combination(terms, -self.scale * sum_gy / self.count, period)
            gx = rows_to_channels_first(gx, gy.shape)
        return gx, gw if need_w else None, gb if need_b else None
