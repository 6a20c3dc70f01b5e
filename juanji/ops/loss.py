"""Loss functions fused with their final activation, so their gradients stay exact and stable."""

from juanji.backend import xp_of
from juanji.function import Function


def log_softmax_rows(x):
    """log softmax over the last axis with the max shift: x - max - log(sum(exp(x - max)))."""
    xp = xp_of(x)
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=-1, keepdims=True))


class CrossEntropy(Function):
    """Fused log-softmax + negative log-likelihood over class indices.

    logits: (N, C) or (N, C, d1, ...), target: int (N,) or (N, d1, ...). `weight` (C,) rescales
    classes; targets equal to `ignore_index` contribute nothing. 'mean' divides by the summed
    weight of the counted targets, as PyTorch does.
    """

    def forward(self, logits, target, weight=None, ignore_index=-100, reduction="mean"):
        xp = xp_of(logits)
        c = logits.shape[1]
        rows = xp.moveaxis(logits, 1, -1).reshape(-1, c)  # (M, C)
        flat = target.reshape(-1)  # (M,)
        valid = flat != ignore_index
        bad = valid & ((flat < 0) | (flat >= c))
        if bad.any():
            raise ValueError(
                f"target values must be in [0, {c - 1}] (or ignore_index={ignore_index}); "
                f"got {flat[bad][0]}"
            )
        safe = xp.where(valid, flat, 0)
        w = valid.astype(logits.dtype)
        if weight is not None:
            w = w * weight[safe]
        self.logp = log_softmax_rows(rows)  # (M, C)
        picked = self.logp[xp.arange(len(safe)), safe]
        losses = -picked * w
        self.safe, self.w, self.reduction = safe, w, reduction
        self.logits_shape, self.target_shape = logits.shape, target.shape
        if reduction == "none":
            return losses.reshape(target.shape)
        if reduction == "sum":
            return losses.sum()
        self.total = w.sum()
        return losses.sum() / self.total

    def backward(self, gy):
        xp = xp_of(gy)
        g = xp.exp(self.logp)  # softmax (M, C)
        g[xp.arange(len(self.safe)), self.safe] -= 1
        if self.reduction == "none":
            scale = gy.reshape(-1) * self.w
        elif self.reduction == "sum":
            scale = gy * self.w
        else:
            scale = gy * self.w / self.total
        g *= scale[:, None]
        n, c = self.logits_shape[:2]
        g = g.reshape((n,) + self.logits_shape[2:] + (c,))
        return xp.moveaxis(g, -1, 1), None
