"""Loss functions as fused Functions, so gradients stay exact and stable.

Every loss takes `reduction`: 'none' keeps the per-element (or per-sample) losses, 'sum' adds
them, 'mean' divides the sum by the count (or by a summed weight where PyTorch does; each class
says which). Label checks raise ValueError naming the offending value.
"""

from juanji.backend import xp_of
from juanji.function import Function, unbroadcast
from juanji.ops.activation import _sigmoid, log_softmax_array


def _reduce(losses, reduction, denominator=None):
    """Apply `reduction` to an array of losses; returns (value, scale) with d value = scale."""
    if reduction == "none":
        return losses, None
    total = losses.sum()
    if reduction == "sum":
        return total, 1.0
    denominator = losses.size if denominator is None else denominator
    with xp_of(losses).errstate(invalid="ignore", divide="ignore"):  # empty or all ignored: nan
        scale = 1.0 / denominator if denominator else float("nan")  # no element gets it then
        return total / losses.dtype.type(denominator), scale


def _upstream(gy, reduction, scale, shape):
    """The upstream gradient of each element of the unreduced loss array of `shape`."""
    xp = xp_of(gy)
    if reduction == "none":
        return gy
    return xp.broadcast_to(gy * gy.dtype.type(scale), shape)


def _rows(x):
    """(N, C, d1, ...) -> (M, C) with the class axis last, M = N * d1 * ..."""
    xp = xp_of(x)
    return xp.moveaxis(x, 1, -1).reshape(-1, x.shape[1])  # (M, C)


def _unrows(g, shape):
    """Inverse of `_rows`: (M, C) -> (N, C, d1, ...)."""
    xp = xp_of(g)
    n, c = shape[:2]
    return xp.moveaxis(g.reshape((n,) + tuple(shape[2:]) + (c,)), -1, 1)


def _class_targets(target, c, ignore_index):
    """Flat targets, their validity mask and a safe index (ignored -> 0); rejects bad labels."""
    xp = xp_of(target)
    flat = target.reshape(-1)  # (M,)
    valid = flat != ignore_index
    bad = valid & ((flat < 0) | (flat >= c))
    if bad.any():
        raise ValueError(f"target values must be in [0, {c - 1}] (or "
                         f"ignore_index={ignore_index}); got {flat[bad][0]}")
    return valid, xp.where(valid, flat, 0)


class CrossEntropy(Function):
    """Fused log-softmax + negative log-likelihood; logits (N, C) or (N, C, d1, ...).

    Class-index targets (int, (N,) or (N, d1, ...)): per element
    loss = (1 - eps) * w[t] * -logp[t] + eps / C * sum_c w[c] * -logp[c] (eps = label
    smoothing, w = class weights or ones), 0 where t == ignore_index; 'mean' divides by the sum
    of w[t] over the counted elements (PyTorch's rule, also with smoothing).
    Probability targets (float, shaped like the logits): q = (1 - eps) * target + eps / C,
    loss = -sum_c w[c] * q[c] * logp[c]; 'mean' divides by N * d1 * ....
    Both cases are -sum_c Q[c] logp[c] for an unnormalised target Q, whose gradient is
    sum(Q) * softmax - Q; logp is max-shifted so any finite logits give finite losses.
    """

    input_kinds = "f"

    def forward(self, logits, target, weight=None, ignore_index=-100, reduction="mean",
                label_smoothing=0.0):
        xp = xp_of(logits)
        c = logits.shape[1]
        eps = logits.dtype.type(label_smoothing)
        self.logp = log_softmax_array(_rows(logits))  # (M, C)
        self.shape, self.reduction, self.eps, self.weight = logits.shape, reduction, eps, weight
        self.soft = target.dtype.kind == "f"
        if self.soft:
            q = _rows(target).astype(logits.dtype, copy=False)  # (M, C)
            if label_smoothing:
                q = q * (1 - eps) + eps / c
            if weight is not None:
                q = q * weight
            self.q = q
            losses = -(q * self.logp).sum(axis=1)  # (M,)
            denominator = None
        else:
            valid, safe = _class_targets(target, c, ignore_index)
            w_t = valid.astype(logits.dtype)  # (M,)
            if weight is not None:
                w_t = w_t * weight[safe]
            rows = xp.arange(len(safe))
            losses = -(1 - eps) * w_t * self.logp[rows, safe]
            if label_smoothing:
                each = -self.logp if weight is None else -self.logp * weight  # (M, C)
                losses = losses + (eps / c) * each.sum(axis=1) * valid
            self.valid, self.safe, self.w_t = valid, safe, w_t
            denominator = w_t.sum()
        out, self.scale = _reduce(losses, reduction, denominator)
        if reduction == "none":
            return out.reshape(logits.shape[:1] + logits.shape[2:])  # (N, d1, ...)
        return out

    def backward(self, gy):
        xp = xp_of(gy)
        m, c = self.logp.shape
        s = _upstream(gy, self.reduction, self.scale, (m,)).reshape(-1)  # (M,)
        p = xp.exp(self.logp)  # softmax (M, C)
        if self.soft:
            g = p * (s * self.q.sum(axis=1))[:, None] - s[:, None] * self.q
        else:
            s = xp.where(self.valid, s, 0)  # ignored rows get 0, even when 'mean' divides by 0
            eps = self.eps
            w_sum = c if self.weight is None else self.weight.sum()
            total = (1 - eps) * self.w_t + (eps / c) * w_sum * self.valid  # sum of Q per row
            g = p * (s * total)[:, None]
            g[xp.arange(m), self.safe] -= s * (1 - eps) * self.w_t
            if eps:
                spread = (s * (eps / c) * self.valid)[:, None]  # (M, 1)
                g -= spread if self.weight is None else spread * self.weight
        return _unrows(g, self.shape), None


