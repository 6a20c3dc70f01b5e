"""Filter pictures, checked pixel by pixel."""

import numpy as np
import pytest

import juanji.nn as nn
from juanji.viz.filters import filter_grid, filter_tiles, save_filter_comparison, save_filters
from juanji.viz.images import read_image


def edge_weight():
    w = np.zeros((2, 1, 3, 3), np.float32)
    w[0, 0, :, 0], w[0, 0, :, 2] = 1.0, -1.0  # white left column, black right column
    w[1, 0] = 0.25  # a constant positive filter: all white
    return w


def test_tiles_scale_each_filter_symmetrically():
    tiles = filter_tiles(edge_weight())
    assert np.all(tiles[0][:, 0] == 255) and np.all(tiles[0][:, 2] == 0)
    assert np.all(tiles[0][:, 1] == 128)  # zero weight is mid-gray
    assert np.all(tiles[1] == 255)
    inverted = filter_tiles(edge_weight(), invert=True)
    assert np.all(inverted[0][:, 0] == 0)


def test_colour_filters_for_three_channels():
    w = np.zeros((1, 3, 2, 2), np.float32)
    w[0, 0] = 1.0  # red channel only
    tile = filter_tiles(w)[0]
    assert tile.shape == (2, 2, 3)
    assert tile[0, 0].tolist() == [255, 128, 128]


def test_grid_geometry():
    grid = filter_grid(edge_weight(), ncols=8, tile_px=30, pad=2)
    # two 3x3 tiles enlarged 10x, 2 pixels apart and around
    assert grid.shape == (2 + 30 + 2, 2 + 2 * (30 + 2))
    assert grid[2 + 15, 2 + 1] == 255 and grid[2 + 15, 2 + 29] == 0


def test_save_filters_from_a_model(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 30, 5), nn.ReLU())
    path = save_filters(model, tmp_path / "f.png", ncols=8, tile_px=40)
    img = read_image(path)
    # 30 filters in 4 rows of 8 tiles of 5*8 = 40 pixels (+ padding 2)
    assert img.shape == (4 * 42 + 2, 8 * 42 + 2)
    assert img.std() > 0.05  # random filters are not flat
    with pytest.raises(ValueError, match="has no Conv2d layer"):
        save_filters(nn.Linear(2, 2), tmp_path / "x.png")


def test_comparison_puts_grids_side_by_side(tmp_path):
    path = save_filter_comparison([edge_weight(), -edge_weight()], ["before", "after"],
                                  tmp_path / "c.png", tile_px=30, invert=False)
    img = np.round(read_image(path) * 255)
    single = filter_grid(edge_weight(), tile_px=30)
    assert img.shape[1] == 2 * single.shape[1] + 16
    # the left grid's first tile column is white, the right grid's (negated) black
    y = 16 + 2 + 15
    assert img[y, 2 + 1].tolist() == [255] * 3
    assert img[y, single.shape[1] + 16 + 2 + 1].tolist() == [0] * 3
