"""Image transforms on NumPy arrays, one sample at a time or a whole batch at once.

Every transform has ``t(x)`` for one sample and ``t.batch(images, masks=None)`` for a batch
stacked on a new leading axis N. ``batch`` is vectorized, so a DataLoader can transform 60000
images without a Python loop per image; ``Transform.batch`` falls back to a per-sample loop for
transforms that define only ``__call__``. With ``masks`` (N, H, W) class indices,
``batch`` returns ``(images, masks)``: geometric transforms move a mask with its image (masks
always by nearest sampling, padded with 0), the others leave masks untouched.

Layout: ``ToFloat`` turns images into float32 CHW (batches NCHW) in [0, 1]; the augmentations
expect that, so put them after ``ToFloat`` and before ``Normalize``:
``Compose([ToFloat(), RandomCrop(28, padding=2), RandomHorizontalFlip(), Normalize(m, s)])``.
Flips and ``RandomCrop`` treat the last two axes as H and W (any leading axes); the resampling
transforms need (N, C, H, W).

Names and semantics follow torchvision (``size`` is (H, W) or an int, angles in degrees
counter-clockwise, scales of area). Random transforms draw from ``generator`` when given, else
from ``seed`` (a private generator), else from juanji's global generator
(``juanji.random.default_generator()``, looked up at each call) - the one the trainer saves in
every checkpoint, so a resumed run draws the same augmentations. A batch draws all its random
numbers at once, so the per-sample and batch paths consume the generator differently.

``AUGMENTATIONS`` names presets for the command line; ``build_augmentation("crop,flip", size)``
composes them.
"""

import numbers

import numpy as np

from juanji.data import sampling
from juanji.random import default_generator


class Transform:
    """Base class: ``__call__(x)`` maps one sample; ``batch(images, masks=None)`` a batch."""

    def __call__(self, x):
        raise NotImplementedError(f"{type(self).__name__} must define __call__")

    def batch(self, xs, masks=None):
        """Apply the transform to each sample of xs (N, ...) and stack the results.

        Transforms that define only ``__call__`` cannot move masks; given masks is an error.
        """
        if masks is not None:
            raise TypeError(f"{type(self).__name__} does not transform masks; use it on "
                            f"images alone")
        return np.stack([self(x) for x in xs])

    def __repr__(self):
        return f"{type(self).__name__}()"


def _is_hwc(shape):
    """True when a 3-D image shape reads as (H, W, C): last dim 1 or 3, first dim not."""
    return shape[-1] in (1, 3) and shape[0] not in (1, 3)


def _with(images, masks):
    """What ``batch`` returns: the images alone, or (images, masks) when masks were given."""
    return images if masks is None else (images, masks)


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

    def batch(self, xs, masks=None):
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
            return _with(np.divide(xs, np.float32(255), dtype=np.float32), masks)
        if np.issubdtype(xs.dtype, np.floating):
            return _with(xs.astype(np.float32), masks)
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

    def batch(self, xs, masks=None):
        return _with(self(xs), masks)  # mean and std broadcast over the leading N axis

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

    def batch(self, xs, masks=None):
        for t in self.transforms:
            batch = getattr(t, "batch", None)
            if masks is not None:
                if not callable(batch):
                    raise TypeError(f"{type(t).__name__} has no batch(images, masks) method, "
                                    f"so it cannot transform masks")
                xs, masks = batch(xs, masks)
            else:
                xs = batch(xs) if callable(batch) else np.stack([t(x) for x in xs])
        return _with(xs, masks)

    def __repr__(self):
        return f"Compose([{', '.join(repr(t) for t in self.transforms)}])"


# ---- random transforms ------------------------------------------------------------------------


def _pair(name, value, low=1):
    """An int (square) or a pair of ints >= low -> (h, w); ValueError naming ``name``."""
    pair = (value, value) if isinstance(value, numbers.Integral) else value
    try:
        pair = tuple(pair)
    except TypeError:
        pair = ()
    if len(pair) != 2 or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool)
                                 and v >= low for v in pair):
        shown = pair if isinstance(value, numbers.Integral) else value
        raise ValueError(f"{name} must be a positive int or a pair of them; got {name}={shown}")
    return int(pair[0]), int(pair[1])


