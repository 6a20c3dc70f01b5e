"""Feature maps of hand-set filters on the seeds' half-white image."""

import numpy as np
import pytest

import juanji.nn as nn
from juanji.viz.features import feature_grid, feature_maps, prepare_input, save_feature_maps
from juanji.viz.images import half_white, read_image


def edge_model():
    model = nn.Sequential(nn.Conv2d(1, 2, (1, 3), bias=False), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(2, 1, 1))
    model[0].weight.data[...] = 0
    model[0].weight.data[0, 0, 0] = [1, 0, -1]  # bright-to-dark edges
    model[0].weight.data[1, 0, 0] = [-1, 0, 1]  # dark-to-bright edges (none here)
    return model


def test_maps_show_the_boundary():
    maps = feature_maps(edge_model(), half_white(20, 20, 12)[None])
    assert list(maps) == ["0", "3"]
    first = maps["0"]
    assert first.shape == (2, 20, 18)
    assert np.nonzero(first[0].sum(axis=0))[0].tolist() == [10, 11]
    assert np.array_equal(first[1], -first[0])  # conv outputs come before the ReLU


def test_named_layers_and_unknown_names():
    maps = feature_maps(edge_model(), np.zeros((1, 8, 8), np.float32), layers=["1", "2"])
    assert [m.shape for m in maps.values()] == [(2, 8, 6), (2, 4, 3)]
    with pytest.raises(KeyError, match="no layer named 'conv9'.*conv layers are: 0, 3"):
        feature_maps(edge_model(), np.zeros((1, 8, 8), np.float32), layers=["conv9"])


def test_grid_and_file(tmp_path):
    path, maps = save_feature_maps(edge_model(), half_white(20, 20, 12), tmp_path / "f.png",
                                   (1, 20, 20))
    img = read_image(path)
    assert img.std() > 0.1
    grid = feature_grid(maps)
    assert grid.ndim == 3 and grid.shape[0] > 56


def test_prepare_input_resizes_and_converts():
    rgb = np.random.default_rng(0).random((10, 12, 3)).astype(np.float32)
    assert prepare_input(rgb, (1, 28, 28)).shape == (1, 28, 28)
    assert prepare_input(rgb[..., 0], (3, 10, 12)).shape == (3, 10, 12)
    with pytest.raises(ValueError, match="1 or 3 input channels; got 4"):
        prepare_input(rgb, (4, 8, 8))
