"""Matrix products: matmul and the fused affine map of nn.Linear."""

from juanji.backend import xp_of
from juanji.function import Function, unbroadcast


class MatMul(Function):
    """a @ b with NumPy's matmul rules (1-D operands promoted, batch axes broadcast)."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a @ b

    def backward(self, gy):
        xp = xp_of(gy)
        a = self.a[None, :] if self.a.ndim == 1 else self.a
        b = self.b[:, None] if self.b.ndim == 1 else self.b
        if self.a.ndim == 1:
            gy = xp.expand_dims(gy, -2)
        if self.b.ndim == 1:
            gy = xp.expand_dims(gy, -1)
        ga = gb = None
        if self.needs_grad[0]:
            ga = unbroadcast(gy @ xp.swapaxes(b, -1, -2), a.shape).reshape(self.a.shape)
        if self.needs_grad[1]:
            gb = unbroadcast(xp.swapaxes(a, -1, -2) @ gy, b.shape).reshape(self.b.shape)
        return ga, gb


class Linear(Function):
    """y = x @ W.T + b.  x: (*, IN), W: (OUT, IN), b: (OUT,) or None -> y: (*, OUT)."""

    def forward(self, x, weight, bias=None):
        self.x, self.weight = x, weight
        y = x @ weight.T
        if bias is not None:
            y += bias
        return y

    def backward(self, gy):
        x2 = self.x.reshape(-1, self.x.shape[-1])  # (M, IN)
        gy2 = gy.reshape(-1, gy.shape[-1])  # (M, OUT)
        gx = (gy2 @ self.weight).reshape(self.x.shape) if self.needs_grad[0] else None
        gw = gy2.T @ x2 if self.needs_grad[1] else None
        gb = gy2.sum(axis=0) if len(self.needs_grad) > 2 and self.needs_grad[2] else None
        return gx, gw, gb
