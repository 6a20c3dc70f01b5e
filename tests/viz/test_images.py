"""Image files and grids."""

import struct
import warnings
import zlib

import numpy as np
import pytest

from juanji.viz.images import (
    MAX_IMAGE_PIXELS,
    ImageTooLargeError,
    make_grid,
    read_image,
    synthetic_photo,
    to_uint8,
    upscale,
    write_image,
)


def test_png_roundtrip_is_exact_and_atomic(tmp_path):
    a = (np.arange(12 * 10 * 3).reshape(12, 10, 3) % 256).astype(np.uint8)
    path = write_image(tmp_path / "sub" / "a.png", a)
    assert np.array_equal(np.round(read_image(path) * 255).astype(np.uint8), a)
    assert [p.name for p in path.parent.iterdir()] == ["a.png"]  # no temporary file left
    gray = write_image(tmp_path / "g.png", np.linspace(0, 1, 20).reshape(4, 5))
    assert read_image(gray).shape == (4, 5)
    assert read_image(gray, "RGB").shape == (4, 5, 3)


def test_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="image not found: .*missing.png"):
        read_image(tmp_path / "missing.png")
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not a png")
    with pytest.raises(ValueError, match="cannot read image .*junk.png"):
        read_image(junk)
    with pytest.raises(ValueError, match="cannot tell the image format"):
        write_image(tmp_path / "x.unknown", np.zeros((2, 2)))


def png_header_only(width, height):
    """A grayscale PNG that claims width x height pixels but holds one row of data."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(bytes(width + 1))) + chunk(b"IEND", b""))


def test_default_pixel_limit_is_pillows():
    from PIL import Image

    assert MAX_IMAGE_PIXELS == 89_478_485 == Image.MAX_IMAGE_PIXELS


@pytest.mark.parametrize("width, height", [(10_000, 10_000), (20_000, 20_000)])
def test_too_many_pixels_is_one_clear_error(tmp_path, width, height):
    # 10000 x 10000 is where Pillow only warns; 20000 x 20000 where it raises its own error.
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(width, height))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's DecompressionBombWarning must not escape
        with pytest.raises(ImageTooLargeError, match=f"image {path} is too large: ") as info:
            read_image(path)
    assert f"over the limit of {MAX_IMAGE_PIXELS} pixels" in str(info.value)


def test_pixel_limit_is_configurable_and_names_the_size(tmp_path):
    path = write_image(tmp_path / "a.png", np.zeros((10, 20), np.uint8))
    assert issubclass(ImageTooLargeError, ValueError)
    with pytest.raises(ValueError, match=r"a.png is too large: 20x10 = 200 pixels, over the "
                                         r"limit of 199 pixels"):
        read_image(path, max_pixels=199)
    assert read_image(path, max_pixels=200).shape == (10, 20)
    assert read_image(path, max_pixels=None).shape == (10, 20)


def test_truncated_and_non_image_files_name_the_file(tmp_path):
    whole = write_image(tmp_path / "whole.png", synthetic_photo(48, 64)).read_bytes()
    cut = tmp_path / "cut.png"
    for length in (0, 8, 40, len(whole) // 2, len(whole) - 200):
        cut.write_bytes(whole[:length])
        with pytest.raises(ValueError, match=f"cannot read image {cut}: "):
            read_image(cut)
    with pytest.raises(IsADirectoryError, match=f"image path is a folder: {tmp_path}"):
        read_image(tmp_path)


def test_scales():
    assert to_uint8(np.array([-1.0, 0.0, 2.0]), "minmax").tolist() == [0, 85, 255]
    assert to_uint8(np.array([-2.0, 0.0, 1.0]), "abs").tolist() == [255, 0, 128]
    assert to_uint8(np.array([-2.0, 0.0, 1.0]), "symmetric").tolist() == [0, 128, 191]
    assert to_uint8(np.array([-1.0, 0.5, 2.0])).tolist() == [0, 128, 255]


def test_grid_places_tiles_row_by_row():
    tiles = [np.full((2, 3), v, np.uint8) for v in (10, 20, 30)]
    grid = make_grid(tiles, ncols=2, pad=1, pad_value=255)
    assert grid.shape == (2 * 3 + 1, 2 * 4 + 1)
    assert grid[1, 1] == 10 and grid[1, 5] == 20 and grid[4, 1] == 30
    assert grid[4, 5] == 255 and grid[0, 0] == 255  # empty cell and padding
    assert upscale(np.eye(2, dtype=np.uint8), 3).shape == (6, 6)


def test_synthetic_photo_is_deterministic_and_textured():
    a, b = synthetic_photo(48, 64), synthetic_photo(48, 64)
    assert a.shape == (48, 64, 3) and np.array_equal(a, b)
    assert a.std() > 0.1
    assert a[2, 2, 2] > a[2, 2, 0]  # blue sky at the top
