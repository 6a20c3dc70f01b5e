"""Resize, Upsample, Pad, DepthToSpace and SpaceToDepth.

Resize computes ONNX's source coordinate of every output cell itself (half_pixel,
half_pixel_symmetric, pytorch_half_pixel, align_corners with ONNX's unrounded output width,
asymmetric, tf_half_pixel_for_nn) and its nearest rounding (round_prefer_floor/ceil, floor,
ceil), then runs juanji's NearestResize / LinearResize ops with those indices and weights,
so it matches ONNX exactly and is differentiable. Out-of-range taps clamp to the edge, as
ONNX's reference does. Resize-10 and Upsample map asymmetrically and round nearest down.
Cubic mode, antialias and tf_crop_and_resize are refused at load time. Nearest resizes the
last one or two axes, linear any trailing axes.
"""

import numpy as np

from juanji.nn import functional as F
from juanji.onnx.handlers.base import Unsupported, as_float, attr_or_input, data, ints, is_array
from juanji.ops import resize as resize_ops

_COORDS = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
           "asymmetric", "tf_half_pixel_for_nn")
_ROUNDING = {"round_prefer_floor": lambda x: np.ceil(x - 0.5),
             "round_prefer_ceil": lambda x: np.floor(x + 0.5),
             "floor": np.floor, "ceil": np.ceil}


def source_coordinates(coords, out, size, scale):
    """x_original of output cells 0..out-1 along an axis of `size` cells, scale out/in."""
    t = np.arange(out, dtype=np.float64)
    width = scale * size  # ONNX's unrounded output width
    if coords == "align_corners":
        return np.zeros(out) if width == 1 else t * (size - 1) / (width - 1)
    if coords == "asymmetric":
        return t / scale
    if coords == "pytorch_half_pixel":
        return np.full(out, -0.5) if width == 1 else (t + 0.5) / scale - 0.5
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
    out = [int(np.floor(s * n)) for s, n in zip(scale, x.shape)]
    return out, scale


def run_resize(x, out, scale, mode, coords, rounding):
    """Resize x to `out` (every axis) with ONNX's coordinate and rounding rules."""
    x = as_float(x)
    changed = [a for a in range(x.ndim) if out[a] != x.shape[a] or scale[a] != 1.0]
    if not changed:
        return x
    block = range(min(changed), x.ndim)
    if mode == "nearest" and len(block) > 2:
        raise ValueError(f"nearest Resize runs on the last one or two axes; this one resizes "
                         f"axes {changed} of shape {tuple(x.shape)}")
    per_axis = [(source_coordinates(coords, out[a], x.shape[a], scale[a]), x.shape[a])
                for a in block]
    if mode == "nearest":
        index = [np.clip(_ROUNDING[rounding](src), 0, n - 1).astype(np.int64)
                 for src, n in per_axis]
        return resize_ops.NearestResize.apply(x, index=index)
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
    if mode not in ("nearest", "linear"):
        raise Unsupported(f"mode={mode!r}: juanji resizes with nearest and linear")
    if node.attr("antialias", 0):
        raise Unsupported("antialias=1")
    if coords not in _COORDS:
        raise Unsupported(f"coordinate_transformation_mode={coords!r}")
    if rounding not in _ROUNDING:
        raise Unsupported(f"nearest_mode={rounding!r}")
    if mode == "linear" and node.attr("exclude_outside", 0):
        raise Unsupported("exclude_outside=1 with linear mode")

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
        return run_resize(x, out, scale, mode, coords, rounding)

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
