"""Images in and out (Pillow), grids of tiles, captions, and two synthetic test pictures.

Arrays are (H, W) grayscale or (H, W, 3) RGB; floats are in [0, 1], uint8 in [0, 255].
Every write is atomic (temporary file + os.replace).
"""

import io
import warnings
from pathlib import Path

import numpy as np

from juanji.io.files import atomic_write_bytes

WHITE = (255, 255, 255)
# read_image's default limit on width * height: Pillow's default PIL.Image.MAX_IMAGE_PIXELS
# (a quarter GiB of RGB pixels), past which a small file may be a decompression bomb.
MAX_IMAGE_PIXELS = 89_478_485


class ImageTooLargeError(ValueError):
    """An image file with more pixels than read_image's limit (a possible decompression bomb)."""


def _pil():
    from PIL import Image

    return Image


def read_image(path, mode=None, max_pixels=MAX_IMAGE_PIXELS):
    """Read an image file as float32 in [0, 1]: (H, W) for mode 'L', (H, W, 3) for 'RGB'.

    mode None keeps a grayscale file grayscale and turns anything else into RGB (alpha is
    dropped). An image of more than ``max_pixels`` pixels (None: no limit of juanji's) is
    refused before it is decoded; Pillow's own limit, twice ``PIL.Image.MAX_IMAGE_PIXELS``,
    still applies. Raises FileNotFoundError, IsADirectoryError, ImageTooLargeError or ValueError
    naming the file.
    """
    Image = _pil()
    path = Path(path)
    if mode not in (None, "L", "RGB"):
        raise ValueError(f"mode must be None, 'L' or 'RGB'; got {mode!r}")
    if path.is_dir():
        raise IsADirectoryError(f"image path is a folder: {path}")
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    too_large = f"image {path} is too large: "
    try:
        with warnings.catch_warnings():
            # juanji checks the size itself, below, with its own limit and message
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                if max_pixels is not None and width * height > max_pixels:
                    raise ImageTooLargeError(f"{too_large}{width}x{height} = {width * height} "
                                             f"pixels, over the limit of {max_pixels} pixels")
                img.load()
                if mode is None:
                    mode = "L" if img.mode in ("1", "L", "I", "I;16", "F") else "RGB"
                img = img.convert(mode)
    except Image.DecompressionBombError:  # Pillow's own limit, reached before ours
        pillow_limit = 2 * Image.MAX_IMAGE_PIXELS
        limit = pillow_limit if max_pixels is None else min(max_pixels, pillow_limit)
        raise ImageTooLargeError(f"{too_large}more than {pillow_limit} pixels, over the "
                                 f"limit of {limit} pixels") from None
    except ImageTooLargeError:
        raise
    except (OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"cannot read image {path}: {exc}") from None
    return np.asarray(img, dtype=np.float32) / 255.0


def to_uint8(array, scale="clip"):
    """Float or uint8 array -> uint8.

    scale 'clip' takes floats as [0, 1]; 'minmax' stretches min..max to 0..255; 'abs' maps
    |x| from 0..max to 0..255 (for signed filter responses); 'symmetric' maps [-m, m] to
    [0, 255] with zero at mid-gray (m = max |x|).
    """
    a = np.asarray(array)
    if a.dtype == np.uint8 and scale == "clip":
        return a
    a = a.astype(np.float64)
    if scale == "clip":
        a = np.clip(a, 0.0, 1.0)
    elif scale == "minmax":
        lo, hi = a.min(), a.max()
        a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    elif scale == "abs":
        m = np.abs(a).max()
        a = np.abs(a) / m if m > 0 else np.zeros_like(a)
    elif scale == "symmetric":
        m = np.abs(a).max()
        a = 0.5 + 0.5 * a / m if m > 0 else np.full_like(a, 0.5)
    else:
        raise ValueError(f"scale must be 'clip', 'minmax', 'abs' or 'symmetric'; got {scale!r}")
    return np.round(a * 255).astype(np.uint8)


def image_format(path):
    """Pillow's format name for the file's suffix (ValueError for an unknown suffix)."""
    Image = _pil()
    suffix = Path(path).suffix.lower()
    formats = Image.registered_extensions()
    if suffix not in formats:
        raise ValueError(f"cannot tell the image format from {str(path)!r}; end the name "
                         f"in .png, .jpg, .gif, .bmp or .webp")
    return formats[suffix]


def encode_image(array_or_image, fmt, **options):
    """Bytes of an array (see to_uint8: floats are clipped to [0, 1]) or a PIL image."""
    Image = _pil()
    img = array_or_image
    if not isinstance(img, Image.Image):
        img = Image.fromarray(to_uint8(array_or_image))
    if fmt == "JPEG" and img.mode not in ("L", "RGB"):
        img = img.convert("RGB")
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def write_image(path, array_or_image, **options):
    """Write an image atomically; the format comes from the suffix. Returns the Path."""
    path = Path(path)
    data = encode_image(array_or_image, image_format(path), **options)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data)
    return path


def upscale(array, factor):
    """Nearest-neighbour enlargement by an integer factor (keeps pixels crisp)."""
    if factor == 1:
        return array
    return np.repeat(np.repeat(array, factor, axis=0), factor, axis=1)


def as_rgb(array):
    """(H, W) or (H, W, 1) uint8 -> (H, W, 3)."""
    a = np.asarray(array)
    if a.ndim == 2:
        return np.stack([a] * 3, axis=-1)
    if a.shape[-1] == 1:
        return np.concatenate([a] * 3, axis=-1)
    return a


