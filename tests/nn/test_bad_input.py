"""Bad input through the Python API: clear errors naming what was wrong, never a silent result.

Integer, bool and object arrays into float layers, binary cross-entropy targets outside [0, 1],
Flatten dims out of range, and size parameters that would allocate more than the machine has.
"""

import numpy as np
import pytest
import torch

import juanji
import juanji.nn.functional as F
from juanji import nn

# (layer, input shape): every layer that computes in floating point
FLOAT_LAYERS = [
    (lambda: nn.Conv2d(3, 4, 3), (1, 3, 5, 5)),
    (lambda: nn.Conv1d(3, 4, 3), (1, 3, 5)),
    (lambda: nn.ConvTranspose2d(3, 4, 3), (1, 3, 5, 5)),
    (lambda: nn.ConvTranspose1d(3, 4, 3), (1, 3, 5)),
    (lambda: nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"), (1, 3, 5, 5)),
    (lambda: nn.DepthwiseSeparableConv2d(3, 4, 3), (1, 3, 5, 5)),
    (lambda: nn.Linear(5, 2), (2, 5)),
    (lambda: nn.BatchNorm2d(3), (2, 3, 4, 4)),
    (lambda: nn.BatchNorm1d(3), (2, 3)),
    (lambda: nn.LayerNorm(4), (2, 3, 4)),
    (lambda: nn.GroupNorm(1, 3), (2, 3, 4)),
    (lambda: nn.LocalResponseNorm(2), (2, 3, 4, 4)),
    (lambda: nn.AvgPool2d(2), (1, 3, 4, 4)),
    (lambda: nn.AvgPool1d(2), (1, 3, 4)),
    (lambda: nn.LPPool2d(2, 2), (1, 3, 4, 4)),
    (lambda: nn.AdaptiveAvgPool2d(1), (1, 3, 4, 4)),
    (lambda: nn.AdaptiveAvgPool1d(1), (1, 3, 4)),
    (lambda: nn.MSELoss(), (2, 3)),
    (lambda: nn.CrossEntropyLoss(), (2, 3)),
]


def _name(make):
    return type(make()).__name__


@pytest.mark.parametrize("dtype", [np.int64, np.uint8, np.bool_, object])
@pytest.mark.parametrize("make, shape", FLOAT_LAYERS,
                         ids=[f"{_name(m)}{len(s) - 2}d" for m, s in FLOAT_LAYERS])
def test_float_layers_refuse_integer_bool_and_object_inputs(make, shape, dtype):
    layer = make()
    x = juanji.tensor(np.ones(shape, dtype=dtype))
    args = (x, juanji.tensor(np.zeros(2, np.int64))) if isinstance(layer, nn.CrossEntropyLoss) \
        else (x,)
    pattern = (rf"^{type(layer).__name__} expects a floating-point input; "
               rf"got {np.dtype(dtype)} \(convert with x.float\(\)")
    with pytest.raises(TypeError, match=pattern):
        layer(*args)


def test_torch_refuses_an_integer_image_into_conv2d_too():
    with pytest.raises(RuntimeError):
        torch.nn.Conv2d(3, 4, 3)(torch.ones(1, 3, 5, 5, dtype=torch.uint8))


@pytest.mark.parametrize("call, op", [
    (lambda x: F.conv2d(x, np.ones((2, 3, 3, 3), np.float32)), "Conv2d"),
    (lambda x: F.conv_transpose2d(x, np.ones((3, 2, 3, 3), np.float32)), "ConvTranspose2d"),
    (lambda x: F.linear(x.reshape(1, -1)[:, :5], np.ones((2, 5), np.float32)), "Linear"),
    (lambda x: F.batch_norm(x, None, None, training=True), "BatchNorm"),
    (lambda x: F.avg_pool2d(x, 2), "AvgPool2d"),
    (lambda x: F.adaptive_avg_pool2d(x, 1), "AdaptiveAvgPool2d"),
    (lambda x: F.gelu(x), "Gelu"),
    (lambda x: F.sigmoid(x), "Sigmoid"),
    (lambda x: F.softmax(x, 1), "Softmax"),
    (lambda x: F.dropout(x, 0.5), "Dropout"),
    (lambda x: F.mse_loss(x, np.zeros(x.shape, np.float32)), "MSE"),
])
def test_functional_ops_refuse_integer_inputs_naming_the_op(call, op):
    x = juanji.tensor(np.ones((1, 3, 5, 5), np.int64))
    with pytest.raises(TypeError, match=f"^{op} expects a floating-point input; got int64"):
        call(x)


def test_max_pooling_keeps_integers_as_torch_but_refuses_bool_and_object():
    x = np.arange(32, dtype=np.int64).reshape(1, 2, 4, 4)
    out = nn.MaxPool2d(2)(juanji.tensor(x))
    expected = torch.nn.MaxPool2d(2)(torch.from_numpy(x))
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out.data, expected.numpy())
    for dtype in (np.bool_, object):
        with pytest.raises(TypeError, match="MaxPool2d expects a numeric"):
            nn.MaxPool2d(2)(juanji.tensor(x.astype(dtype)))
        with pytest.raises(TypeError, match="AdaptiveMaxPool2d expects a numeric"):
            nn.AdaptiveMaxPool2d(1)(juanji.tensor(x.astype(dtype)))