class NLL(Function):
    """Negative log-likelihood of log-probabilities (N, C) or (N, C, d1, ...) at class targets.

    loss = -w[t] * input[t], 0 where t == ignore_index; 'mean' divides by the sum of w[t].
    """

    input_kinds = "f"

    def forward(self, logp, target, weight=None, ignore_index=-100, reduction="mean"):
        xp = xp_of(logp)
        c = logp.shape[1]
        valid, safe = _class_targets(target, c, ignore_index)
        w_t = valid.astype(logp.dtype)
        if weight is not None:
            w_t = w_t * weight[safe]
        rows = _rows(logp)  # (M, C)
        losses = -w_t * rows[xp.arange(len(safe)), safe]
        self.safe, self.valid, self.w_t = safe, valid, w_t
        self.shape, self.reduction = logp.shape, reduction
        out, self.scale = _reduce(losses, reduction, w_t.sum())
        return out.reshape(target.shape) if reduction == "none" else out

    def backward(self, gy):
        xp = xp_of(gy)
        m = len(self.safe)
        s = _upstream(gy, self.reduction, self.scale, (m,)).reshape(-1)
        s = xp.where(self.valid, s, 0)  # ignored rows get 0, even when 'mean' divides by 0
        g = xp.zeros((m, self.shape[1]), dtype=gy.dtype)
        g[xp.arange(m), self.safe] = -s * self.w_t
        return _unrows(g, self.shape), None


class _Elementwise(Function):
    """Base of the losses l(x, y) taken element by element over broadcast x and y.

    Subclasses define `pointwise(x, y, **params)` -> (loss, dloss/dx, dloss/dy), the two
    derivatives being None where not needed. An optional `weight` (broadcast against the loss)
    multiplies each element; with `weight_mean` 'mean' divides by weight.sum() instead of the
    element count (PyTorch's rule for weighted mse and l1).
    """

    input_kinds = "f"

    def forward(self, x, y, weight=None, reduction="mean", weight_mean=False, **params):
        loss, dx, dy = self.pointwise(x, y, **params)
        if weight is not None:
            loss = loss * weight
            dx = None if dx is None else dx * weight
            dy = None if dy is None else dy * weight
        self.dx, self.dy, self.shapes = dx, dy, (x.shape, y.shape, loss.shape)
        self.reduction = reduction
        denominator = weight.sum() if weight is not None and weight_mean else None
        out, self.scale = _reduce(loss, reduction, denominator)
        return out

    def backward(self, gy):
        x_shape, y_shape, loss_shape = self.shapes
        g = _upstream(gy, self.reduction, self.scale, loss_shape)
        gx = unbroadcast(g * self.dx, x_shape) if self.needs_grad[0] else None
        gt = unbroadcast(g * self.dy, y_shape) if self.needs_grad[1] else None
        return gx, gt

    def pointwise(self, x, y, **params):
        raise NotImplementedError


class MSE(_Elementwise):
    """(x - y)^2."""

    def pointwise(self, x, y):
        d = x - y
        return d * d, 2 * d, -2 * d


class L1(_Elementwise):
    """|x - y|; gradient sign(x - y), 0 where x == y."""

    def pointwise(self, x, y):
        d = x - y
        sign = xp_of(d).sign(d)
        return abs(d), sign, -sign


class SmoothL1(_Elementwise):
    """0.5 d^2 / beta where |d| < beta, |d| - 0.5 beta elsewhere (d = x - y); beta=0 is L1."""

    def pointwise(self, x, y, beta=1.0):
        xp = xp_of(x)
        d = x - y
        a = abs(d)
        if beta == 0:
            sign = xp.sign(d)
            return a, sign, -sign
        b = d.dtype.type(beta)
        inside = a < b
        loss = xp.where(inside, d.dtype.type(0.5) * d * d / b, a - d.dtype.type(0.5) * b)
        slope = xp.where(inside, d / b, xp.sign(d))
        return loss, slope, -slope


