"""Matrix products: matmul and the fused affine map of nn.Linear."""

from juanji.backend import matmul, xp_of
from juanji.function import Function, unbroadcast


class MatMul(Function):
    """a @ b with NumPy's matmul rules (1-D operands promoted, batch axes broadcast)."""

    def forward(self, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError(f"both arguments to matmul need to be at least 1-D; got shapes "
                             f"{a.shape} and {b.shape}")
        inner = b.shape[0] if b.ndim == 1 else b.shape[-2]
        if a.shape[-1] != inner:
            raise ValueError(f"matmul shapes {a.shape} and {b.shape} cannot be multiplied: the "
                             f"last dim of the first ({a.shape[-1]}) must equal the "
                             f"{'only' if b.ndim == 1 else 'second-to-last'} dim of the second "
                             f"({inner})")
        self.a, self.b = a, b
        return matmul(a, b)

    def backward(self, gy):
        """Undo the promotion of 1-D operands: a (K,) is a (1, K) row, b (K,) a (K, 1) column,
        and gy gets their size-1 axes back (b's first: a 1-D @ 1-D gy is 0-d)."""
        xp = xp_of(gy)
        a = self.a[None, :] if self.a.ndim == 1 else self.a  # (..., M, K)
        b = self.b[:, None] if self.b.ndim == 1 else self.b  # (..., K, P)
        if self.b.ndim == 1:
            gy = gy[..., None]
        if self.a.ndim == 1:
            gy = xp.expand_dims(gy, -2)  # (..., M, P)
        ga = gb = None
        if self.needs_grad[0]:
            ga = unbroadcast(gy @ xp.swapaxes(b, -1, -2), a.shape).reshape(self.a.shape)
        if self.needs_grad[1]:
            gb = unbroadcast(xp.swapaxes(a, -1, -2) @ gy, b.shape).reshape(self.b.shape)
        return ga, gb


class Linear(Function):
    """y = x @ W.T + b.  x: (*, IN), W: (OUT, IN), b: (OUT,) or None -> y: (*, OUT)."""

    input_kinds = "f"

    def forward(self, x, weight, bias=None):
        self.x, self.weight = x, weight
        y = matmul(x.reshape(-1, x.shape[-1]), weight.T)  # (M, OUT)
        y = y.reshape(*x.shape[:-1], weight.shape[0])
        if bias is not None:
            y += bias
        return y

    def backward(self, gy):
        x2 = self.x.reshape(-1, self.x.shape[-1])  # (M, IN)
        gy2 = gy.reshape(-1, gy.shape[-1])  # (M, OUT)
        gx = matmul(gy2, self.weight).reshape(self.x.shape) if self.needs_grad[0] else None
        gw = matmul(gy2.T, x2) if self.needs_grad[1] else None
        gb = gy2.sum(axis=0) if len(self.needs_grad) > 2 and self.needs_grad[2] else None
        return gx, gw, gb