def test_float16_and_float64_inputs_keep_their_behaviour():
    conv = nn.Conv2d(3, 4, 3)  # float32 weights
    assert conv(juanji.tensor(np.ones((1, 3, 5, 5), np.float64))).dtype == np.float64
    assert conv(juanji.tensor(np.ones((1, 3, 5, 5), np.float16))).dtype == np.float32
    assert nn.Linear(5, 2)(juanji.tensor(np.ones((2, 5), np.float64))).dtype == np.float64
    assert nn.BatchNorm2d(3)(juanji.tensor(np.ones((2, 3, 2, 2), np.float64))).dtype == \
        np.float64
    assert juanji.tensor(np.arange(3)).dtype == np.int64  # integer tensors themselves are fine


# ---- binary cross-entropy targets ----------------------------------------------------------------
@pytest.mark.parametrize("loss", [F.binary_cross_entropy, F.binary_cross_entropy_with_logits],
                         ids=["bce", "bce_with_logits"])
@pytest.mark.parametrize("target, found", [
    ([0.0, 2.0, -1.0], r"values in \[-1.0, 2.0\]"),
    ([0.0, 255.0, 1.0], r"values in \[0.0, 255.0\]"),
    ([0.5, float("nan"), 1.0], r"values in \[0.5, 1.0\] and nan"),
])
def test_bce_targets_outside_zero_one_raise_naming_target_and_range(loss, target, found):
    x = juanji.tensor(np.full(3, 0.5, np.float32))
    with pytest.raises(ValueError, match=r"expects every target in \[0, 1\]; got target " + found):
        loss(x, juanji.tensor(np.array(target, np.float32)))


def test_bce_layers_refuse_targets_outside_zero_one_and_torch_bce_does_too():
    x = juanji.tensor(np.full(2, 0.5, np.float32))
    for layer in (nn.BCELoss(), nn.BCEWithLogitsLoss()):
        with pytest.raises(ValueError, match="target"):
            layer(x, juanji.tensor(np.array([1.0, 2.0], np.float32)))
    with pytest.raises(RuntimeError, match="between 0 and 1"):
        torch.nn.functional.binary_cross_entropy(torch.full((2,), 0.5), torch.tensor([1.0, 2.0]))


def test_bce_accepts_soft_targets_inside_zero_one():
    x = juanji.tensor(np.array([0.2, 0.7], np.float32))
    y = np.array([0.0, 0.3], np.float32)
    expected = torch.nn.functional.binary_cross_entropy(torch.from_numpy(x.data),
                                                        torch.from_numpy(y))
    np.testing.assert_allclose(F.binary_cross_entropy(x, juanji.tensor(y)).item(),
                               expected.item(), rtol=1e-6)


# ---- Flatten -------------------------------------------------------------------------------------
@pytest.mark.parametrize("start, end, name", [(5, -1, "start_dim=5"), (1, 7, "end_dim=7"),
                                              (-5, -1, "start_dim=-5")])
