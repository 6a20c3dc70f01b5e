"""Feature maps: what each conv layer outputs for one image, drawn channel by channel.

Each map is stretched on its own from its min (black) to its max (white); a constant map is
drawn mid-gray.
"""

from collections import OrderedDict
from pathlib import Path

import numpy as np

from juanji.viz.images import (
    caption,
    make_grid,
    read_image,
    resize,
    to_uint8,
    upscale,
    vstack,
    write_image,
)


def prepare_input(image, input_size):
    """A path or (H, W[, C]) array -> (C, H, W) float32 in [0, 1] at the model's size.

    Gray images are repeated to 3 channels and colour ones averaged to 1 as needed.
    """
    c, h, w = input_size
    if c not in (1, 3):
        raise ValueError(f"can only feed images to models with 1 or 3 input channels; "
                         f"got {c}")
    if isinstance(image, (str, Path)):
        image = read_image(image, "L" if c == 1 else "RGB")
    a = np.asarray(image, dtype=np.float32)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):
        a = a.transpose(1, 2, 0)  # accept (C, H, W) too
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim == 3 and c == 1:
        a = a.mean(axis=-1)
    if a.ndim == 2 and c == 3:
        a = np.stack([a] * 3, axis=-1)
    if a.shape[:2] != (h, w):
        a = resize(a, (h, w))
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def feature_maps(model, x, layers=None):
    """{layer name: (C, H, W) output} for one (C, H, W) input, in call order.

    layers: names from model.named_modules(); default every Conv2d. Runs in eval mode under
    no_grad; unknown names raise KeyError listing the conv layers.
    """
    import juanji
    from juanji.nn import Conv2d

    named = dict(model.named_modules())
    if layers is None:
        wanted = [n for n, m in named.items() if isinstance(m, Conv2d)]
    else:
        wanted = list(layers)
        missing = [n for n in wanted if n not in named or n == ""]
        if missing:
            convs = [n for n, m in named.items() if isinstance(m, Conv2d)]
            raise KeyError(f"no layer named {missing[0]!r} in {type(model).__name__}; its conv "
                           f"layers are: {', '.join(convs) or 'none'}")
    if not wanted:
        raise ValueError(f"{type(model).__name__} has no Conv2d layer to show")
    maps, handles, counts = OrderedDict(), [], {}

    def hook_for(name):
        def hook(module, inputs, output):
            counts[name] = counts.get(name, 0) + 1
            key = name if counts[name] == 1 else f"{name}#{counts[name]}"
            out = output[0] if isinstance(output, (tuple, list)) else output
            if out.ndim == 4:
                maps[key] = np.array(out.data[0])
        return hook

    x = np.asarray(x, dtype=np.float32)
    x = x[None] if x.ndim == 3 else x
    modes = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        for name in wanted:
            handles.append(named[name].register_forward_hook(hook_for(name)))
        with juanji.no_grad():
            model(juanji.tensor(x))
    finally:
        for handle in handles:
            handle.remove()
        for module, mode in modes:
            module.training = mode
    return maps


def feature_grid(maps, max_channels=16, ncols=8, tile_px=56, image=None):
    """All layers' maps as one uint8 RGB image, one captioned block per layer."""
    blocks = []
    if image is not None:
        a = np.asarray(image)
        a = a[0] if a.ndim == 3 and a.shape[0] == 1 else a
        a = a.transpose(1, 2, 0) if a.ndim == 3 and a.shape[0] == 3 else a
        factor = max(1, 2 * tile_px // max(a.shape[:2]))
        blocks.append(caption(upscale(to_uint8(a), factor), "input"))
    for name, fmap in maps.items():
        c, h, w = fmap.shape
        shown = fmap[:max_channels]
        factor = max(1, tile_px // max(h, w))
        tiles = [upscale(to_uint8(m, "minmax"), factor) for m in shown]
        title = f"{name}: {c} maps of {h}x{w}" + (f" (first {len(shown)})" if c > len(shown)
                                                   else "")
        blocks.append(caption(make_grid(tiles, ncols=ncols), title))
    return vstack(blocks, gap=6)


def save_feature_maps(model, image, path, input_size, layers=None, max_channels=16):
    """Run `image` (a path or array) through `model` and write the maps of `layers`.

    Returns (Path written, {layer: (C, H, W) array}).
    """
    x = prepare_input(image, input_size)
    maps = feature_maps(model, x, layers)
    return write_image(path, feature_grid(maps, max_channels, image=x)), maps