def _range(name, value, low=-np.inf, high=np.inf):
    """A (min, max) pair of numbers with low <= min <= max <= high."""
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a (min, max) pair of numbers; got "
                         f"{name}={value!r}") from None
    if not low <= lo <= hi <= high:
        raise ValueError(f"{name} must be (min, max) with {low} <= min <= max <= {high}; got "
                         f"{name}={value!r}")
    return lo, hi


def _probability(p):
    if not isinstance(p, numbers.Real) or not 0.0 <= p <= 1.0:
        raise ValueError(f"p must lie in [0, 1]; got p={p}")
    return float(p)


def _check_batch(name, images, masks, ndim=None):
    """images as an array (N, ..., H, W) (exactly ``ndim`` dims when given); masks (N, H, W)
    matching them, as an array, or None."""
    images = np.asarray(images)
    if images.ndim < 3 or (ndim is not None and images.ndim != ndim):
        expected = "(N, C, H, W)" if ndim == 4 else "(N, ..., H, W)"
        raise ValueError(f"{name}.batch expects images {expected}; got shape {images.shape}")
    if masks is not None:
        masks = np.asarray(masks)
        if masks.shape != (len(images),) + images.shape[-2:]:
            raise ValueError(f"{name}.batch expects masks (N, H, W) = "
                             f"{(len(images),) + images.shape[-2:]} matching the images "
                             f"{images.shape}; got masks of shape {masks.shape}")
    return images, masks


def _check_float(name, images):
    if not np.issubdtype(images.dtype, np.floating):
        raise TypeError(f"{name} expects floating images in [0, 1]; got dtype {images.dtype} "
                        f"(apply ToFloat first)")


class RandomTransform(Transform):
    """A transform that draws random numbers: from ``generator``, else a generator seeded
    with ``seed``, else juanji's global generator (looked up at each call)."""

    def __init__(self, seed=None, generator=None):
        if seed is not None and generator is not None:
            raise ValueError("give seed or generator, not both")
        if generator is not None and not isinstance(generator, np.random.Generator):
            raise TypeError(f"generator must be a numpy.random.Generator or None; got "
                            f"{type(generator).__name__}")
        self.generator = np.random.default_rng(seed) if seed is not None else generator

    @property
    def rng(self):
        """The generator this call draws from."""
        return self.generator if self.generator is not None else default_generator()

    def __call__(self, x):
        return self.batch(np.asarray(x)[None])[0]


class RandomHorizontalFlip(RandomTransform):
    """Mirror the last axis (W) with probability ``p``, independently per sample."""

    axis = -1

    def __init__(self, p=0.5, seed=None, *, generator=None):
        super().__init__(seed, generator)
        self.p = _probability(p)

    def batch(self, xs, masks=None):
        xs, masks = _check_batch(type(self).__name__, xs, masks)
        flip = self.rng.random(len(xs)) < self.p  # (N,)
        xs = np.where(flip.reshape((-1,) + (1,) * (xs.ndim - 1)), np.flip(xs, self.axis), xs)
        if masks is not None:
            masks = np.where(flip[:, None, None], np.flip(masks, self.axis), masks)
        return _with(xs, masks)

    def __repr__(self):
        return f"{type(self).__name__}(p={self.p})"


class RandomVerticalFlip(RandomHorizontalFlip):
    """Mirror the second-last axis (H) with probability ``p``, independently per sample."""

    axis = -2


def _padding(padding):
    """torchvision's padding: int (all sides), (left/right, top/bottom) or (left, top, right,
    bottom) -> (left, top, right, bottom)."""
    if isinstance(padding, numbers.Integral) and not isinstance(padding, bool):
        if padding < 0:
            raise ValueError(f"padding must be a non-negative int; got padding={padding}")
        return (int(padding),) * 4
    values = tuple(padding) if isinstance(padding, (tuple, list)) else ()
    if len(values) not in (2, 4) or not all(isinstance(v, numbers.Integral) and v >= 0
                                            for v in values):
        raise ValueError(f"padding must be a non-negative int or a sequence of 2 or 4 of them; "
                         f"got padding={padding!r}")
    return tuple(int(v) for v in (values * 2 if len(values) == 2 else values))


PADDING_MODES = ("constant", "edge", "reflect", "symmetric")


def _pad(xs, pad, mode, fill=0):
    """Pad the last two axes of xs by pad = (left, top, right, bottom)."""
    left, top, right, bottom = pad
    widths = [(0, 0)] * (xs.ndim - 2) + [(top, bottom), (left, right)]
    if mode == "constant":
        return np.pad(xs, widths, constant_values=fill)
    return np.pad(xs, widths, mode=mode)


