"""Resize, Upsample, Pad, DepthToSpace and SpaceToDepth.

Resize computes ONNX's source coordinate of every output cell itself (half_pixel,
half_pixel_symmetric, pytorch_half_pixel, align_corners with ONNX's unrounded output width,
asymmetric, tf_half_pixel_for_nn, tf_crop_and_resize) and its nearest rounding
(round_prefer_floor/ceil, floor, ceil), then runs juanji's NearestResize / LinearResize /
FilterResize ops with those indices and weights, so it matches ONNX exactly and is
differentiable. Out-of-range taps clamp to the edge, as ONNX's reference does;
exclude_outside=1 gives them weight 0 instead (for linear without antialias that changes
nothing: both taps then read the edge cell). Cubic mode uses Keys' kernel with cubic_coeff_a
(default -0.75). antialias=1 widens the linear or cubic filter by 1/scale when downscaling
and divides the weights by their sum; nearest ignores it. pytorch_half_pixel maps a
length-1 output to source 0, as the spec and onnxruntime do (ONNX's reference uses -0.5,
which only cubic would notice). tf_crop_and_resize samples the region of interest `roi`
(starts then ends, as fractions of each axis; the output size still comes from scales or
sizes alone, as in onnxruntime and the reference) and writes extrapolation_value where a
source coordinate falls outside the input. Resize-10 and Upsample map asymmetrically and
round nearest down. Nearest resizes the last one or two axes, linear and cubic any trailing
axes.
"""

import numpy as np

from juanji.nn import functional as F
from juanji.onnx.handlers.base import Unsupported, as_float, attr_or_input, data, ints, is_array
from juanji.ops import resize as resize_ops
from juanji.ops.resize import cubic_kernel, filter_taps, triangle_kernel
from juanji.tensor import Tensor

_COORDS = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
           "asymmetric", "tf_half_pixel_for_nn", "tf_crop_and_resize")
_ROUNDING = {"round_prefer_floor": lambda x: np.ceil(x - 0.5),
             "round_prefer_ceil": lambda x: np.floor(x + 0.5),
             "floor": np.floor, "ceil": np.ceil}


def source_coordinates(coords, out, size, scale, roi=(0.0, 1.0)):
    """x_original of output cells 0..out-1 along an axis of `size` cells, scale out/in;
    roi (start, end) is the region tf_crop_and_resize samples, as fractions of the axis."""
    t = np.arange(out, dtype=np.float64)
    width = scale * size  # ONNX's unrounded output width
    if coords == "tf_crop_and_resize":
        start, end = roi
        if width == 1:
            return np.full(out, (start + end) / 2 * (size - 1))
        return start * (size - 1) + t * (end - start) * (size - 1) / (width - 1)
    if coords == "align_corners":
        return np.zeros(out) if width == 1 else t * (size - 1) / (width - 1)
    if coords == "asymmetric":
        return t / scale
    if coords == "pytorch_half_pixel":
        return np.zeros(out) if width == 1 else (t + 0.5) / scale - 0.5
    if coords == "tf_half_pixel_for_nn":
        return (t + 0.5) / scale
    if coords == "half_pixel_symmetric":
        offset = size / 2 * (1 - out / width)
        return offset + (t + 0.5) / scale - 0.5
    return (t + 0.5) / scale - 0.5


def _geometry(x, scales, sizes, axes, policy):
    """(out sizes, scales) over all axes of x, from ONNX's scales or sizes."""
    rank = x.ndim
    axes = list(range(rank)) if axes is None else [a % rank for a in axes]
    if sizes is not None:
        out = list(x.shape)
        for a, s in zip(axes, sizes):
            out[a] = int(s)
        scale = [o / n for o, n in zip(out, x.shape)]
        if policy != "stretch":
            pick = min if policy == "not_larger" else max
            s = pick(scale[a] for a in axes)
            scale = [s if a in axes else 1.0 for a in range(rank)]
            out = [int(s * x.shape[a] + 0.5) if a in axes else x.shape[a] for a in range(rank)]
        return out, scale
    scale = [1.0] * rank
    for a, s in zip(axes, scales):
        scale[a] = float(s)
    # floor(scale * size) with the product in float32, the scales' type, as onnxruntime
    # computes it: PyTorch exports interpolate(size=...) before opset 11 as scales
    # out / in computed at run time, and 11 * float32(23 / 11) is 23 in float32 (the size
    # asked for) but 22.999999 in float64
    out = [int(np.floor(np.float32(s) * np.float32(n))) for s, n in zip(scale, x.shape)]
    return out, scale


