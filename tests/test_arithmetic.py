"""Conv arithmetic, checked against numbers worked out by hand (and PyTorch's rules)."""

import pytest

from juanji.arithmetic import (
    adaptive_pool_bounds,
    conv_output_size,
    conv_transpose_output_padding,
    conv_transpose_output_size,
    effective_kernel,
    pool_output_size,
    same_padding,
    strided_same_padding,
    unpool_output_size,
)


def test_effective_kernel():
    assert effective_kernel(3) == 3
    assert effective_kernel(3, 2) == 5  # taps at 0, 2, 4
    assert effective_kernel(1, 7) == 1


@pytest.mark.parametrize("args, expected", [
    ((32, 5), 28),  # LeNet: 32 - 5 + 1
    ((224, 11, 4, 2), 55),  # AlexNet conv1: floor((224 + 4 - 11) / 4) + 1 = 54 + 1
    ((7, 3, 2, 1), 4),  # floor((7 + 2 - 3) / 2) + 1
    ((5, 3, 1, 0, 2), 1),  # dilated span 5 fits exactly once
    ((6, 2, 1, (0, 1)), 6),  # asymmetric padding: 6 + 1 - 2 + 1
    ((10, 3, 4), 2),  # floor(7 / 4) + 1, the last 3 cells unused
])
def test_conv_output_size(args, expected):
    assert conv_output_size(*args) == expected


def test_conv_output_size_rejects_an_overhanging_kernel():
    with pytest.raises(ValueError, match="kernel size 3 \\(dilation 2, effective 5\\) is larger "
                                         "than the padded input 4"):
        conv_output_size(2, 3, 1, 1, 2)


@pytest.mark.parametrize("args, expected", [
    ((224, 3, 2, 1), 112),  # ResNet stem pool: floor(223 / 2) + 1
    ((7, 3, 2, 0, 1, False), 3),  # floor(4 / 2) + 1
    ((6, 3, 2, 0, 1, False), 2),  # floor(3 / 2) + 1
    ((6, 3, 2, 0, 1, True), 3),  # ceil(3 / 2) + 1: the last window overhangs
    ((5, 2, 2, 1, 1, True), 3),  # ceil(5 / 2) + 1 = 4, but window 4 would start at 6 >= 5 + 1
    ((2, 3, 2, 0, 1, True), 1),  # ceil(-1 / 2) + 1 = 1: PyTorch lets one window exceed
    ((2, 3, 3, 0, 1, True), 1),
    ((13, 3, 2, 0, 1, True), 6),  # ceil(10 / 2) + 1 (SqueezeNet's ceil-mode pools)
    ((10, 2, 3, (0, 1), 1, False), 4),  # asymmetric padding (ONNX): floor(9 / 3) + 1
    ((4, 2, 1, 0, 2, True), 2),  # dilation 2: span 3, floor(1 / 1) + 1
])
def test_pool_output_size(args, expected):
    assert pool_output_size(*args) == expected


def test_pool_output_size_rejects_a_window_that_never_fits():
    with pytest.raises(ValueError, match="pooling window 3 \\(kernel_size=3, dilation=1\\) is "
                                         "larger than the padded input 2"):
        pool_output_size(2, 3, 2)
    with pytest.raises(ValueError, match="pooling window 5"):
        pool_output_size(3, 3, 1, 0, 2)


@pytest.mark.parametrize("args, expected", [
    ((3, 3), 5),  # (3 - 1) + 3
    ((4, 3, 2, 1, 1), 8),  # (4 - 1) * 2 - 2 + 3 + 1: the classic x2 upsampler
    ((3, 2, 2), 6),
    ((5, 3, 1, 0, 0, 2), 9),  # dilated: 4 + 5
    ((3, 3, 3, (1, 2), 0), 6),  # asymmetric crop (ONNX): (3 - 1) * 3 - 1 - 2 + 3 = 6
    ((2, 1, 1, 1), 0),  # padding can crop everything; the caller refuses it
])
def test_conv_transpose_output_size(args, expected):
    assert conv_transpose_output_size(*args) == expected


def test_conv_transpose_output_padding_for_a_target_size():
    # smallest = (5 - 1) * 3 - 2 + 3 = 13; reachable 13, 14, 15
    assert conv_transpose_output_padding(5, 13, 3, 3, 1) == 0
    assert conv_transpose_output_padding(5, 15, 3, 3, 1) == 2
    with pytest.raises(ValueError, match="output_size 16 is not reachable; it must be between "
                                         "13 and 15"):
        conv_transpose_output_padding(5, 16, 3, 3, 1)


def test_same_padding_puts_the_odd_cell_after():
    assert same_padding(3) == (1, 1)
    assert same_padding(4) == (1, 2)
    assert same_padding(3, 2) == (2, 2)
    assert same_padding(2, 3) == (1, 2)  # span 4 -> total 3


def test_strided_same_padding_upper_and_lower():
    # out = ceil(5 / 2) = 3; total = (3 - 1) * 2 + 3 - 5 = 2
    assert strided_same_padding(5, 3, 2) == (1, 1)
    # out = 32; total = 31 + 2 - 32 = 1: the odd cell after (UPPER) or before (LOWER)
    assert strided_same_padding(32, 2, 1) == (0, 1)
    assert strided_same_padding(32, 2, 1, lower=True) == (1, 0)
    assert strided_same_padding(4, 1, 4) == (0, 0)


def test_adaptive_pool_bounds():
    assert adaptive_pool_bounds(10, 5) == [(0, 2), (2, 4), (4, 6), (6, 8), (8, 10)]
    # 7 -> 3: floor(7i/3), ceil(7(i+1)/3): windows overlap by one cell
    assert adaptive_pool_bounds(7, 3) == [(0, 3), (2, 5), (4, 7)]
    assert adaptive_pool_bounds(3, 5) == [(0, 1), (0, 2), (1, 2), (1, 3), (2, 3)]
    assert adaptive_pool_bounds(6, 1) == [(0, 6)]


def test_unpool_output_size():
    assert unpool_output_size(3, 2, 2) == 6
    assert unpool_output_size(4, 3, 2, 1) == 7
