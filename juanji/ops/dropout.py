"""Dropout: zero each element with probability p."""

from juanji.function import Function


class Dropout(Function):
    """Keep each element with probability 1 - p.

    `scale_kept=True` is the 'upscale_in_train' convention (PyTorch's): kept values are divided
    by 1 - p in training so inference is the identity. `scale_kept=False` is Paddle's
    'downscale_in_infer': training only masks, and inference multiplies by 1 - p instead.
    `rng` is a numpy Generator; the mask is drawn in float32 uniform numbers.
    """

    def forward(self, x, p, rng, scale_kept=True):
        keep = rng.random(x.shape, dtype="float32") >= p
        scale = x.dtype.type(1.0 / (1.0 - p)) if scale_kept and p < 1 else x.dtype.type(1.0)
        self.mask = keep * scale if p < 1 else keep.astype(x.dtype)
        return x * self.mask

    def backward(self, gy):
        return gy * self.mask
