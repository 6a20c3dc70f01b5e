"""Module.to(memory_format=...): channels-last conv weights change memory only, never results,
and conv reads them as GEMM rows without a copy."""

import numpy as np
import pytest

import juanji
import juanji.nn as nn
from juanji import optim
from juanji.nn import functional as F
from juanji.ops import conv as conv_ops


def _model():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 8, 3, padding=1, groups=8),  # depthwise
                         nn.ConvTranspose2d(8, 8, 2, stride=2, groups=2),
                         nn.Conv2d(8, 8, 3, stride=4, groups=2), nn.Flatten(),
                         nn.Linear(8 * 5 * 5, 5))


def _train(model, steps=3):
    rng = np.random.default_rng(0)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(steps):
        x = juanji.tensor(rng.standard_normal((4, 3, 10, 10)).astype(np.float32))
        opt.zero_grad()
        F.cross_entropy(model(x), rng.integers(0, 5, 4)).backward()
        opt.step()
    return model


def test_channels_last_keeps_shapes_values_and_training_results():
    reference = _model()
    model = _model()
    model.load_state_dict(reference.state_dict())
    before = {k: v.copy() for k, v in model.state_dict().items()}
    assert model.to(memory_format="channels_last") is model
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[key])
    weight = model[0].weight.data
    assert weight.shape == (8, 3, 3, 3) and not weight.flags.c_contiguous
    assert weight.transpose(0, 2, 3, 1).flags.c_contiguous  # (OC, KH, KW, C) memory
    _train(reference)
    _train(model)
    for key, value in model.state_dict().items():  # same numbers, bit for bit
        np.testing.assert_array_equal(value, reference.state_dict()[key], err_msg=key)
    assert model[0].weight.data.transpose(0, 2, 3, 1).flags.c_contiguous  # updates in place


def test_channels_last_weight_rows_are_a_view_and_contiguous_goes_back():
    model = _model().to(memory_format="channels_last")
    weight = model[0].weight.data
    rows = conv_ops.weight_rows(weight, 1)
    assert np.shares_memory(rows, weight) and rows.shape == (1, 8, 27)
    model.to(memory_format="contiguous")
    weight = model[0].weight.data
    assert weight.flags.c_contiguous
    assert not np.shares_memory(conv_ops.weight_rows(weight, 1), weight)  # the copy


def test_memory_format_with_dtype_and_errors():
    model = _model().to(np.float64, memory_format="channels_last")
    weight = model[0].weight.data
    assert weight.dtype == np.float64 and weight.transpose(0, 2, 3, 1).flags.c_contiguous
    with pytest.raises(ValueError, match="memory_format must be one of .*got 'nhwc'"):
        model.to(memory_format="nhwc")
