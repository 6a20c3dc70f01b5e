"""Animated conv arithmetic: the kernel sliding over a padded input, one frame per output.

Left: the input as the kernel sees it (padding in light gray, input cells blue), the kernel's
taps dark blue (spread apart by dilation). Right: the output, cells done so far green, the
current one dark green. A transposed conv is drawn the way it can be computed: a stride-1
conv over the input with stride - 1 zeros (orange) inserted between its cells and
dilation * (kernel - 1) - padding cells of padding around it (output_padding more at the
bottom and right).

Frames are drawn in palette mode with the fixed colours below, so a GIF keeps them exactly.
"""

from dataclasses import dataclass

import numpy as np

from juanji.arithmetic import conv_output_size, effective_kernel
from juanji.io.files import atomic_write_bytes

PALETTE = {
    "background": (255, 255, 255),
    "line": (90, 90, 90),
    "padding": (225, 225, 225),
    "input": (160, 200, 235),
    "zero": (255, 225, 180),
    "tap": (20, 90, 170),
    "todo": (245, 245, 245),
    "done": (150, 215, 160),
    "current": (20, 130, 60),
    "text": (0, 0, 0),
}
_INDEX = {name: i for i, name in enumerate(PALETTE)}
MAX_SIDE = 32


def _pair(value, name, minimum):
    items = (value, value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(items, (tuple, list)) or len(items) != 2 or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= minimum for v in items):
        raise ValueError(f"{name} must be an int >= {minimum} or a pair of them; got {value!r}")
    return tuple(items)


@dataclass
class ConvAnimation:
    """Geometry of the animation; `frames()` draws it. Cells are `cell` pixels square."""

    kinds: np.ndarray      # (VH, VW) names of the cells of the left grid
    out_shape: tuple       # (OH, OW)
    kernel: tuple
    step: tuple            # how far the window moves per output (stride; 1 if transposed)
    dilation: tuple
    title: str
    cell: int = 24
    margin: int = 10
    gap: int = 40
    header: int = 30

    @property
    def view_shape(self):
        return self.kinds.shape

    @property
    def frame_count(self):
        return self.out_shape[0] * self.out_shape[1]

    def taps(self, t):
        """Left-grid cells (row, col) under the kernel for output number t (row-major)."""
        i, j = divmod(t, self.out_shape[1])
        return [(i * self.step[0] + a * self.dilation[0], j * self.step[1] + b * self.dilation[1])
                for a in range(self.kernel[0]) for b in range(self.kernel[1])]

    def origin(self, grid):
        """Top-left pixel (x, y) of the 'input' or 'output' grid."""
        if grid == "input":
            return self.margin, self.margin + self.header
        return self.margin + self.kinds.shape[1] * self.cell + self.gap, self.margin + self.header

    def centre(self, grid, r, c):
        """Pixel (x, y) of the centre of cell (r, c) of a grid."""
        x, y = self.origin(grid)
        return x + c * self.cell + self.cell // 2, y + r * self.cell + self.cell // 2

    @property
    def size(self):
        from PIL import ImageFont

        vh, vw = self.kinds.shape
        oh, ow = self.out_shape
        text = ImageFont.load_default().getlength(self.title)
        width = 2 * self.margin + max((vw + ow) * self.cell + self.gap, int(text) + 1)
        height = 2 * self.margin + self.header + max(vh, oh) * self.cell
        return width, height

    def _square(self, draw, grid, r, c, colour):
        x, y = self.origin(grid)
        box = [x + c * self.cell, y + r * self.cell, x + (c + 1) * self.cell,
               y + (r + 1) * self.cell]
        draw.rectangle(box, fill=_INDEX[colour], outline=_INDEX["line"])

    def frame(self, t):
        """Frame t as a palette-mode PIL image."""
        from PIL import Image, ImageDraw

        img = Image.new("P", self.size, _INDEX["background"])
        img.putpalette([v for rgb in PALETTE.values() for v in rgb])
        draw = ImageDraw.Draw(img)
        i, j = divmod(t, self.out_shape[1])
        draw.text((self.margin, 4), self.title, fill=_INDEX["text"])
        draw.text((self.margin, 16), f"output ({i}, {j}) of {self.out_shape[0]}x"
                  f"{self.out_shape[1]}", fill=_INDEX["text"])
        for (r, c), kind in np.ndenumerate(self.kinds):
            self._square(draw, "input", r, c, kind)
        for r, c in self.taps(t):
            self._square(draw, "input", r, c, "tap")
        for n in range(self.frame_count):
            r, c = divmod(n, self.out_shape[1])
            self._square(draw, "output", r, c,
                         "done" if n < t else "current" if n == t else "todo")
        return img

    def frames(self):
        return [self.frame(t) for t in range(self.frame_count)]

    def save(self, path, duration_ms=600):
        """Write an animated GIF atomically; returns the path."""
        import io
        from pathlib import Path

        path = Path(path)
        if path.suffix.lower() != ".gif":
            raise ValueError(f"the animation is written as a GIF; the output name must end in "
                             f".gif; got {str(path)!r}")
        frames = self.frames()
        buffer = io.BytesIO()
        frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:],
                       duration=duration_ms, loop=0, optimize=False, disposal=1)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, buffer.getvalue())
        return path