class RandomCrop(RandomTransform):
    """Pad the last two axes (H, W) by ``padding``, then crop a random ``size`` window.

    ``size`` is an int (square) or (height, width); ``padding`` an int, (left/right,
    top/bottom) or (left, top, right, bottom); ``padding_mode`` "constant" (with ``fill``),
    "edge", "reflect" or "symmetric"; ``pad_if_needed`` pads an image smaller than ``size``
    up to it. Each sample gets its own window, uniform over every position that fits in the
    padded image. Masks get the same window (padded with 0 in "constant" mode).
    """

    def __init__(self, size, padding=0, pad_if_needed=False, fill=0, padding_mode="constant",
                 seed=None, *, generator=None):
        super().__init__(seed, generator)
        self.size = _pair("size", size)
        self.padding = padding
        self.pad = _padding(0 if padding is None else padding)
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {', '.join(PADDING_MODES)}; got "
                             f"padding_mode={padding_mode!r}")
        self.padding_mode, self.fill, self.pad_if_needed = padding_mode, fill, bool(pad_if_needed)

    def batch(self, xs, masks=None):
        xs, masks = _check_batch("RandomCrop", xs, masks)
        h, w = self.size
        pad = list(self.pad)
        if self.pad_if_needed:  # as torchvision: the shortfall on both sides
            short_h = max(0, h - (xs.shape[-2] + pad[1] + pad[3]))
            short_w = max(0, w - (xs.shape[-1] + pad[0] + pad[2]))
            pad = [pad[0] + short_w, pad[1] + short_h, pad[2] + short_w, pad[3] + short_h]
        if any(pad):
            xs = _pad(xs, pad, self.padding_mode, self.fill)  # (N, ..., H + pads, W + pads)
            if masks is not None:
                masks = _pad(masks, pad, self.padding_mode)
        if h > xs.shape[-2] or w > xs.shape[-1]:
            raise ValueError(f"RandomCrop size={self.size} does not fit in the padded image of "
                             f"size {xs.shape[-2:]} (padding={self.padding})")
        n = len(xs)
        top = self.rng.integers(0, xs.shape[-2] - h + 1, size=n)  # (N,)
        left = self.rng.integers(0, xs.shape[-1] - w + 1, size=n)  # (N,)
        return _with(_crop(xs, top, left, h, w), None if masks is None else
                     _crop(masks, top, left, h, w))

    def __repr__(self):
        return (f"RandomCrop(size={self.size}, padding={self.padding}, "
                f"padding_mode={self.padding_mode!r})")


def _crop(xs, top, left, h, w):
    """Window (h, w) at (top[n], left[n]) of each sample of xs (N, ..., H, W)."""
    windows = np.lib.stride_tricks.sliding_window_view(xs, (h, w), axis=(-2, -1))
    # windows: (N, ..., H-h+1, W-w+1, h, w). The three index arrays are separated by the
    # ellipsis, so NumPy puts their common axis first: (N, ..., h, w).
    return windows[np.arange(len(xs)), ..., top, left, :, :]


def _check_mode(name, value):
    if value not in sampling.MODES:
        raise ValueError(f"{name} must be one of {', '.join(sampling.MODES)}; got "
                         f"{name}={value!r}")
    return value


class RandomRotation(RandomTransform):
    """Rotate each sample by an angle drawn uniformly from ``degrees`` (counter-clockwise).

    ``degrees`` is a number d (the range (-d, d)) or (min, max). ``interpolation`` "nearest"
    (torchvision's default) or "bilinear"; the corners uncovered read ``fill``. The image keeps
    its size (torchvision's expand=False) and turns about its centre. Masks: nearest, fill 0.
    """

    def __init__(self, degrees, interpolation="nearest", fill=0.0, seed=None, *,
                 generator=None):
        super().__init__(seed, generator)
        if isinstance(degrees, numbers.Real):
            if degrees < 0:
                raise ValueError(f"degrees must be non-negative when a single number; got "
                                 f"degrees={degrees}")
            degrees = (-degrees, degrees)
        self.degrees = _range("degrees", degrees)
        self.interpolation = _check_mode("interpolation", interpolation)
        self.fill = fill

    def batch(self, xs, masks=None):
        xs, masks = _check_batch("RandomRotation", xs, masks, ndim=4)
        angles = self.rng.uniform(*self.degrees, size=len(xs))  # (N,)
        xs = sampling.rotate(xs, angles, self.interpolation, self.fill)
        if masks is not None:
            masks = sampling.rotate(masks[:, None], angles, "nearest", 0)[:, 0]
        return _with(xs, masks)

    def __repr__(self):
        return f"RandomRotation(degrees={self.degrees}, interpolation={self.interpolation!r})"


