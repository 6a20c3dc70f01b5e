"""conv_transpose2d / conv_transpose1d / ConvTranspose2d / ConvTranspose1d: PyTorch parity
(forward, input, weight and bias gradients) over a grid, the output_size argument, float64
gradient checks, the adjoint identity with conv2d, and the error messages."""

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from gradcheck import assert_close, gradcheck, to_torch

import juanji
import juanji.nn as nn
import juanji.nn.functional as F

RTOL, ATOL = 1e-4, 1e-4  # float32 sums in a different order than PyTorch's


def check_parity(ours, theirs, arrays, seed=0):
    jt = [None if a is None else juanji.tensor(a, requires_grad=True) for a in arrays]
    tt = [None if a is None else to_torch(a, requires_grad=True) for a in arrays]
    y, y_ref = ours(*jt), theirs(*tt)
    assert_close(y, y_ref, RTOL, ATOL, msg="forward")
    upstream = np.random.default_rng(seed).standard_normal(y.shape).astype(y.dtype)
    (y * juanji.tensor(upstream)).sum().backward()
    (y_ref * torch.tensor(upstream)).sum().backward()
    for i, (a, b) in enumerate(zip(jt, tt)):
        if a is not None:
            assert_close(a.grad, b.grad, RTOL, ATOL, msg=f"gradient of input {i}")


