"""Image transforms on NumPy arrays, one sample at a time or a whole batch at once.

Every transform has ``t(x)`` for one sample and ``t.batch(xs)`` for a batch stacked on a new
leading axis N. ``batch`` is vectorized, so a DataLoader can transform 60000 images without a
Python loop per image; ``Transform.batch`` falls back to a per-sample loop for transforms that
define only ``__call__``.

Layout: ``ToFloat`` turns images into float32 CHW (batches NCHW). The spatial transforms
(``RandomHorizontalFlip``, ``RandomCrop``) treat the last two axes as H and W, so they work on
CHW and on single-channel HW arrays; put them after ``ToFloat`` for HWC colour images.

Random transforms own a ``numpy.random.Generator`` (``seed`` may be an int, None or a
Generator); a batch draws all its random numbers in one call, so the per-sample and batch
paths consume the generator differently and are not expected to give identical results.
"""

import numpy as np


class Transform:
    """Base class: ``__call__(x)`` maps one sample; ``batch(xs)`` maps xs (N, ...)."""

    def __call__(self, x):
        raise NotImplementedError(f"{type(self).__name__} must define __call__")

    def batch(self, xs):
        """Apply the transform to each sample of xs (N, ...) and stack the results."""
        return np.stack([self(x) for x in xs])

    def __repr__(self):
        return f"{type(self).__name__}()"


def _is_hwc(shape):
    """True when a 3-D image shape reads as (H, W, C): last dim 1 or 3, first dim not."""
    return shape[-1] in (1, 3) and shape[0] not in (1, 3)


class ToFloat(Transform):
    """uint8 image -> float32 CHW in [0, 1] (value / 255); floating input is only cast.

    Layout rule for one sample: (H, W) gets a channel axis -> (1, H, W); a 3-D array whose
    last dim is 1 or 3 and whose first dim is not 1 or 3 is HWC and becomes CHW; any other
    3-D array is already CHW. ``batch`` applies the same rule behind the N axis:
    (N, H, W) -> (N, 1, H, W), (N, H, W, C) -> (N, C, H, W), (N, C, H, W) unchanged.
    """

    def __call__(self, x):
        x = np.asarray(x)
        if x.ndim not in (2, 3):
            raise ValueError(f"ToFloat expects an image of shape (H, W), (H, W, C) or "
                             f"(C, H, W); got shape {x.shape}")
        return self.batch(x[None])[0]

    def batch(self, xs):
        xs = np.asarray(xs)
        if xs.ndim == 3:
            xs = xs[:, None]  # (N, 1, H, W)
        elif xs.ndim == 4 and _is_hwc(xs.shape[1:]):
            # Transpose the 1-byte input before converting: 4x less memory traffic.
            xs = np.ascontiguousarray(xs.transpose(0, 3, 1, 2))  # (N, C, H, W)
        elif xs.ndim != 4:
            raise ValueError(f"ToFloat.batch expects images of shape (N, H, W), (N, H, W, C) "
                             f"or (N, C, H, W); got shape {xs.shape}")
        if xs.dtype == np.uint8:
            return np.divide(xs, np.float32(255), dtype=np.float32)
        if np.issubdtype(xs.dtype, np.floating):
            return xs.astype(np.float32)
        raise TypeError(f"ToFloat expects uint8 or floating images; got dtype {xs.dtype}")


class Normalize(Transform):
    """(x - mean[c]) / std[c] per channel, on float CHW images (batches NCHW).

    ``mean`` and ``std`` are numbers or sequences with one value per channel; std must be
    positive. The input's channel axis (-3) must have as many entries as ``mean``.
    """

    def __init__(self, mean, std):
        mean = np.atleast_1d(np.asarray(mean, dtype=np.float32))
        std = np.atleast_1d(np.asarray(std, dtype=np.float32))
        if mean.ndim != 1 or std.ndim != 1:
            raise ValueError(f"mean and std must be numbers or 1-D sequences; got shapes "
                             f"{mean.shape} and {std.shape}")
        if len(mean) != len(std):
            raise ValueError(f"mean and std must have the same length; got len(mean)="
                             f"{len(mean)}, len(std)={len(std)}")
        if not np.all(np.isfinite(mean)):
            raise ValueError(f"mean must be finite; got mean={mean.tolist()}")
        if not np.all((std > 0) & np.isfinite(std)):
            raise ValueError(f"std must be positive and finite; got std={std.tolist()}")
        self.mean = mean[:, None, None]  # (C, 1, 1)
        self.std = std[:, None, None]  # (C, 1, 1)

    def __call__(self, x):
        x = np.asarray(x)
        if x.ndim < 3 or x.shape[-3] != len(self.mean):
            raise ValueError(f"Normalize with {len(self.mean)} channels expects float images "
                             f"(..., C={len(self.mean)}, H, W); got shape {x.shape}")
        if not np.issubdtype(x.dtype, np.floating):
            raise TypeError(f"Normalize expects floating images; got dtype {x.dtype} "
                            f"(apply ToFloat first)")
        return ((x - self.mean) / self.std).astype(np.float32, copy=False)

    def batch(self, xs):
        return self(xs)  # mean and std broadcast over the leading N axis

    def __repr__(self):
        return f"Normalize(mean={self.mean.ravel().tolist()}, std={self.std.ravel().tolist()})"