class RandomResizedCrop(RandomTransform):
    """Crop a random box of random area and aspect ratio, then resize it to ``size``.

    torchvision's draw: up to 10 tries of area = H*W*U(scale), aspect = exp(U(log ratio)),
    w = round(sqrt(area * aspect)), h = round(sqrt(area / aspect)), kept when the box fits;
    then a uniform position. A sample with no fitting try gets the central crop with the
    aspect ratio clamped to ``ratio``. Images bilinear (default) or nearest; masks nearest.
    """

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3),
                 interpolation="bilinear", seed=None, *, generator=None):
        super().__init__(seed, generator)
        self.size = _pair("size", size)
        self.scale = _range("scale", scale, 0.0, 1.0)
        self.ratio = _range("ratio", ratio, 0.0)
        if self.scale[1] == 0 or self.ratio[0] == 0:
            raise ValueError(f"scale and ratio must have a positive max and min; got "
                             f"scale={scale}, ratio={ratio}")
        self.interpolation = _check_mode("interpolation", interpolation)

    def boxes(self, n, height, width):
        """(top, left, h, w), each (n,) ints: the boxes drawn for n images of height x width."""
        rng = self.rng
        area = height * width * rng.uniform(*self.scale, size=(n, 10))  # (n, tries)
        aspect = np.exp(rng.uniform(*np.log(self.ratio), size=(n, 10)))
        w = np.rint(np.sqrt(area * aspect)).astype(np.int64)
        h = np.rint(np.sqrt(area / aspect)).astype(np.int64)
        fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)  # (n, tries)
        first = fits.argmax(axis=1)  # the first try that fits (0 when none does)
        found = fits.any(axis=1)  # (n,)
        # the fallback: a central crop with the aspect ratio clamped to the range
        fh, fw = height, width
        if width / height < self.ratio[0]:
            fh = int(round(width / self.ratio[0]))
        elif width / height > self.ratio[1]:
            fw = int(round(height * self.ratio[1]))
        h = np.where(found, h[np.arange(n), first], fh)  # (n,)
        w = np.where(found, w[np.arange(n), first], fw)
        top = np.where(found, rng.integers(0, height - h + 1), (height - fh) // 2)
        left = np.where(found, rng.integers(0, width - w + 1), (width - fw) // 2)
        return top, left, h, w

    def batch(self, xs, masks=None):
        xs, masks = _check_batch("RandomResizedCrop", xs, masks, ndim=4)
        _check_float("RandomResizedCrop", xs)
        top, left, h, w = self.boxes(len(xs), *xs.shape[-2:])
        xs = sampling.resample_boxes(xs, top, left, h, w, self.size, self.interpolation)
        if masks is not None:
            masks = sampling.resample_boxes(masks[:, None], top, left, h, w, self.size,
                                            "nearest")[:, 0]
        return _with(xs, masks)

    def __repr__(self):
        return (f"RandomResizedCrop(size={self.size}, scale={self.scale}, ratio="
                f"{tuple(round(r, 4) for r in self.ratio)})")


def _jitter_range(name, value):
    """torchvision's factor range: a number v -> (max(0, 1 - v), 1 + v), or (min, max) >= 0."""
    if isinstance(value, numbers.Real):
        if value < 0:
            raise ValueError(f"{name} must be non-negative; got {name}={value}")
        return max(0.0, 1.0 - value), 1.0 + value
    return _range(name, value, 0.0)


def _gray_mean(xs):
    """Mean luminance per sample of float (N, C, H, W), C 1 or 3 -> (N, 1, 1, 1)."""
    if xs.shape[1] == 3:
        weights = np.array([0.2989, 0.587, 0.114], np.float32)[:, None, None]  # torchvision's
        xs = (xs * weights).sum(axis=1, keepdims=True)
    return xs.mean(axis=(1, 2, 3), keepdims=True)


class ColorJitter(RandomTransform):
    """Random brightness and contrast, in a random order per sample (float [0, 1] images).

    ``brightness`` b: multiply by a factor from U(max(0, 1-b), 1+b) (or a (min, max) range);
    ``contrast`` c: blend with the image's mean luminance, f * x + (1 - f) * mean, f from the
    same kind of range. Results are clipped to [0, 1]. Masks are left as they are.
    """

    def __init__(self, brightness=0, contrast=0, seed=None, *, generator=None):
        super().__init__(seed, generator)
        self.brightness = _jitter_range("brightness", brightness)
        self.contrast = _jitter_range("contrast", contrast)

    def batch(self, xs, masks=None):
        xs, masks = _check_batch("ColorJitter", xs, masks, ndim=4)
        _check_float("ColorJitter", xs)
        if xs.shape[1] not in (1, 3):
            raise ValueError(f"ColorJitter expects 1 or 3 channels; got shape {xs.shape}")
        n, dt = len(xs), xs.dtype
        shape = (n, 1, 1, 1)
        b = self.rng.uniform(*self.brightness, size=n).astype(dt).reshape(shape)
        c = self.rng.uniform(*self.contrast, size=n).astype(dt).reshape(shape)
        contrast_first = (self.rng.random(n) < 0.5).reshape(shape)

        def bright(x):
            return np.clip(x * b, 0, 1)

        def contrast(x):
            return np.clip(c * x + (1 - c) * _gray_mean(x), 0, 1)

        out = np.where(contrast_first, bright(contrast(xs)), contrast(bright(xs)))
        return _with(out.astype(dt, copy=False), masks)

    def __repr__(self):
        return f"ColorJitter(brightness={self.brightness}, contrast={self.contrast})"


class RandomErasing(RandomTransform):
    """With probability ``p``, set a random rectangle of each image to ``value``.

    torchvision's draw: up to 10 tries of area = H*W*U(scale), aspect = exp(U(log ratio)),
    h = round(sqrt(area * aspect)), w = round(sqrt(area / aspect)), kept when h < H and
    w < W, at a uniform position; a sample with no fitting try is left as it is. ``value`` is
    a number, one number per channel, or "random" (standard normal noise). Masks untouched.
    """

    def __init__(self, p=0.5, scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0, seed=None, *,
                 generator=None):
        super().__init__(seed, generator)
        self.p = _probability(p)
        self.scale = _range("scale", scale, 0.0, 1.0)
        self.ratio = _range("ratio", ratio, 0.0)
        if self.ratio[0] == 0:
            raise ValueError(f"ratio must be positive; got ratio={ratio}")
        if isinstance(value, str) and value != "random":
            raise ValueError(f"value must be a number, a sequence of numbers or 'random'; got "
                             f"value={value!r}")
        self.value = value

    def batch(self, xs, masks=None):
        xs, masks = _check_batch("RandomErasing", xs, masks, ndim=4)
        _check_float("RandomErasing", xs)
        n, _, height, width = xs.shape
        rng = self.rng
        erase = rng.random(n) < self.p  # (N,)
        area = height * width * rng.uniform(*self.scale, size=(n, 10))  # (N, tries)
        aspect = np.exp(rng.uniform(*np.log(self.ratio), size=(n, 10)))
        h = np.rint(np.sqrt(area * aspect)).astype(np.int64)
        w = np.rint(np.sqrt(area / aspect)).astype(np.int64)
        fits = (h < height) & (w < width)
        first = fits.argmax(axis=1)
        h, w = h[np.arange(n), first], w[np.arange(n), first]  # (N,)
        erase &= fits.any(axis=1)
        top = rng.integers(0, height - h + 1)
        left = rng.integers(0, width - w + 1)
        rows = np.arange(height)[None, :, None]  # (1, H, 1)
        cols = np.arange(width)[None, None, :]  # (1, 1, W)
        box = ((rows >= top[:, None, None]) & (rows < (top + h)[:, None, None])
               & (cols >= left[:, None, None]) & (cols < (left + w)[:, None, None])
               & erase[:, None, None])  # (N, H, W)
        if isinstance(self.value, str):
            value = rng.standard_normal(xs.shape).astype(xs.dtype)
        else:
            value = np.asarray(self.value, xs.dtype).reshape(-1, 1, 1)  # (1 or C, 1, 1)
        return _with(np.where(box[:, None], value, xs).astype(xs.dtype, copy=False), masks)

    def __repr__(self):
        return f"RandomErasing(p={self.p}, scale={self.scale}, ratio={self.ratio})"


# ---- deterministic geometry -------------------------------------------------------------------


class Resize(Transform):
    """Resize (N, C, H, W) to ``size``: (h, w), or an int that the shorter side becomes
    (the longer one scaled to keep the aspect ratio, truncated, as torchvision).
    Images bilinear (default) or nearest, without antialiasing; masks nearest."""

    def __init__(self, size, interpolation="bilinear"):
        if isinstance(size, numbers.Integral):
            _pair("size", size)
        self.size = size if isinstance(size, numbers.Integral) else _pair("size", size)
        self.interpolation = _check_mode("interpolation", interpolation)

    def output_size(self, height, width):
        if not isinstance(self.size, numbers.Integral):
            return self.size
        if height <= width:
            return self.size, int(self.size * width / height)
        return int(self.size * height / width), self.size

    def __call__(self, x):
        return self.batch(np.asarray(x)[None])[0]

    def batch(self, xs, masks=None):
        xs, masks = _check_batch("Resize", xs, masks, ndim=4)
        n, _, height, width = xs.shape
        size = self.output_size(height, width)
        if self.interpolation == "bilinear":
            _check_float("Resize", xs)
        zeros, full = np.zeros(n, np.int64), np.ones(n, np.int64)
        args = (zeros, zeros, full * height, full * width, size)
        xs = sampling.resample_boxes(xs, *args, self.interpolation)
        if masks is not None:
            masks = sampling.resample_boxes(masks[:, None], *args, "nearest")[:, 0]
        return _with(xs, masks)

    def __repr__(self):
        return f"Resize(size={self.size}, interpolation={self.interpolation!r})"


class CenterCrop(Transform):
    """The central ``size`` window of the last two axes (top = round((H - h) / 2), as
    torchvision); an image smaller than ``size`` is first zero-padded around to it."""

    def __init__(self, size):
        self.size = _pair("size", size)

    def __call__(self, x):
        return self.batch(np.asarray(x)[None])[0]

    def batch(self, xs, masks=None):
        xs, masks = _check_batch("CenterCrop", xs, masks)
        h, w = self.size
        height, width = xs.shape[-2:]
        if h > height or w > width:
            dh, dw = max(h - height, 0), max(w - width, 0)
            pad = (dw // 2, dh // 2, (dw + 1) // 2, (dh + 1) // 2)
            xs = _pad(xs, pad, "constant")
            masks = None if masks is None else _pad(masks, pad, "constant")
            height, width = xs.shape[-2:]
        top, left = int(round((height - h) / 2)), int(round((width - w) / 2))
        xs = xs[..., top:top + h, left:left + w]
        return _with(xs, None if masks is None else masks[:, top:top + h, left:left + w])

    def __repr__(self):
        return f"CenterCrop(size={self.size})"


# ---- presets for the command line -------------------------------------------------------------


def _crop_padding(size):
    """The "crop" preset's padding: a tenth of the shorter side, at least 1 (28 -> 2, 32 -> 3)."""
    return max(1, min(size) // 10)


# name -> factory(image_size (H, W), generator) of a batch transform on float [0, 1] NCHW images
AUGMENTATIONS = {
    "crop": lambda size, g: RandomCrop(size, padding=_crop_padding(size), generator=g),
    "flip": lambda size, g: RandomHorizontalFlip(generator=g),
    "vflip": lambda size, g: RandomVerticalFlip(generator=g),
    "rotate": lambda size, g: RandomRotation(15, generator=g),
    "resized-crop": lambda size, g: RandomResizedCrop(size, scale=(0.5, 1.0), generator=g),
    "jitter": lambda size, g: ColorJitter(brightness=0.2, contrast=0.2, generator=g),
    "erase": lambda size, g: RandomErasing(generator=g),
}


def build_augmentation(spec, image_size, generator=None):
    """Compose the presets named in ``spec`` ("crop,flip"; "" or "none" for none) for images
    of ``image_size`` (an int or (H, W)); they draw from ``generator`` (default juanji's global
    generator). Place the result between ToFloat and Normalize."""
    size = _pair("image_size", image_size)
    names = [] if spec in (None, "", "none") else [name.strip() for name in spec.split(",")]
    unknown = [name for name in names if name not in AUGMENTATIONS]
    if unknown:
        raise ValueError(f"unknown augmentation {unknown[0]!r} in {spec!r}; choose from "
                         f"{', '.join(AUGMENTATIONS)} (comma-separated) or 'none'")
    return Compose([AUGMENTATIONS[name](size, generator) for name in names])