GRID = [
    # N, C, OC, G, H, W, kernel, stride, padding, output_padding, dilation
    (2, 3, 4, 1, 5, 6, 3, 1, 0, 0, 1),
    (1, 3, 2, 1, 4, 5, 3, 2, 1, 1, 1),  # the classic x2 upsampler
    (2, 4, 6, 2, 3, 4, (2, 3), (3, 2), (1, 0), (2, 1), (1, 1)),  # asymmetric, grouped
    (2, 4, 4, 4, 5, 5, 3, 2, 1, 0, 2),  # depthwise, dilated
    (2, 2, 3, 1, 3, 3, 2, 4, 0, 3, 1),  # stride > kernel: gaps between the scattered blocks
    (1, 2, 2, 1, 4, 4, 3, 1, 0, 1, 2),  # output_padding < dilation (stride 1)
    (2, 3, 5, 1, 4, 3, 1, 1, 0, 0, 1),  # 1x1
    (2, 2, 2, 1, 5, 5, 4, 2, 3, 1, 1),  # padding crops most of the canvas
]


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("case", GRID)
def test_conv_transpose2d_matches_torch(case, bias):
    n, c, oc, g, h, w, k, s, p, op, d = case
    kh, kw = (k, k) if isinstance(k, int) else k
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(shape).astype(np.float32) if shape else None
              for shape in ((n, c, h, w), (c, oc // g, kh, kw), (oc,) if bias else None)]
    check_parity(lambda x, wt, b: F.conv_transpose2d(x, wt, b, s, p, op, g, d),
                 lambda x, wt, b: TF.conv_transpose2d(x, wt, b, s, p, op, g, d), arrays)


def test_conv_transpose2d_unbatched():
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((3, 4, 4)).astype(np.float32), \
        rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    check_parity(lambda x, w: F.conv_transpose2d(x, w, stride=2),
                 lambda x, w: TF.conv_transpose2d(x, w, stride=2), [x, w])


def test_conv_transpose_is_the_adjoint_of_conv():
    """<conv(x), y> == <x, conv_transpose(y)> for the same weight and geometry."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 4, 9, 8))
    w = rng.standard_normal((6, 2, 3, 2))
    kwargs = dict(stride=(2, 3), padding=(1, 1), dilation=(2, 1), groups=2)
    y = F.conv2d(x, w, **kwargs).data
    g = rng.standard_normal(y.shape)
    back = F.conv_transpose2d(g, w, output_padding=(0, 2), **kwargs).data
    assert back.shape == x.shape
    np.testing.assert_allclose((y * g).sum(), (x * back).sum(), rtol=1e-10)


@pytest.mark.parametrize("kwargs", [
    dict(stride=2, padding=1, output_padding=1),
    dict(stride=(1, 2), padding=(0, 1), dilation=2, groups=2),
])
def test_conv_transpose2d_gradcheck(kwargs):
    rng = np.random.default_rng(3)
    x, w, b = rng.standard_normal((2, 4, 3, 3)), rng.standard_normal((4, 3, 3, 2)), \
        rng.standard_normal(3 * kwargs.get("groups", 1))
    gradcheck(lambda x, w, b: F.conv_transpose2d(x, w, b, **kwargs), [x, w, b])


@pytest.mark.parametrize("output_size", [(9, 11), (10, 12), [1, 4, 10, 11]])
def test_conv_transpose2d_layer_output_size(output_size):
    ours = nn.ConvTranspose2d(3, 4, 3, stride=(2, 3), padding=1)
    ref = torch.nn.ConvTranspose2d(3, 4, 3, stride=(2, 3), padding=1)
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(ours.weight.data))
        ref.bias.copy_(torch.tensor(ours.bias.data))
    x = np.random.default_rng(4).standard_normal((1, 3, 5, 4)).astype(np.float32)
    assert_close(ours(x, output_size=output_size), ref(to_torch(x), output_size=output_size),
                 RTOL, ATOL)


def test_conv_transpose2d_layer_shapes():
    layer = nn.ConvTranspose2d(6, 4, 3, groups=2, bias=False)
    assert layer.weight.shape == (6, 2, 3, 3) and layer.bias is None
    y = layer(np.zeros((1, 6, 4, 4), np.float32))
    assert y.shape == (1, 4, 6, 6)


@pytest.mark.parametrize("case", [(2, 3, 4, 1, 7, 3, 2, 1, 1, 1), (1, 4, 4, 2, 5, 2, 3, 0, 2, 1),
                                  (2, 2, 3, 1, 6, 3, 1, 2, 0, 2)])
def test_conv_transpose1d_matches_torch(case):
    n, c, oc, g, length, k, s, p, op, d = case
    rng = np.random.default_rng(5)
    arrays = [rng.standard_normal(shape).astype(np.float32)
              for shape in ((n, c, length), (c, oc // g, k), (oc,))]
    check_parity(lambda x, w, b: F.conv_transpose1d(x, w, b, s, p, op, g, d),
                 lambda x, w, b: TF.conv_transpose1d(x, w, b, s, p, op, g, d), arrays)
    layer = nn.ConvTranspose1d(c, oc, k, s, p, op, g, dilation=d)
    assert layer.weight.shape == (c, oc // g, k)
    ref = torch.nn.ConvTranspose1d(c, oc, k, s, p, op, g, dilation=d)
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(layer.weight.data))
        ref.bias.copy_(torch.tensor(layer.bias.data))
    assert_close(layer(arrays[0]), ref(to_torch(arrays[0])), RTOL, ATOL)


# ---- errors -------------------------------------------------------------------------------

X = np.zeros((1, 4, 3, 3), np.float32)
W = np.zeros((4, 2, 3, 3), np.float32)


@pytest.mark.parametrize("kwargs, match", [
    (dict(stride=2, output_padding=2), "output_padding must be smaller than either stride or "
                                       "dilation; got output_padding=\\(2, 2\\)"),
    (dict(output_padding=1), "output_padding must be smaller"),
    (dict(stride=0), "stride must be >= 1; got 0"),
    (dict(dilation=0), "dilation must be >= 1; got 0"),
    (dict(padding=-1), "padding must be >= 0; got -1"),
    (dict(padding=3), "padding=\\(3, 3\\) crops the whole output height"),
    (dict(groups=3), "groups must divide in_channels; got in_channels=4, groups=3"),
])
def test_conv_transpose2d_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        F.conv_transpose2d(X, W, **kwargs)


def test_conv_transpose2d_layer_errors():
    with pytest.raises(ValueError, match="output_padding must be smaller than either stride"):
        nn.ConvTranspose2d(4, 4, 3, stride=2, output_padding=2)
    with pytest.raises(ValueError, match="padding_mode must be 'zeros' for ConvTranspose2d"):
        nn.ConvTranspose2d(4, 4, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match="padding must be an int or a tuple"):
        nn.ConvTranspose2d(4, 4, 3, padding="same")
    with pytest.raises(ValueError, match="output_size 12 is not reachable; it must be between "
                                         "7 and 8"):
        nn.ConvTranspose2d(4, 2, 3, stride=2)(X, output_size=(12, 7))
    with pytest.raises(ValueError, match="input channels = weight.shape\\[0\\] = 4"):
        F.conv_transpose2d(np.zeros((1, 3, 3, 3), np.float32), W)
