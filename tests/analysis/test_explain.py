"""Step-by-step explanations: the seeds' worked examples give the seeds' numbers."""

import json

import pytest

from juanji.analysis import explain, explain_conv2d, explain_conv_transpose2d, explain_pool


def test_seed_28_input_5_kernel_gives_24():
    e = explain_conv2d((1, 28, 28), out_channels=30, kernel_size=5)
    assert e.result["output_shape"] == [30, 24, 24]
    assert e.result["params"] == 30 * 26 == 780
    assert e.result["macs"] == 1 * 5 * 5 * 24 * 24 * 30
    assert e.result["flops"] == 2 * e.result["macs"]
    text = e.text()
    assert "floor((28 + 2*0 - 1*(5-1) - 1) / 1) + 1" in text
    assert "(28 + 0 - 5) / 1 + 1 = 24" in text  # the seeds' own form of the formula
    assert "one filter has 26 parameters" in text
    assert "1 * 28 * 28 + 1" in text and "785" in text  # the seeds' comparison with FC


def test_seed_6x6_with_3x3_gives_4x4_and_same_padding():
    e = explain_conv2d((1, 6, 6), 1, 3)
    assert e.result["output_shape"] == [1, 4, 4]
    # p = (F - 1) / 2 keeps the size at stride 1
    same = [s for s in e.steps if "same" in s.title][0]
    assert same.value == "1"
    assert explain_conv2d((1, 6, 6), 1, 3, padding=1).result["output_shape"] == [1, 6, 6]


def test_stride_two_halves_and_uneven_division_is_explained():
    assert explain_conv2d((3, 224, 224), 64, 3, stride=2, padding=1).result[
        "output_shape"] == [64, 112, 112]
    e = explain_conv2d((1, 7, 7), 1, 2, stride=2)
    assert e.result["output_shape"] == [1, 3, 3]
    assert "not a multiple of S=2" in e.text()


def test_dilation_groups_and_rectangles():
    e = explain_conv2d((4, 10, 12), 8, (1, 3), dilation=2, groups=2)
    # width span 2*(3-1)+1 = 5 -> 12 - 5 + 1 = 8; height kernel 1 -> 10
    assert e.result["output_shape"] == [8, 10, 8]
    assert e.result["params"] == 8 * (2 * 1 * 3) + 8
    assert e.result["receptive_field"] == [1, 5]


def test_pool_floor_and_ceil():
    e = explain_pool((30, 24, 24), 2)
    assert e.result["output_shape"] == [30, 12, 12] and e.result["params"] == 0
    assert explain_pool((1, 5, 5), 2).result["output_shape"] == [1, 2, 2]
    assert explain_pool((1, 5, 5), 2, ceil_mode=True).result["output_shape"] == [1, 3, 3]
    assert "ceil(" in explain_pool((1, 5, 5), 2, ceil_mode=True).text()
    assert "3 comparisons per output value: 12,960 in all" in e.text()


def test_conv_transpose_inverts_the_conv():
    e = explain_conv_transpose2d((16, 7, 7), 8, 4, stride=2, padding=1)
    assert e.result["output_shape"] == [8, 14, 14]
    assert e.result["params"] == 16 * 8 * 4 * 4 + 8
    assert e.result["macs"] == 16 * 7 * 7 * 8 * 4 * 4
    assert explain_conv2d((8, 14, 14), 16, 4, stride=2, padding=1).result[
        "output_shape"] == [16, 7, 7]
    assert explain_conv_transpose2d((1, 3, 3), 1, 3, stride=2, output_padding=1).result[
        "output_shape"] == [1, 8, 8]


def test_to_dict_is_json():
    data = json.loads(json.dumps(explain("conv2d", input_size=(1, 28, 28), out_channels=30,
                                         kernel_size=5).to_dict(), ensure_ascii=False))
    assert data["result"]["output_shape"] == [30, 24, 24]
    assert data["steps"][0]["title"].startswith("Output height")


@pytest.mark.parametrize("call, message", [
    (lambda: explain_conv2d((1, 28, 28), 30, 31),
     r"kernel 31 \(dilated span 31\) does not fit the input height 28"),
    (lambda: explain_conv2d((1, 28, 28), 0, 3), "out_channels must be an int >= 1; got 0"),
    (lambda: explain_conv2d((1, 28), 3, 3), r"input_size must be \(C, H, W\)"),
    (lambda: explain_conv2d((6, 8, 8), 4, 3, groups=4), "groups must divide in_channels"),
    (lambda: explain_pool((1, 8, 8), 2, padding=2), "padding must be at most half the kernel"),
    (lambda: explain_conv_transpose2d((1, 3, 3), 1, 3, output_padding=1),
     "output_padding must be smaller than stride or dilation"),
    (lambda: explain("conv3d"), "op must be one of"),
])
def test_errors_name_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call()