class Compose(Transform):
    """Apply ``transforms`` in order; ``batch`` chains each one's ``batch`` where it has one."""

    def __init__(self, transforms):
        self.transforms = list(transforms)
        for i, t in enumerate(self.transforms):
            if not callable(t):
                raise TypeError(f"Compose expects callables; transforms[{i}] is "
                                f"{type(t).__name__}")

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x

    def batch(self, xs):
        for t in self.transforms:
            batch = getattr(t, "batch", None)
            xs = batch(xs) if callable(batch) else np.stack([t(x) for x in xs])
        return xs

    def __repr__(self):
        return f"Compose([{', '.join(repr(t) for t in self.transforms)}])"


class RandomHorizontalFlip(Transform):
    """Mirror the last axis (W) with probability ``p``, independently per sample."""

    def __init__(self, p=0.5, seed=None):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must lie in [0, 1]; got p={p}")
        self.p = p
        self.rng = np.random.default_rng(seed)

    def __call__(self, x):
        return self.batch(np.asarray(x)[None])[0]

    def batch(self, xs):
        xs = np.asarray(xs)
        if xs.ndim < 3:
            raise ValueError(f"RandomHorizontalFlip.batch expects (N, ..., H, W); "
                             f"got shape {xs.shape}")
        flip = self.rng.random(len(xs)) < self.p  # (N,)
        out = xs.copy()
        out[flip] = xs[flip][..., ::-1]
        return out

    def __repr__(self):
        return f"RandomHorizontalFlip(p={self.p})"


class RandomCrop(Transform):
    """Zero-pad the last two axes (H, W) by ``padding``, then crop a random ``size`` window.

    ``size`` is an int (square) or (height, width); each sample gets its own window,
    uniform over every position that fits in the padded image.
    """

    def __init__(self, size, padding=0, seed=None):
        size = (size, size) if isinstance(size, int) else tuple(size)
        if len(size) != 2 or not all(isinstance(s, int) and s >= 1 for s in size):
            raise ValueError(f"size must be a positive int or a pair of them; got size={size}")
        if not isinstance(padding, int) or padding < 0:
            raise ValueError(f"padding must be a non-negative int; got padding={padding}")
        self.size = size
        self.padding = padding
        self.rng = np.random.default_rng(seed)

    def __call__(self, x):
        return self.batch(np.asarray(x)[None])[0]

    def batch(self, xs):
        xs = np.asarray(xs)
        if xs.ndim < 3:
            raise ValueError(f"RandomCrop.batch expects (N, ..., H, W); got shape {xs.shape}")
        p = self.padding
        if p:
            pad = [(0, 0)] * (xs.ndim - 2) + [(p, p), (p, p)]
            xs = np.pad(xs, pad)  # (N, ..., H + 2p, W + 2p)
        h, w = self.size
        if h > xs.shape[-2] or w > xs.shape[-1]:
            raise ValueError(f"RandomCrop size={self.size} does not fit in the padded image of "
                             f"size {xs.shape[-2:]} (padding={p})")
        n = len(xs)
        top = self.rng.integers(0, xs.shape[-2] - h + 1, size=n)  # (N,)
        left = self.rng.integers(0, xs.shape[-1] - w + 1, size=n)  # (N,)
        windows = np.lib.stride_tricks.sliding_window_view(xs, (h, w), axis=(-2, -1))
        # windows: (N, ..., H+2p-h+1, W+2p-w+1, h, w). The three index arrays are separated by
        # the ellipsis, so NumPy puts their common axis first: (N, ..., h, w).
        return windows[np.arange(n), ..., top, left, :, :]

    def __repr__(self):
        return f"RandomCrop(size={self.size}, padding={self.padding})"
