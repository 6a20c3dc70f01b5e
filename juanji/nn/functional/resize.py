"""Padding and resampling functions: pad, interpolate, pixel_shuffle, pixel_unshuffle.

PyTorch's names, argument order, defaults and checks. `pad` takes PyTorch's pad tuple, last
axis first: (left, right) or (left, right, top, bottom), ...
"""

import math
import numbers

import numpy as np

from juanji.nn.args import check_input, one_of, single
from juanji.ops import resize
from juanji.ops.memory import check_fits
from juanji.tensor import as_tensor

__all__ = ["interpolate", "pad", "pixel_shuffle", "pixel_unshuffle"]

PAD_MODES = ("constant", "reflect", "replicate", "circular")


def pad(input, pad, mode="constant", value=None):
    """Pad the trailing axes; `pad` = (last_before, last_after, prev_before, prev_after, ...).

    mode 'constant' fills with `value` (default 0) and may pad any number of axes; negative
    amounts crop. 'reflect' (mirror without repeating the edge), 'replicate' (repeat the edge)
    and 'circular' (wrap) pad the last 1, 2 or 3 axes of an input with one or two more axes,
    as in PyTorch; reflect needs pads < the axis size, circular <= the axis size after any
    cropping (negative pads crop first).
    """
    input = as_tensor(input)
    one_of(mode, "mode", PAD_MODES)
    amounts = tuple(pad) if isinstance(pad, (tuple, list)) else None
    if amounts is None or len(amounts) % 2 or not amounts or \
            not all(isinstance(p, numbers.Integral) and not isinstance(p, bool) for p in amounts):
        raise ValueError(f"pad must be a non-empty sequence of an even number of ints; got {pad!r}")
    k = len(amounts) // 2
    if k > input.ndim:
        raise ValueError(f"pad {amounts} pads {k} axes but the input has {input.ndim}")
    if mode != "constant" and (k > 3 or input.ndim not in (k + 1, k + 2)):
        raise ValueError(
            f"mode={mode!r} pads the last 1, 2 or 3 axes of an input with 1 or 2 more axes; got "
            f"pad of length {len(amounts)} for an input of shape {tuple(input.shape)}"
        )
    if mode == "constant" and value is not None and not isinstance(value, numbers.Real):
        raise ValueError(f"value must be a number; got {value!r}")
    if mode != "constant" and value not in (None, 0):
        raise ValueError(f"value is only used with mode='constant'; got mode={mode!r}, "
                         f"value={value!r}")
    pads = tuple((int(amounts[2 * i]), int(amounts[2 * i + 1])) for i in reversed(range(k)))
    sizes = input.shape[input.ndim - k:]
    for size, (before, after) in zip(sizes, pads):
        if size + before + after < 0:
            raise ValueError(f"pad {amounts} crops more than the input size {size}")
        if mode == "reflect" and (before >= size or after >= size):
            raise ValueError(f"reflect padding must be smaller than the padded axis; got pad "
                             f"{(before, after)} for an axis of size {size}")
        kept = size - max(0, -before) - max(0, -after)
        if mode == "circular" and (kept < 1 or before > kept or after > kept):
            raise ValueError(f"circular padding must be at most the (cropped) axis size; got "
                             f"pad {(before, after)} for an axis of size {size}")
        if mode in ("replicate", "circular") and size == 0:
            raise ValueError(f"mode={mode!r} cannot pad an empty axis")
    out_shape = input.shape[:input.ndim - k] + tuple(
        n + before + after for n, (before, after) in zip(sizes, pads))
    check_fits(out_shape, input.dtype, f"pad={amounts}")
    return resize.Pad.apply(input, pads=pads, mode=mode,
                            value=0.0 if value is None else float(value))


_MODES = {"nearest": (1, 2), "nearest-exact": (1, 2), "linear": (1,), "bilinear": (2,),
          "bicubic": (2,)}