def test_flatten_dims_out_of_range_raise_like_torch(start, end, name):
    x = juanji.tensor(np.zeros((2, 3, 4, 4), np.float32))
    with pytest.raises(IndexError, match=rf"{name} for a tensor of rank 4 \(expected to be in "
                                         rf"range of \[-4, 3\]\)"):
        nn.Flatten(start, end)(x)
    with pytest.raises(IndexError, match="Dimension out of range"):
        torch.nn.Flatten(start, end)(torch.zeros(2, 3, 4, 4))


def test_flatten_of_a_one_dimensional_input_says_the_rank():
    with pytest.raises(IndexError, match="start_dim=1 for a tensor of rank 1"):
        nn.Flatten()(juanji.tensor(np.zeros(3, np.float32)))


# ---- sizes that would not fit in memory ----------------------------------------------------------
def _image():
    return juanji.tensor(np.ones((1, 1, 2, 2), np.float32))


@pytest.mark.parametrize("call, what", [
    (lambda: F.pad(_image(), (10**6,) * 4), r"pad=\(1000000, 1000000, 1000000, 1000000\)"),
    (lambda: F.pad(_image(), (10**6,) * 4, mode="replicate"), r"pad=\("),
    (lambda: nn.Conv2d(1, 1, 3, padding=10**6)(_image()), r"padding=\(1000000, 1000000\)"),
    (lambda: nn.Conv2d(1, 1, 3, padding=10**6, padding_mode="replicate")(_image()), r"pad=\("),
    (lambda: F.conv1d(juanji.tensor(np.ones((1, 1, 2), np.float32)),
                      np.ones((1, 1, 1), np.float32), padding=10**13), r"padding="),
    (lambda: nn.ConvTranspose2d(1, 1, 3, stride=10**6)(_image()), r"stride=\(1000000, 1000000\)"),
    (lambda: nn.ConvTranspose2d(1, 1, 3, dilation=10**6)(_image()), r"dilation=\(1000000"),
    (lambda: F.interpolate(_image(), scale_factor=1e6), r"scale_factor=1000000.0"),
    (lambda: nn.Upsample(size=(10**6, 10**6))(_image()), r"size=\(1000000, 1000000\)"),
    (lambda: nn.AdaptiveAvgPool2d(10**6)(_image()), r"output_size=\(1000000, 1000000\)"),
    (lambda: nn.AdaptiveMaxPool1d(10**13)(juanji.tensor(np.ones((1, 1, 2), np.float32))),
     r"output_size="),
    (lambda: F.max_unpool2d(_image(), juanji.tensor(np.zeros((1, 1, 2, 2), np.int64)), 10**6),
     r"kernel_size=\(1000000, 1000000\)"),
    (lambda: _image().expand(10**6, 10**6, 2, 2), r"expand to \(1000000, 1000000, 2, 2\)"),
])
def test_size_parameters_that_would_not_fit_raise_before_allocating(call, what):
    with pytest.raises(ValueError, match=rf"{what}.* would make a [0-9x]+ output "
                                         rf"\([0-9.]+ [KMGTP]iB\); have "):
        call()


@pytest.mark.parametrize("make, what", [
    (lambda: nn.Conv2d(3, 64, 10**6), "in_channels=3, out_channels=64, kernel_size=1000000"),
    (lambda: nn.ConvTranspose2d(3, 64, 10**6), "kernel_size=1000000"),
    (lambda: nn.Linear(10**7, 10**7), "in_features=10000000, out_features=10000000"),
    (lambda: nn.BatchNorm2d(10**13), "num_features=10000000000000"),
    (lambda: nn.LayerNorm((10**6, 10**6)), r"normalized_shape=\(1000000, 1000000\)"),
])
def test_layer_constructors_check_their_weight_size_before_allocating(make, what):
    with pytest.raises(ValueError, match=f"{what} would make a .* weight"):
        make()


# ---- other shapes and values ---------------------------------------------------------------------
def test_linear_refuses_a_zero_dimensional_input():
    with pytest.raises(ValueError, match="linear expects input with 3 features"):
        nn.Linear(3, 2)(juanji.tensor(np.float32(1.0)))


def test_interpolate_refuses_an_infinite_scale():
    with pytest.raises(ValueError, match="scale_factor must be finite; got inf"):
        F.interpolate(_image(), scale_factor=float("inf"))
