"""Dropout: zero elements (or whole channels) with probability p while training."""

from juanji.function import Function

# The SELU fixed point: alpha' = -scale * alpha of SELU, the value a dropped unit takes.
_ALPHA_PRIME = 1.7580993408473766


def draw_keep(x, p, rng, noise_shape=None):
    """Boolean keep-mask of `noise_shape` (default x.shape): True with probability 1 - p.

    Drawn as float32 uniforms u in [0, 1) and kept where u >= p; a noise shape with size-1 axes
    (e.g. (N, C, 1, 1)) drops whole channels once broadcast against x.
    """
    shape = x.shape if noise_shape is None else noise_shape
    return rng.random(shape, dtype="float32") >= p


class Dropout(Function):
    """Keep each element with probability 1 - p.

    `scale_kept=True` is the 'upscale_in_train' convention (PyTorch's): kept values are divided
    by 1 - p in training so inference is the identity. `scale_kept=False` is Paddle's
    'downscale_in_infer': training only masks, and inference multiplies by 1 - p instead.
    `keep` is a fixed boolean mask broadcastable to x; without it one is drawn from `rng` (a
    numpy Generator) with `noise_shape` (see `draw_keep`). p = 1 zeroes everything.
    """

    input_kinds = "f"

    def forward(self, x, p, rng=None, scale_kept=True, noise_shape=None, keep=None):
        self.keep = draw_keep(x, p, rng, noise_shape) if keep is None else keep
        if p >= 1:
            scale = x.dtype.type(0.0)
        else:
            scale = x.dtype.type(1.0 / (1.0 - p) if scale_kept else 1.0)
        self.mask = self.keep * scale  # keep's shape, x's dtype
        return x * self.mask

    def backward(self, gy):
        return gy * self.mask


class AlphaDropout(Function):
    """Dropout that keeps SELU's zero mean and unit variance (Klambauer et al., 2017).

    Dropped units take the value -alpha' (alpha' = 1.7581, SELU's negative saturation), then
    y = a * (x * keep - alpha' * (1 - keep)) + alpha' * a * p with
    a = 1 / sqrt((alpha'^2 p + 1)(1 - p)), PyTorch's affine correction; dy/dx = a * keep.
    """

    input_kinds = "f"

    def forward(self, x, p, rng=None, keep=None):
        keep = draw_keep(x, p, rng) if keep is None else keep
        dtype = x.dtype.type
        a = (_ALPHA_PRIME**2 * p + 1) * (1 - p)
        a = 1.0 / a**0.5
        keep_f = keep.astype(x.dtype)
        self.slope = keep_f * dtype(a)
        self.keep = keep
        offset = (keep_f - 1) * dtype(_ALPHA_PRIME * a) + dtype(_ALPHA_PRIME * a * p)
        return x * self.slope + offset

    def backward(self, gy):
        return gy * self.slope