def conv_animation(input_size=(5, 5), kernel_size=3, stride=1, padding=0, dilation=1,
                   transposed=False, output_padding=0):
    """The ConvAnimation of a conv (or transposed conv) on an (H, W) input."""
    h, w = _pair(input_size, "input_size", 1)
    if max(h, w) > MAX_SIDE:
        raise ValueError(f"input_size must be at most {MAX_SIDE}x{MAX_SIDE} for an animation; "
                         f"got {h}x{w}")
    k = _pair(kernel_size, "kernel_size", 1)
    s = _pair(stride, "stride", 1)
    p = _pair(padding, "padding", 0)
    d = _pair(dilation, "dilation", 1)
    op = _pair(output_padding, "output_padding", 0)
    spans = [effective_kernel(k[a], d[a]) for a in (0, 1)]
    name = "transposed conv" if transposed else "conv"
    title = (f"{name} {k[0]}x{k[1]}, stride {s[0]}x{s[1]}, padding {p[0]}x{p[1]}, "
             f"dilation {d[0]}x{d[1]}")
    if not transposed:
        if op != (0, 0):
            raise ValueError("output_padding applies to transposed convs only")
        for a, axis in enumerate(("height", "width")):
            if spans[a] > (h, w)[a] + 2 * p[a]:
                raise ValueError(
                    f"kernel {k[a]} (dilated span {spans[a]}) does not fit the input {axis} "
                    f"{(h, w)[a]} padded by {p[a]} on each side; use a smaller kernel or more "
                    f"padding")
        kinds = np.full((h + 2 * p[0], w + 2 * p[1]), "padding", dtype=object)
        kinds[p[0]:p[0] + h, p[1]:p[1] + w] = "input"
        out = tuple(conv_output_size((h, w)[a], k[a], s[a], p[a], d[a]) for a in (0, 1))
        return ConvAnimation(kinds, out, k, s, d, title + f": {h}x{w} -> {out[0]}x{out[1]}")

    for a, axis in enumerate(("height", "width")):
        if p[a] > spans[a] - 1:
            raise ValueError(f"padding {p[a]} is larger than dilation*(kernel-1) = "
                             f"{spans[a] - 1} ({axis}); such a transposed conv crops its "
                             f"output and cannot be drawn as a direct conv")
        if op[a] >= max(s[a], d[a]):
            raise ValueError(f"output_padding must be smaller than stride or dilation; got "
                             f"output_padding={op[a]}, stride={s[a]}, dilation={d[a]}")
    border = [spans[a] - 1 - p[a] for a in (0, 1)]
    inner = [((h, w)[a] - 1) * s[a] + 1 for a in (0, 1)]
    kinds = np.full((inner[0] + 2 * border[0] + op[0], inner[1] + 2 * border[1] + op[1]),
                    "padding", dtype=object)
    block = np.full(inner, "zero", dtype=object)
    block[::s[0], ::s[1]] = "input"
    kinds[border[0]:border[0] + inner[0], border[1]:border[1] + inner[1]] = block
    out = tuple(kinds.shape[a] - spans[a] + 1 for a in (0, 1))
    return ConvAnimation(kinds, out, k, (1, 1), d, title + f": {h}x{w} -> {out[0]}x{out[1]}")


def save_conv_animation(path, input_size=(5, 5), kernel_size=3, stride=1, padding=0,
                        dilation=1, transposed=False, output_padding=0, duration_ms=600):
    """Build and write the animation; returns (path, ConvAnimation)."""
    anim = conv_animation(input_size, kernel_size, stride, padding, dilation, transposed,
                          output_padding)
    return anim.save(path, duration_ms), anim