def _per_axis(value, dims, name, kind):
    items = tuple(value) if isinstance(value, (tuple, list)) else (value,) * dims
    if len(items) != dims:
        raise ValueError(f"{name} must have {dims} entries for a {dims}-D resize; got {value!r}")
    return tuple(kind(v) for v in items)


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None, antialias=False):
    """Resize (N, C, L) or (N, C, H, W) to `size`, or by `scale_factor` (output floor(in * s)).

    Modes: 'nearest' (source floor(dst * in/out), PyTorch's legacy rule), 'nearest-exact'
    (floor((dst + 0.5) * in/out)), 'linear' (3-D input), 'bilinear' and 'bicubic' (4-D; Keys'
    kernel with a = -0.75, edge cells repeated, values may overshoot the input's range) with
    align_corners. When scale_factor is given (and recompute_scale_factor is not True) the
    coordinate mapping uses 1 / scale_factor, not in/out, exactly as PyTorch does.
    """
    input = as_tensor(input)
    one_of(mode, "mode", tuple(_MODES) + ("area", "trilinear"))
    if mode not in _MODES:
        raise ValueError(f"mode={mode!r} is not implemented; juanji supports {list(_MODES)}")
    check_input(input, "interpolate", (3, 4), "(N, C, L) or (N, C, H, W)")
    dims = input.ndim - 2
    if dims not in _MODES[mode]:
        raise ValueError(f"mode={mode!r} needs a {_MODES[mode][0] + 2}-D input; got shape "
                         f"{tuple(input.shape)}")
    if align_corners is not None and mode.startswith("nearest"):
        raise ValueError("align_corners option can only be set with the interpolating modes "
                         f"linear | bilinear | bicubic; got mode={mode!r}")
    if antialias:
        raise ValueError("antialias=True is not supported")
    if (size is None) == (scale_factor is None):
        raise ValueError("interpolate needs exactly one of size or scale_factor; got "
                         f"size={size!r}, scale_factor={scale_factor!r}")
    in_sizes = input.shape[2:]
    scales = None
    if size is not None:
        if recompute_scale_factor:
            raise ValueError("recompute_scale_factor is not meaningful with an explicit size")
        out_sizes = _per_axis(size, dims, "size", lambda v: single(v, "size"))
    else:
        scales = _per_axis(scale_factor, dims, "scale_factor", _positive)
        out_sizes = tuple(math.floor(n * s) for n, s in zip(in_sizes, scales))
        if any(o < 1 for o in out_sizes):
            raise ValueError(f"scale_factor {scale_factor!r} gives an empty output "
                             f"{out_sizes} for input size {tuple(in_sizes)}")
        if recompute_scale_factor:
            scales = None
    what = f"size={size!r}" if size is not None else f"scale_factor={scale_factor!r}"
    check_fits(input.shape[:2] + tuple(out_sizes), input.dtype, what)
    scales = scales or (None,) * dims
    if mode.startswith("nearest"):
        index = [resize.nearest_index(n, o, s, exact=mode == "nearest-exact")
                 for n, o, s in zip(in_sizes, out_sizes, scales)]
        return resize.NearestResize.apply(input, index=index)
    dtype = input.dtype.type
    if not issubclass(dtype, np.floating):
        raise ValueError(f"mode={mode!r} needs a floating-point input; got dtype {input.dtype}")
    if mode == "bicubic":
        taps = [resize.filter_taps(resize.cubic_source(n, o, s, bool(align_corners)), n,
                                   resize.cubic_kernel, 2)
                for n, o, s in zip(in_sizes, out_sizes, scales)]
        return resize.FilterResize.apply(input, taps=taps)
    taps = [resize.linear_index(n, o, s, bool(align_corners), dtype)
            for n, o, s in zip(in_sizes, out_sizes, scales)]
    return resize.LinearResize.apply(input, taps=taps)


def _positive(value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise ValueError(f"scale_factor must be a positive number; got {value!r}")
    if value == math.inf:
        raise ValueError(f"scale_factor must be finite; got {value!r}")
    return float(value)


def pixel_shuffle(input, upscale_factor):
    """(*, C * r * r, H, W) -> (*, C, H * r, W * r): channel c*r*r + i*r + j goes to
    position (h*r + i, w*r + j) of channel c (sub-pixel convolution)."""
    input = as_tensor(input)
    r = single(upscale_factor, "upscale_factor")
    if input.ndim < 3:
        raise ValueError(f"pixel_shuffle expects a (*, C, H, W) input; got shape "
                         f"{tuple(input.shape)}")
    *lead, c, h, w = input.shape
    if c % (r * r):
        raise ValueError(f"pixel_shuffle needs channels divisible by upscale_factor**2 = "
                         f"{r * r}; got {c} channels")
    k = len(lead)
    x = input.reshape(*lead, c // (r * r), r, r, h, w)
    x = x.permute(*range(k), k, k + 3, k + 1, k + 4, k + 2)  # (*, C, H, r, W, r)
    return x.reshape(*lead, c // (r * r), h * r, w * r)


def pixel_unshuffle(input, downscale_factor):
    """(*, C, H * r, W * r) -> (*, C * r * r, H, W), the inverse of pixel_shuffle."""
    input = as_tensor(input)
    r = single(downscale_factor, "downscale_factor")
    if input.ndim < 3:
        raise ValueError(f"pixel_unshuffle expects a (*, C, H, W) input; got shape "
                         f"{tuple(input.shape)}")
    *lead, c, h, w = input.shape
    if h % r or w % r:
        raise ValueError(f"pixel_unshuffle needs height and width divisible by "
                         f"downscale_factor={r}; got {h}x{w}")
    k = len(lead)
    x = input.reshape(*lead, c, h // r, r, w // r, r)
    x = x.permute(*range(k), k, k + 2, k + 4, k + 1, k + 3)  # (*, C, r, r, H, W)
    return x.reshape(*lead, c * r * r, h // r, w // r)