def make_grid(tiles, ncols=8, pad=2, pad_value=255):
    """Equal-size uint8 tiles ((H, W) or (H, W, 3)) laid out row by row with `pad` pixels
    between and around them. Returns one uint8 array."""
    tiles = [np.asarray(t) for t in tiles]
    if not tiles:
        raise ValueError("make_grid needs at least one tile")
    color = any(t.ndim == 3 for t in tiles)
    if color:
        tiles = [as_rgb(t) for t in tiles]
    h, w = tiles[0].shape[:2]
    if any(t.shape[:2] != (h, w) for t in tiles):
        raise ValueError("make_grid needs tiles of one size")
    ncols = max(1, min(ncols, len(tiles)))
    nrows = -(-len(tiles) // ncols)
    shape = (nrows * (h + pad) + pad, ncols * (w + pad) + pad) + ((3,) if color else ())
    grid = np.full(shape, pad_value, dtype=np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, ncols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        grid[y:y + h, x:x + w] = tile
    return grid


def caption(array, text, height=16, background=255, color=0):
    """The image with a line of text above it (Pillow's default font)."""
    Image = _pil()
    from PIL import ImageDraw

    a = as_rgb(to_uint8(array))
    out = Image.new("RGB", (a.shape[1], a.shape[0] + height), (background,) * 3)
    out.paste(Image.fromarray(a), (0, height))
    ImageDraw.Draw(out).text((2, 2), text, fill=(color,) * 3)
    return np.asarray(out)


def hstack(images, gap=8, background=255):
    """Images side by side, top-aligned, `gap` pixels apart (all converted to RGB)."""
    images = [as_rgb(to_uint8(a)) for a in images]
    height = max(a.shape[0] for a in images)
    width = sum(a.shape[1] for a in images) + gap * (len(images) - 1)
    out = np.full((height, width, 3), background, dtype=np.uint8)
    x = 0
    for a in images:
        out[:a.shape[0], x:x + a.shape[1]] = a
        x += a.shape[1] + gap
    return out


def vstack(images, gap=8, background=255):
    """Images one above the other, left-aligned (all converted to RGB)."""
    images = [as_rgb(to_uint8(a)) for a in images]
    width = max(a.shape[1] for a in images)
    height = sum(a.shape[0] for a in images) + gap * (len(images) - 1)
    out = np.full((height, width, 3), background, dtype=np.uint8)
    y = 0
    for a in images:
        out[y:y + a.shape[0], :a.shape[1]] = a
        y += a.shape[0] + gap
    return out


def resize(array, size, resample="bilinear"):
    """Resize a float [0, 1] or uint8 image to (H, W) with Pillow; returns float32 [0, 1]."""
    Image = _pil()
    img = Image.fromarray(to_uint8(array))
    method = {"bilinear": Image.BILINEAR, "nearest": Image.NEAREST}[resample]
    img = img.resize((size[1], size[0]), method)
    return np.asarray(img, dtype=np.float32) / 255.0


# ---- synthetic pictures (nothing downloaded) -------------------------------------------------


def half_white(height=50, width=50, boundary=30):
    """The seeds' binary picture: 1.0 left of column `boundary`, 0.0 from it on."""
    img = np.ones((height, width), dtype=np.float32)
    img[:, boundary:] = 0.0
    return img


def synthetic_photo(height=96, width=128, seed=0):
    """A photo-like RGB scene in [0, 1]: sky gradient, sun, hills, a house, mild noise.

    Drawn from formulas so it is the same everywhere; it has smooth regions, sharp edges and
    texture, which is what edge and blur kernels need to show their effect.
    """
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    v, u = y / max(height - 1, 1), x / max(width - 1, 1)
    img = np.empty((height, width, 3), dtype=np.float32)
    img[..., 0] = 0.35 + 0.45 * v          # sky: deep blue at the top, pale at the horizon
    img[..., 1] = 0.55 + 0.35 * v
    img[..., 2] = 0.95 - 0.10 * v
    sun = (u - 0.78) ** 2 + ((v - 0.22) * height / width) ** 2 < 0.008
    img[sun] = (1.0, 0.85, 0.3)
    hill = v > 0.62 + 0.08 * np.sin(2 * np.pi * (u * 1.3 + 0.1))
    img[hill] = np.stack([0.20 + 0.1 * v, 0.55 - 0.2 * v, 0.20 + 0 * v], -1)[hill]
    # a house: wall, roof, door and window with crisp edges
    top, bottom = int(0.50 * height), int(0.85 * height)
    left, right = int(0.18 * width), int(0.42 * width)
    img[top:bottom, left:right] = (0.80, 0.25, 0.20)
    roof_h = int(0.15 * height)
    for r in range(roof_h):
        half = (right - left) // 2 * (r + 1) // roof_h
        mid = (left + right) // 2
        img[top - roof_h + r, max(mid - half, 0):mid + half] = (0.35, 0.20, 0.15)
    dh, dw = (bottom - top) // 2, (right - left) // 5
    img[bottom - dh:bottom, left + 2 * dw:left + 3 * dw] = (0.25, 0.15, 0.10)
    wy, wx = top + (bottom - top) // 5, left + dw // 2
    img[wy:wy + dh // 2, wx:wx + dw] = (0.95, 0.95, 0.75)
    # stripes on a fence (texture) and a little sensor noise
    fence = (v > 0.80) & (v < 0.92) & (u > 0.5) & ((x.astype(int) // 3) % 2 == 0)
    img[fence] = (0.9, 0.85, 0.7)
    img += rng.normal(0.0, 0.015, img.shape).astype(np.float32)
    return np.clip(img, 0.0, 1.0)


def to_gray(array):
    """RGB float image -> (H, W) luminance (ITU-R 601 weights); grayscale passes through."""
    a = np.asarray(array, dtype=np.float32)
    if a.ndim == 2:
        return a
    return a[..., 0] * 0.299 + a[..., 1] * 0.587 + a[..., 2] * 0.114
