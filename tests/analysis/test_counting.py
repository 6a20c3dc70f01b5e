"""Counting formulas, checked against numbers worked out by hand in each test."""

import pytest

from juanji.analysis import counting as c


def test_seed_filter_has_26_parameters():
    # the seeds: "each 5x5 kernel is 25 parameters, plus one bias: 26"
    assert c.conv2d_params(1, 1, 5) == 5 * 5 + 1 == 26
    # 20 such filters: 520, against 28*28 + 1 = 785 for one fully connected unit
    assert c.conv2d_params(1, 20, 5) == 520
    assert c.linear_params(28 * 28, 1) == 785


def test_seed_formula_cin_k_k_plus_one_times_cout():
    # (C_in * K * K + 1) * C_out with C_in=3, K=3, C_out=64
    assert c.conv2d_params(3, 64, 3) == (3 * 3 * 3 + 1) * 64 == 1792
    assert c.conv2d_params(3, 64, 3, bias=False) == 1728


def test_seed_macs_and_flops_formulas():
    # MAC = C_in * K * K * H_out * W_out * C_out; FLOPs = 2 * MAC (the seeds' two formulas)
    macs = c.conv2d_macs(1, 30, 5, (24, 24))
    assert macs == 1 * 5 * 5 * 24 * 24 * 30 == 432_000
    assert c.flops_from_macs(macs) == 864_000


def test_grouped_and_depthwise_divide_by_groups():
    # depthwise 3x3 over 32 channels at 112x112: each output sees one channel
    assert c.conv2d_macs(32, 32, 3, (112, 112), groups=32) == 32 * 112 * 112 * 9
    assert c.conv2d_params(32, 32, 3, groups=32, bias=False) == 32 * 9
    # 2 groups: each of 16 outputs sees 8 / 2 = 4 channels
    assert c.conv2d_macs(8, 16, 3, (8, 8), groups=2) == 16 * 64 * 4 * 9
    assert c.conv2d_params(8, 16, 3, groups=2) == 16 * 4 * 9 + 16


def test_rectangular_kernel_and_batch():
    # the seeds' 1x3 edge detector over a 50x50 image -> 50x48 outputs, 3 MACs each
    assert c.conv2d_macs(1, 1, (1, 3), (50, 48)) == 50 * 48 * 3
    assert c.conv2d_params(1, 1, (1, 3), bias=False) == 3
    assert c.conv2d_macs(1, 1, (1, 3), (50, 48), batch_size=4) == 4 * 50 * 48 * 3


def test_transposed_conv_counts_over_its_input():
    # C=16 at 7x7 scattered through 4x4 kernels into 8 channels
    assert c.conv_transpose2d_macs(16, 8, 4, (7, 7)) == 16 * 49 * 8 * 16
    assert c.conv_transpose2d_params(16, 8, 4) == 16 * 8 * 16 + 8
    assert c.conv_transpose2d_macs(16, 8, 4, (7, 7), groups=2) == 16 * 49 * 4 * 16


def test_linear_and_batch_norm():
    assert c.linear_macs(4320, 100) == 432_000
    assert c.linear_macs(100, 10, rows=3) == 3000
    assert c.linear_params(100, 10, bias=False) == 1000
    assert c.batch_norm_params(64) == 128
    assert c.batch_norm_params(64, affine=False) == 0


def test_layer_macs_kinds():
    import juanji
    import juanji.nn as nn

    x = juanji.tensor([[1.0, 2.0, 3.0, 4.0]])
    fc = nn.Linear(4, 2)
    assert c.layer_macs(fc, (x,), fc(x)) == (8, "mac")
    relu = nn.ReLU()
    assert c.layer_macs(relu, (x,), relu(x)) == (0, "activation")

    class Mystery(nn.Module):
        def forward(self, x):
            return x

    m = Mystery()
    assert c.layer_macs(m, (x,), m(x)) == (None, "unknown")


@pytest.mark.parametrize("family, name", [("pooling", "MaxPool2d"), ("dropout", "Dropout"),
                                          ("reshape", "Flatten"),
                                          ("normalization", "BatchNorm2d")])
def test_zero_mac_families(family, name):
    cls = c.nn_class(name)
    assert cls is not None, f"juanji.nn.{name} is missing"
    assert name in c.ZERO_MAC_FAMILIES[family]
    module = cls(4) if name == "BatchNorm2d" else cls(2) if name == "MaxPool2d" else cls()
    assert c.zero_mac_family(module) == family
