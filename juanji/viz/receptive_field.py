"""Draw a layer's receptive field on an input image: what one output unit 'sees'.

The image is dimmed outside the field of the chosen unit (by default the unit at the centre
of the layer's output), the field is outlined in red (clipped to the image; the part that
falls on padding is not drawn) and the unit's centre is marked in yellow.
"""

from math import ceil, floor

import numpy as np

from juanji.viz.images import as_rgb, to_uint8, upscale

OUTLINE = (255, 0, 0)
CENTRE = (255, 220, 0)
DIM = 0.35


def clipped_box(rf, unit, image_shape):
    """The field of `unit` as whole input pixels (top, left, bottom, right), inclusive,
    clipped to an image of (H, W); None if it misses the image entirely."""
    top, left, bottom, right = rf.box(*unit)
    h, w = image_shape
    box = (max(0, floor(top)), max(0, floor(left)), min(h - 1, ceil(bottom)),
           min(w - 1, ceil(right)))
    if box[0] > box[2] or box[1] > box[3]:
        return None
    return box


def draw_receptive_field(image, rf, out_shape, unit=None, min_px=256):
    """RGB uint8 picture of `rf` (a local ReceptiveField) for one unit of an (OH, OW) output.

    Returns (picture, unit, box) with box the clipped field in input pixels.
    """
    if not rf.is_local:
        why = ("it covers the whole input" if rf.kind == "global"
               else "a layer whose geometry is not known comes before it")
        raise ValueError(f"cannot draw a receptive field that is {rf.kind} ({why})")
    oh, ow = out_shape
    unit = (oh // 2, ow // 2) if unit is None else tuple(unit)
    if not (0 <= unit[0] < oh and 0 <= unit[1] < ow):
        raise ValueError(f"unit must lie in the layer's {oh}x{ow} output; got {unit}")
    pic = as_rgb(to_uint8(image)).astype(np.float64)
    h, w = pic.shape[:2]
    box = clipped_box(rf, unit, (h, w))
    factor = max(1, ceil(min_px / max(h, w)))
    dimmed = pic * DIM
    if box is not None:
        top, left, bottom, right = box
        dimmed[top:bottom + 1, left:right + 1] = pic[top:bottom + 1, left:right + 1]
    out = upscale(np.round(dimmed).astype(np.uint8), factor).copy()
    if box is not None:
        top, left = box[0] * factor, box[1] * factor
        bottom, right = box[2] * factor + factor - 1, box[3] * factor + factor - 1
        thick = max(2, factor // 2, max(out.shape[:2]) // 150)
        out[top:top + thick, left:right + 1] = OUTLINE
        out[bottom - thick + 1:bottom + 1, left:right + 1] = OUTLINE
        out[top:bottom + 1, left:left + thick] = OUTLINE
        out[top:bottom + 1, right - thick + 1:right + 1] = OUTLINE
    cy, cx = rf.centre(*unit)
    if 0 <= cy <= h - 1 and 0 <= cx <= w - 1:
        y, x = int(round(float(cy) * factor + (factor - 1) / 2)), \
            int(round(float(cx) * factor + (factor - 1) / 2))
        arm = max(2, factor, max(out.shape[:2]) // 40)
        width = max(1, arm // 4)
        out[max(0, y - width):y + width + 1, max(0, x - arm):x + arm + 1] = CENTRE
        out[max(0, y - arm):y + arm + 1, max(0, x - width):x + width + 1] = CENTRE
    return out, unit, box
