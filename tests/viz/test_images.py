"""Image files and grids."""

import numpy as np
import pytest

from juanji.viz.images import (
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
