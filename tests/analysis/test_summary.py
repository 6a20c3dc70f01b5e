"""summary(): per-layer shapes, parameters, MACs and totals, against hand-derived numbers."""

import json

import numpy as np
import pytest

import juanji
import juanji.nn as nn
from juanji.analysis import summary
from juanji.models import MODELS


def by_name(s):
    return {row.name: row for row in s.rows}


def test_simple_convnet_by_hand():
    # conv 30@5x5 on 1x28x28 -> ReLU -> maxpool 2 -> affine 100 -> ReLU -> affine 10
    s = summary(MODELS["simple_convnet"](), (1, 28, 28))
    rows = by_name(s)
    expected = {
        # name: (output shape, params, MACs, receptive field, jump)
        "conv1": ([1, 30, 24, 24], 30 * 1 * 5 * 5 + 30, 30 * 24 * 24 * 25, "5x5", "1"),
        "relu1": ([1, 30, 24, 24], 0, 0, "5x5", "1"),
        "pool1": ([1, 30, 12, 12], 0, 0, "6x6", "2"),
        "flatten": ([1, 30 * 12 * 12], 0, 0, "all", "-"),
        "fc1": ([1, 100], 4320 * 100 + 100, 4320 * 100, "all", "-"),
        "relu2": ([1, 100], 0, 0, "all", "-"),
        "fc2": ([1, 10], 100 * 10 + 10, 100 * 10, "all", "-"),
    }
    assert list(rows) == list(expected)
    for name, (shape, params, macs, rf, jump) in expected.items():
        row = rows[name]
        assert list(row.output_shape) == shape, name
        assert (row.params, row.macs) == (params, macs), name
        assert (row.rf.short(), row.rf.jump_short()) == (rf, jump), name
    t = s.totals
    assert t["params"] == 780 + 432_100 + 1_010 == 433_890
    assert t["trainable_params"] == 433_890 and t["frozen_params"] == 0
    assert t["macs"] == 432_000 + 432_000 + 1_000 == 865_000
    assert t["flops"] == 2 * 865_000
    # activations: 2 x 17280 (conv, relu) + 2 x 4320 (pool, flatten) + 2 x 100 + 10 floats
    assert t["activation_bytes"] == 4 * (2 * 17280 + 2 * 4320 + 2 * 100 + 10)
    assert t["param_bytes"] == 4 * 433_890
    assert t["input_bytes"] == 4 * 28 * 28
    assert s.uncounted == [] and s.uncalled == []


def test_lenet5_every_layer():
    s = summary(MODELS["lenet5"](), (1, 28, 28))
    rows = by_name(s)
    # C1 pads by 2 so 28x28 stays 28x28, then the paper's shapes
    expected = {
        "features.0": ([1, 6, 28, 28], 6 * 25 + 6, 6 * 28 * 28 * 25),
        "features.2": ([1, 6, 14, 14], 0, 0),
        "features.3": ([1, 16, 10, 10], 16 * 6 * 25 + 16, 16 * 10 * 10 * 6 * 25),
        "features.5": ([1, 16, 5, 5], 0, 0),
        "flatten": ([1, 400], 0, 0),
        "classifier.0": ([1, 120], 400 * 120 + 120, 400 * 120),
        "classifier.2": ([1, 84], 120 * 84 + 84, 120 * 84),
        "classifier.4": ([1, 10], 84 * 10 + 10, 84 * 10),
    }
    for name, (shape, params, macs) in expected.items():
        row = rows[name]
        assert list(row.output_shape) == shape, name
        assert (row.params, row.macs) == (params, macs), name
    assert rows["features.3"].rf.size == (14, 14)
    assert rows["features.5"].rf.size == (16, 16)
    # blocks show the subtotals of their children
    assert rows["features"].params_total == 156 + 2416
    assert rows["features"].macs_total == 117_600 + 240_000
    assert s.totals["params"] == 156 + 2_416 + 48_120 + 10_164 + 850 == 61_706
    assert s.totals["macs"] == 117_600 + 240_000 + 48_000 + 10_080 + 840 == 416_520


def test_batch_size_scales_macs_and_activations():
    one = summary(MODELS["simple_convnet"](), (1, 28, 28))
    four = summary(MODELS["simple_convnet"](), (1, 28, 28), batch_size=4)
    assert four.totals["macs"] == 4 * one.totals["macs"]
    assert four.totals["macs_per_sample"] == one.totals["macs"]
    assert four.totals["activation_bytes"] == 4 * one.totals["activation_bytes"]
    assert four.totals["params"] == one.totals["params"]
    assert four.rows[0].output_shape == (4, 30, 24, 24)