def _region(rank, roi, axes):
    """One (start, end) per axis from ONNX's roi input: the starts, then the ends, of `axes`
    (every axis when None); the other axes are whole, (0, 1)."""
    values = [] if roi is None else [float(v) for v in data(roi).reshape(-1)]
    axes = list(range(rank)) if axes is None else [a % rank for a in axes]
    if len(values) != 2 * len(axes):
        raise ValueError(f"tf_crop_and_resize needs an roi of {2 * len(axes)} values (the "
                         f"starts, then the ends, of axes {axes}); got {len(values)}")
    region = [(0.0, 1.0)] * rank
    for i, a in enumerate(axes):
        region[a] = (values[i], values[i + len(axes)])
    return region


def run_resize(x, out, scale, mode, coords, rounding, cubic_a=-0.75, antialias=False,
               exclude_outside=False, roi=None, extrapolation=0.0):
    """Resize x to `out` (every axis) with ONNX's coordinate and rounding rules; roi: one
    (start, end) per axis for tf_crop_and_resize."""
    x = as_float(x)
    roi = [(0.0, 1.0)] * x.ndim if roi is None else roi
    changed = [a for a in range(x.ndim)
               if out[a] != x.shape[a] or scale[a] != 1.0 or roi[a] != (0.0, 1.0)]
    if not changed:
        return x
    block = range(min(changed), x.ndim)
    if mode == "nearest" and len(block) > 2:
        raise ValueError(f"nearest Resize runs on the last one or two axes; this one resizes "
                         f"axes {changed} of shape {tuple(x.shape)}")
    per_axis = [(source_coordinates(coords, out[a], x.shape[a], scale[a], roi[a]), x.shape[a])
                for a in block]
    y = _interpolate(x, scale, block, per_axis, mode, rounding, cubic_a, antialias,
                     exclude_outside)
    if coords != "tf_crop_and_resize":
        return y
    # cells whose source lies outside the input get extrapolation_value (no gradient)
    inside = np.ones((), dtype=bool)
    for src, n in per_axis:
        inside = inside[..., None] & ((src >= 0) & (src <= n - 1))  # (O1, ..., Ok)
    if inside.all():
        return y
    fill = np.where(inside, 0.0, extrapolation).astype(y.dtype)
    return y * Tensor(inside.astype(y.dtype)) + Tensor(fill)


def _interpolate(x, scale, block, per_axis, mode, rounding, cubic_a, antialias,
                 exclude_outside):
    """x resampled at the source coordinates of `per_axis`, one (src, size) per axis of
    `block` (the trailing axes from the first one that changes)."""
    if mode == "nearest":
        index = [np.clip(_ROUNDING[rounding](src), 0, n - 1).astype(np.int64)
                 for src, n in per_axis]
        return resize_ops.NearestResize.apply(x, index=index)
    if mode == "cubic" or antialias:
        kernel, support = (lambda d: cubic_kernel(d, cubic_a), 2) if mode == "cubic" else \
            (triangle_kernel, 1)
        taps = [None if np.array_equal(src, np.arange(n)) else
                filter_taps(src, n, kernel, support, scale[a] if antialias else None,
                            exclude_outside)
                for a, (src, n) in zip(block, per_axis)]
        return resize_ops.FilterResize.apply(x, taps=taps)
    taps = []
    for src, n in per_axis:
        low = np.floor(src)
        w1 = src - low
        i0 = np.clip(low, 0, n - 1).astype(np.int64)
        i1 = np.clip(low + 1, 0, n - 1).astype(np.int64)
        taps.append((i0, i1, 1.0 - w1, w1))
    return resize_ops.LinearResize.apply(x, taps=taps)


