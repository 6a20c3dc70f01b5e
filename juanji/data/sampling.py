"""Resampling kernels for the batch transforms: boxes resized, images rotated; pure NumPy.

Images are (N, C, H, W). Coordinates follow PyTorch's ``align_corners=False``: output pixel o of
an axis resampled from a window [start, start + length) to ``out`` pixels reads source
position ``start + (o + 0.5) * length / out - 0.5`` (bilinear, clamped to the window) or
``start + floor(o * length / out)`` (nearest, as ``F.interpolate(mode="nearest")``).
No antialiasing when shrinking (``antialias=False`` in torchvision's terms).
"""

import numpy as np

MODES = ("nearest", "bilinear")


def window_indices(start, length, out, mode):
    """Source indices along one axis for each sample's window.

    start, length (N,) ints -> (i0, i1, w1), each (N, out): the value at o is
    ``x[i0] * (1 - w1) + x[i1] * w1``; for "nearest" i1 and w1 are None.
    """
    start = np.asarray(start, dtype=np.int64)[:, None]  # (N, 1)
    length = np.asarray(length, dtype=np.int64)[:, None]  # (N, 1)
    o = np.arange(out)  # (out,)
    if mode == "nearest":
        src = np.minimum(np.floor(o * (length / out)).astype(np.int64), length - 1)
        return start + src, None, None
    src = np.clip((o + 0.5) * (length / out) - 0.5, 0, length - 1)  # (N, out)
    i0 = np.floor(src).astype(np.int64)
    i1 = np.minimum(i0 + 1, length - 1)
    return start + i0, start + i1, (src - i0).astype(np.float32)


def resample_boxes(images, top, left, height, width, size, mode="bilinear"):
    """Each sample's box [top, top+height) x [left, left+width) resampled to ``size``.

    images (N, C, H, W); top, left, height, width (N,) ints, boxes inside the image;
    size (OH, OW) -> (N, C, OH, OW) of the input's dtype (bilinear needs floating images).
    """
    y0, y1, wy = window_indices(top, height, size[0], mode)  # (N, OH) each
    x0, x1, wx = window_indices(left, width, size[1], mode)  # (N, OW) each
    rows = np.take_along_axis(images, y0[:, None, :, None], axis=2)  # (N, C, OH, W)
    if mode == "bilinear":
        wy = wy[:, None, :, None]  # (N, 1, OH, 1)
        below = np.take_along_axis(images, y1[:, None, :, None], axis=2)
        rows = rows * (1 - wy) + below * wy
    out = np.take_along_axis(rows, x0[:, None, None, :], axis=3)  # (N, C, OH, OW)
    if mode == "bilinear":
        wx = wx[:, None, None, :]  # (N, 1, 1, OW)
        right = np.take_along_axis(rows, x1[:, None, None, :], axis=3)
        out = out * (1 - wx) + right * wx
    return out.astype(images.dtype, copy=False)


def rotate(images, angles, mode="nearest", fill=0.0):
    """Rotate each sample counter-clockwise by ``angles`` (N,) degrees about the image centre.

    images (N, C, H, W) -> same shape. Output pixel (y, x) reads the source point
    (cy + dx sin a + dy cos a, cx + dx cos a - dy sin a), where (dy, dx) is its offset from the
    centre ((H - 1) / 2, (W - 1) / 2), by nearest (rounding half up) or bilinear sampling;
    source points (bilinear: corner pixels) outside the image read ``fill``.
    """
    n, c, h, w = images.shape
    a = np.deg2rad(np.asarray(angles, dtype=np.float64))[:, None, None]  # (N, 1, 1)
    dy = np.arange(h)[None, :, None] - (h - 1) / 2  # (1, H, 1)
    dx = np.arange(w)[None, None, :] - (w - 1) / 2  # (1, 1, W)
    sy = (h - 1) / 2 + dx * np.sin(a) + dy * np.cos(a)  # (N, H, W)
    sx = (w - 1) / 2 + dx * np.cos(a) - dy * np.sin(a)  # (N, H, W)
    batch = np.arange(n)[:, None, None]  # (N, 1, 1)

    def read(iy, ix):
        """images at integer points (N, H, W), fill outside -> (N, C, H, W)."""
        inside = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)  # (N, H, W)
        values = images[batch, :, iy.clip(0, h - 1), ix.clip(0, w - 1)]  # (N, H, W, C)
        values = np.moveaxis(values, -1, 1)  # (N, C, H, W)
        return np.where(inside[:, None], values, np.asarray(fill, images.dtype))

    if mode == "nearest":
        return read(np.floor(sy + 0.5).astype(np.int64), np.floor(sx + 0.5).astype(np.int64))
    y0, x0 = np.floor(sy).astype(np.int64), np.floor(sx).astype(np.int64)
    wy = (sy - y0).astype(np.float32)[:, None]  # (N, 1, H, W)
    wx = (sx - x0).astype(np.float32)[:, None]
    top = read(y0, x0) * (1 - wx) + read(y0, x0 + 1) * wx
    bottom = read(y0 + 1, x0) * (1 - wx) + read(y0 + 1, x0 + 1) * wx
    return (top * (1 - wy) + bottom * wy).astype(images.dtype, copy=False)