class Huber(_Elementwise):
    """0.5 d^2 where |d| < delta, delta * (|d| - 0.5 delta) elsewhere (d = x - y)."""

    def pointwise(self, x, y, delta=1.0):
        xp = xp_of(x)
        d = x - y
        a = abs(d)
        dl = d.dtype.type(delta)
        inside = a < dl
        loss = xp.where(inside, d.dtype.type(0.5) * d * d, dl * (a - d.dtype.type(0.5) * dl))
        slope = xp.clip(d, -dl, dl).astype(d.dtype, copy=False)
        return loss, slope, -slope


class BinaryCrossEntropy(_Elementwise):
    """-(y log x + (1 - y) log(1 - x)) for probabilities x in [0, 1], targets y.

    Both logs are clamped at -100 (PyTorch's rule), so x = 0 or 1 gives a finite loss; the input
    gradient (x - y) / max(x (1 - x), 1e-12) is likewise finite. The target gradient
    log(1 - x) - log(x) is not clamped (as in PyTorch) and is infinite at x = 0 or 1.
    """

    def pointwise(self, x, y):
        xp = xp_of(x)
        with xp.errstate(divide="ignore"):
            log_x, log_1mx = xp.log(x), xp.log1p(-x)
        floor = x.dtype.type(-100)
        loss = -(y * xp.maximum(log_x, floor) + (1 - y) * xp.maximum(log_1mx, floor))
        dx = (x - y) / xp.maximum(x * (1 - x), x.dtype.type(1e-12))
        return loss, dx, log_1mx - log_x


class BinaryCrossEntropyWithLogits(_Elementwise):
    """Sigmoid + binary cross-entropy in one stable formula, for logits x and targets y.

    loss = (1 - y) x + (1 + (pw - 1) y) * softplus(-x), softplus(-x) = max(-x, 0) +
    log1p(exp(-|x|)), which never overflows (|x| = 1e4 is fine). pw (pos_weight, broadcast
    along the last axis) weighs the positive term. d/dx = (1 - y) - (1 + (pw - 1) y) sigmoid(-x);
    d/dy = (pw - 1) softplus(-x) - x.
    """

    def pointwise(self, x, y, pos_weight=None):
        xp = xp_of(x)
        softplus_neg = xp.maximum(-x, 0) + xp.log1p(xp.exp(-abs(x)))
        log_weight = 1 if pos_weight is None else 1 + (pos_weight - 1) * y
        loss = (1 - y) * x + log_weight * softplus_neg
        dx = (1 - y) - log_weight * _sigmoid(-x)
        dy = -x if pos_weight is None else (pos_weight - 1) * softplus_neg - x
        return loss, dx, dy


class MarginRanking(Function):
    """max(0, -y (x1 - x2) + margin) elementwise (broadcast); the gradient passes where the
    hinge argument is >= 0 (PyTorch's clamp_min rule, so a tie at exactly 0 passes)."""

    input_kinds = "f"

    def forward(self, x1, x2, y, margin=0.0, reduction="mean"):
        z = -y * (x1 - x2) + x1.dtype.type(margin)
        self.active = (z >= 0) * y  # (broadcast shape)
        self.shapes, self.reduction = (x1.shape, x2.shape, y.shape, z.shape), reduction
        self.y = y
        out, self.scale = _reduce(xp_of(z).maximum(z, 0), reduction)
        return out

    def backward(self, gy):
        s1, s2, s3, shape = self.shapes
        g = _upstream(gy, self.reduction, self.scale, shape) * self.active
        g1 = unbroadcast(-g, s1) if self.needs_grad[0] else None
        g2 = unbroadcast(g, s2) if self.needs_grad[1] else None
        return g1, g2, None


class PairwiseDistance(Function):
    """||x1 - x2 + eps||_p over the last axis (PyTorch adds eps to the difference).

    x1, x2: (N, D) or (D,), broadcast -> (N,) or (); p > 0. d/dv ||v||_p =
    sign(v) |v|^(p-1) / ||v||^(p-1), and v = x1 - x2 + eps is nonzero unless x2 - x1 = eps.
    """

    input_kinds = "f"

    def forward(self, x1, x2, p=2.0, eps=1e-6, keepdim=False):
        xp = xp_of(x1)
        v = x1 - x2 + x1.dtype.type(eps)
        a = abs(v)
        if p == 2:
            norm = xp.sqrt((v * v).sum(axis=-1, keepdims=True))
        elif p == 1:
            norm = a.sum(axis=-1, keepdims=True)
        else:
            norm = (a ** x1.dtype.type(p)).sum(axis=-1, keepdims=True) ** x1.dtype.type(1 / p)
        self.v, self.norm, self.p = v, norm, p
        self.shapes, self.keepdim = (x1.shape, x2.shape), keepdim
        return norm if keepdim else norm[..., 0]

    def backward(self, gy):
        xp = xp_of(gy)
        g = gy if self.keepdim else gy[..., None]
        v, norm, p = self.v, self.norm, self.p
        with xp.errstate(divide="ignore", invalid="ignore"):
            if p == 2:
                dv = v / norm
            elif p == 1:
                dv = xp.sign(v)
            else:
                dv = xp.sign(v) * (abs(v) / norm) ** v.dtype.type(p - 1)
        dv = xp.where(norm == 0, 0, dv) * g
        g1 = unbroadcast(dv, self.shapes[0]) if self.needs_grad[0] else None
        g2 = unbroadcast(-dv, self.shapes[1]) if self.needs_grad[1] else None
        return g1, g2