def test_grouped_depthwise_and_frozen():
    model = nn.Sequential(nn.Conv2d(8, 16, 3, groups=2), nn.Conv2d(16, 16, 3, groups=16,
                                                                    padding=1, bias=False))
    model[0].requires_grad_(False)
    s = summary(model, (8, 10, 10))
    assert s.rows[0].macs == 16 * 8 * 8 * (8 // 2) * 9
    assert s.rows[1].macs == 16 * 8 * 8 * 1 * 9
    assert s.rows[1].params == 16 * 9
    assert s.totals["frozen_params"] == 16 * 4 * 9 + 16
    assert s.totals["trainable_params"] == 16 * 9


def test_shared_weights_counted_once_and_repeated_calls_listed():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(4, 4)
            self.b = nn.Linear(4, 4)
            self.b.weight = self.a.weight  # tied weights

        def forward(self, x):
            return self.b(self.a(self.a(x)))

    s = summary(Twice(), (4,))
    assert [r.name for r in s.rows] == ["a", "a#2", "b"]
    assert [r.params for r in s.rows] == [20, 0, 4]
    assert s.rows[2].shared_params == 16
    assert s.totals["params"] == 24 == sum(p.numel() for p in Twice().parameters())
    assert s.totals["macs"] == 3 * 16  # three calls, each 4 x 4 multiply-adds


def test_unknown_layers_are_listed_not_zero():
    class Mystery(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(np.ones(3, dtype=np.float32))

        def forward(self, x):
            return x * self.scale.reshape(1, 3, 1, 1)

    model = nn.Sequential(nn.Conv2d(3, 3, 1), Mystery())
    s = summary(model, (3, 4, 4))
    assert s.uncounted == ["1 (Mystery)"]
    assert s.rows[1].macs is None and s.rows[1].rf.kind == "unknown"
    assert s.totals["macs"] == 3 * 16 * 3
    text = s.table()
    assert "Not counted (unknown layer types): 1 (Mystery)" in text
    assert "lower bound" in text


def test_modules_never_called_are_reported():
    class WithAux(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Linear(3, 2)
            self.aux = nn.Linear(3, 5)

        def forward(self, x):
            return self.body(x)

    s = summary(WithAux(), (3,))
    assert s.uncalled == ["aux"]
    assert s.totals["params"] == 8 + 20  # counted in the parameters ...
    assert s.totals["macs"] == 6  # ... not in the MACs


def test_training_flags_are_restored_and_eval_used():
    model = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5))
    model.train()
    summary(model, (3,))
    assert all(m.training for m in model.modules())


def test_table_and_json():
    s = summary(MODELS["simple_convnet"](), (1, 28, 28), name="simple_convnet")
    text = s.table()
    assert text.splitlines()[0] == "simple_convnet on input [1, 1, 28, 28]"
    assert "conv1 (Conv2d)" in text and "432,000" in text
    assert "Params: 433,890 total = 433,890 trainable + 0 frozen" in text
    assert "FLOPs = 2 x MACs: 1,730,000" in text
    assert "One MAC = one multiply-add" in text
    data = json.loads(json.dumps(s.to_dict()))
    assert data["totals"]["macs"] == 865_000
    assert data["rows"][0]["receptive_field"] == {"kind": "local", "size": [5, 5],
                                                  "jump": [1, 1], "start": [2, 2]}
    assert data["rows"][3]["receptive_field"] == {"kind": "global"}


def test_bad_arguments():
    model = MODELS["simple_convnet"]()
    with pytest.raises(ValueError, match="input_size must be a sequence of positive ints"):
        summary(model, (1, 0, 28))
    with pytest.raises(ValueError, match="batch_size must be a positive int; got 0"):
        summary(model, (1, 28, 28), batch_size=0)
    with pytest.raises(TypeError, match="model must be a juanji.nn.Module"):
        summary("simple_convnet", (1, 28, 28))
    with pytest.raises(ValueError, match=r"cannot run on an input of shape \[1, 3, 28, 28\]"):
        summary(model, (3, 28, 28))


def test_batch_norm_params_buffers_and_zero_macs():
    s = summary(nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8)), (3, 6, 6))
    bn = s.rows[1]
    assert (bn.params, bn.macs, bn.kind) == (16, 0, "normalization")
    assert s.totals["buffers"] >= 16  # running mean and var (+ the batch counter)


def test_conv_transpose_counts():
    s = summary(nn.ConvTranspose2d(16, 8, 4, stride=2, padding=1), (16, 7, 7))
    row = s.rows[0]
    assert row.output_shape == (1, 8, 14, 14)
    assert row.params == 16 * 8 * 16 + 8
    assert row.macs == 16 * 7 * 7 * 8 * 16


def test_forward_is_real_and_no_grad():
    model = MODELS["simple_convnet"]()
    summary(model, (1, 28, 28))
    assert all(p.grad is None for p in model.parameters())
    assert juanji.is_grad_enabled()