def resize(node, ctx):
    mode = node.attr("mode", "nearest")
    legacy = node.opset < 11
    coords = "asymmetric" if legacy else node.attr("coordinate_transformation_mode",
                                                   "half_pixel")
    rounding = "floor" if legacy else node.attr("nearest_mode", "round_prefer_floor")
    policy = node.attr("keep_aspect_ratio_policy", "stretch")
    if mode not in ("nearest", "linear", "cubic"):
        raise Unsupported(f"mode={mode!r}: juanji resizes with nearest, linear and cubic")
    antialias = bool(node.attr("antialias", 0)) and mode != "nearest"
    exclude_outside = bool(node.attr("exclude_outside", 0))
    cubic_a = float(node.attr("cubic_coeff_a", -0.75))
    extrapolation = float(node.attr("extrapolation_value", 0.0))
    if coords not in _COORDS:
        raise Unsupported(f"coordinate_transformation_mode={coords!r}")
    if rounding not in _ROUNDING:
        raise Unsupported(f"nearest_mode={rounding!r}")

    def step(x, *rest):
        if legacy:
            scales, sizes = rest[0], None
        else:
            rest = list(rest) + [None] * (3 - len(rest))
            scales, sizes = rest[1], rest[2]
        scales = None if scales is None or data(scales).size == 0 else \
            [float(s) for s in data(scales).reshape(-1)]
        sizes = None if sizes is None or data(sizes).size == 0 else ints(sizes)
        if scales is None and sizes is None:
            raise ValueError("Resize needs scales or sizes")
        out, scale = _geometry(x, scales, sizes, node.attr("axes"), policy)
        roi = _region(x.ndim, rest[0], node.attr("axes")) \
            if coords == "tf_crop_and_resize" else None
        return run_resize(x, out, scale, mode, coords, rounding, cubic_a, antialias,
                          exclude_outside, roi, extrapolation)

    return step


def upsample(node, ctx):
    mode = node.attr("mode", "nearest")
    if mode not in ("nearest", "linear", "bilinear"):
        raise Unsupported(f"mode={mode!r}")
    mode = "linear" if mode == "bilinear" else mode

    def step(x, scales=None):
        scales = node.attr("scales") if scales is None else data(scales).reshape(-1)
        out, scale = _geometry(x, [float(s) for s in scales], None, None, "stretch")
        return run_resize(x, out, scale, mode, "asymmetric", "floor")

    return step


_PAD_MODES = {"constant": "constant", "reflect": "reflect", "edge": "replicate",
              "wrap": "circular"}


def pad(node, ctx):
    mode = node.attr("mode", "constant")
    if mode not in _PAD_MODES:
        raise Unsupported(f"mode={mode!r}")

    def step(x, pads=None, value=None, axes=None):
        pads = attr_or_input(node, [None, pads], 1, "pads")  # an attribute before opset 11
        fill = node.attr("value", 0.0) if node.opset < 11 else \
            (0.0 if value is None else data(value).reshape(-1)[0].item())
        axes = list(range(x.ndim)) if axes is None else [a % x.ndim for a in ints(axes)]
        begin_end = {a: (0, 0) for a in range(x.ndim)}
        for i, a in enumerate(axes):
            begin_end[a] = (pads[i], pads[i + len(axes)])
        if is_array(x):
            if mode == "constant":
                return np.pad(x, [begin_end[a] for a in range(x.ndim)], constant_values=fill)
            return np.pad(x, [begin_end[a] for a in range(x.ndim)], mode=mode)
        padded = [a for a in range(x.ndim) if begin_end[a] != (0, 0)]
        if not padded:
            return x
        trailing = tuple(begin_end[a] for a in range(min(padded), x.ndim))
        if mode == "reflect" and any(max(b, e) >= x.shape[a] for a, (b, e) in
                                     enumerate(trailing, start=min(padded))):
            raise ValueError(f"reflect pads {trailing} must be smaller than the padded axes "
                             f"of shape {tuple(x.shape)}")
        return resize_ops.Pad.apply(x, pads=trailing, mode=_PAD_MODES[mode], value=float(fill))

    return step


def depth_to_space(node, ctx):
    """CRD mode is PyTorch's pixel_shuffle; DCR takes the blocks outermost in the channels."""
    b, crd = node.attr("blocksize"), node.attr("mode", "DCR") == "CRD"

    def step(x):
        x = as_float(x)
        if crd:
            return F.pixel_shuffle(x, b)
        n, c, h, w = x.shape
        y = x.reshape(n, b, b, c // (b * b), h, w).permute(0, 3, 4, 1, 5, 2)
        return y.reshape(n, c // (b * b), h * b, w * b)

    return step


def space_to_depth(node, ctx):
    """The inverse of DepthToSpace in the same mode (CRD: pixel_unshuffle)."""
    b, crd = node.attr("blocksize"), node.attr("mode", "DCR") == "CRD"

    def step(x):
        x = as_float(x)
        if crd:
            return F.pixel_unshuffle(x, b)
        n, c, h, w = x.shape
        y = x.reshape(n, c, h // b, b, w // b, b).permute(0, 3, 5, 1, 2, 4)
        return y.reshape(n, c * b * b, h // b, w // b)

    return step


HANDLERS = {
    "Resize": resize,
    "Upsample": upsample,
    "Pad": pad,
    "DepthToSpace": depth_to_space,
    "SpaceToDepth": space_to_depth,
}