class CosineEmbedding(Function):
    """1 - cos(x1, x2) where y = 1, max(0, cos(x1, x2) - margin) where y = -1.

    x1, x2: (N, D) or (D,), y: (N,) or (); cos = <x1, x2> / sqrt((|x1|^2 + 1e-12)(|x2|^2 +
    1e-12)), PyTorch's epsilon. The hinge passes gradient where cos - margin >= 0.
    """

    input_kinds = "f"

    def forward(self, x1, x2, y, margin=0.0, reduction="mean"):
        xp = xp_of(x1)
        tiny = x1.dtype.type(1e-12)
        dot = (x1 * x2).sum(axis=-1)
        m1, m2 = (x1 * x1).sum(axis=-1) + tiny, (x2 * x2).sum(axis=-1) + tiny
        denom = xp.sqrt(m1 * m2)
        cos = dot / denom
        positive, negative = y == 1, y == -1
        hinge = cos - x1.dtype.type(margin)
        loss = xp.where(positive, 1 - cos, xp.where(negative, xp.maximum(hinge, 0), 0))
        # d loss / d cos: -1 on positive pairs, 1 on active negative pairs, 0 elsewhere
        self.dcos = xp.where(positive, -1, xp.where(negative & (hinge >= 0), 1, 0))
        self.dcos = self.dcos.astype(x1.dtype)
        self.saved = (x1, x2, dot, m1, m2, denom)
        self.reduction, self.loss_shape = reduction, loss.shape
        out, self.scale = _reduce(loss, reduction)
        return out

    def backward(self, gy):
        x1, x2, dot, m1, m2, denom = self.saved
        g = _upstream(gy, self.reduction, self.scale, self.loss_shape) * self.dcos
        g = (g / denom)[..., None]  # (N, 1)
        cos_m1 = (dot / m1)[..., None]
        cos_m2 = (dot / m2)[..., None]
        g1 = g * (x2 - cos_m1 * x1) if self.needs_grad[0] else None
        g2 = g * (x1 - cos_m2 * x2) if self.needs_grad[1] else None
        return g1, g2, None


class Contrastive(Function):
    """Contrastive loss for Siamese pairs (Hadsell, Chopra & LeCun, 2006).

    x1, x2: (N, D) embeddings, y: (N,) with 1 = similar pair, 0 = dissimilar pair (note: the
    paper writes Y = 0 for similar). With d = ||x1 - x2||_2,
    loss = 0.5 * (y d^2 + (1 - y) max(0, margin - d)^2): similar pairs are pulled together,
    dissimilar pairs pushed apart until they are `margin` away. The dissimilar gradient
    -(margin - d) (x1 - x2) / d is taken as 0 at d = 0, where the direction is undefined.
    """

    input_kinds = "f"

    def forward(self, x1, x2, y, margin=1.0, reduction="mean"):
        xp = xp_of(x1)
        diff = x1 - x2  # (N, D)
        d2 = (diff * diff).sum(axis=-1)  # (N,)
        d = xp.sqrt(d2)
        gap = xp.maximum(x1.dtype.type(margin) - d, 0)
        y = y.astype(x1.dtype, copy=False)
        half = x1.dtype.type(0.5)
        loss = half * (y * d2 + (1 - y) * gap * gap)
        with xp.errstate(divide="ignore", invalid="ignore"):
            push = xp.where(d > 0, gap / d, 0)
        self.coef = (y - (1 - y) * push)[..., None]  # d loss / d diff = coef * diff
        self.diff, self.reduction, self.loss_shape = diff, reduction, loss.shape
        out, self.scale = _reduce(loss, reduction)
        return out

    def backward(self, gy):
        g = _upstream(gy, self.reduction, self.scale, self.loss_shape)[..., None] * self.coef
        gd = g * self.diff
        return (gd if self.needs_grad[0] else None), (-gd if self.needs_grad[1] else None), None
