"""Pictures of first-layer filters: one tile per filter, as in the seeds' `filter_show`.

Each filter is scaled on its own, symmetrically: zero is mid-gray, its largest positive weight
white and its most negative weight black (so an edge detector shows as a white/black pair).
Three-channel filters are drawn in colour, others show input channel 0 (the seeds draw
`filters[i, 0]`). `invert=True` gives the seeds' gray_r look (positive = dark).
"""

import numpy as np

from juanji.viz.images import caption, hstack, make_grid, upscale, write_image


def first_conv(model):
    """(name, weight array (OC, C, KH, KW)) of the first Conv2d in `model` (module order)."""
    from juanji.nn import Conv2d

    for name, module in model.named_modules():
        if isinstance(module, Conv2d):
            return name, np.asarray(module.weight.data)
    raise ValueError(f"{type(model).__name__} has no Conv2d layer whose filters could be drawn")


def as_weight(model_or_weight):
    """The (OC, C, KH, KW) array of a Module (its first Conv2d), Tensor or array."""
    from juanji.nn import Module
    from juanji.tensor import Tensor

    if isinstance(model_or_weight, Module):
        return first_conv(model_or_weight)[1]
    weight = model_or_weight.data if isinstance(model_or_weight, Tensor) else model_or_weight
    weight = np.asarray(weight)
    if weight.ndim == 2:
        weight = weight[None, None]
    elif weight.ndim == 3:
        weight = weight[:, None]
    if weight.ndim != 4:
        raise ValueError(f"filters must have shape (OC, C, KH, KW); got {weight.shape}")
    return weight


def filter_tiles(weight, channel=None, invert=False):
    """One uint8 tile per filter: (KH, KW) gray, or (KH, KW, 3) colour for 3-channel filters."""
    weight = as_weight(weight).astype(np.float64)
    colour = channel is None and weight.shape[1] == 3
    if not colour:
        c = 0 if channel is None else channel
        if not 0 <= c < weight.shape[1]:
            raise ValueError(f"channel must be in 0..{weight.shape[1] - 1}; got {channel}")
        weight = weight[:, c:c + 1]
    tiles = []
    for w in weight:  # (C, KH, KW)
        m = np.abs(w).max()
        t = 0.5 + 0.5 * w / m if m > 0 else np.full_like(w, 0.5)
        if invert:
            t = 1.0 - t
        t = np.round(t * 255).astype(np.uint8)
        tiles.append(t.transpose(1, 2, 0) if colour else t[0])
    return tiles


def filter_grid(weight, ncols=8, tile_px=40, pad=None, channel=None, invert=False):
    """All filters as one uint8 image; each tile enlarged to about `tile_px` pixels."""
    tiles = filter_tiles(weight, channel, invert)
    kh = max(tiles[0].shape[0], tiles[0].shape[1])
    factor = max(1, tile_px // kh)
    pad = max(2, factor // 3) if pad is None else pad
    return make_grid([upscale(t, factor) for t in tiles], ncols=ncols, pad=pad)


def save_filters(model_or_weight, path, ncols=8, tile_px=40, title=None, invert=False):
    """Write the filter grid of a model's first Conv2d (or of a weight array) to `path`.

    Called by the trainer after training; returns the Path written.
    """
    grid = filter_grid(model_or_weight, ncols, tile_px, invert=invert)
    if title:
        grid = caption(grid, title)
    return write_image(path, grid)


def save_filter_comparison(weights, labels, path, ncols=8, tile_px=40, invert=False):
    """Several filter grids side by side with a caption each (e.g. before / after training)."""
    if len(weights) != len(labels):
        raise ValueError(f"need one label per weight; got {len(weights)} weights and "
                         f"{len(labels)} labels")
    grids = [caption(filter_grid(w, ncols, tile_px, invert=invert), label)
             for w, label in zip(weights, labels)]
    return write_image(path, hstack(grids, gap=16))
