"""interpolate / Upsample / pad / padding layers / pixel_shuffle: PyTorch parity (forward and
input gradient) over grids of sizes and scale factors chosen to hit PyTorch's float32 index
rules, float64 gradient checks, and the error messages."""

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from gradcheck import assert_close, gradcheck, to_torch

import juanji
import juanji.nn as nn
import juanji.nn.functional as F
from juanji.ops.resize import linear_index, nearest_index

RTOL, ATOL = 1e-5, 1e-6


def check_parity(ours, theirs, x, seed=0, rtol=RTOL, atol=ATOL):
    xj, xt = juanji.tensor(x, requires_grad=True), to_torch(x, requires_grad=True)
    y, y_ref = ours(xj), theirs(xt)
    assert_close(y, y_ref, rtol, atol, msg="forward")
    upstream = np.random.default_rng(seed).standard_normal(y.shape).astype(y.dtype)
    (y * juanji.tensor(upstream)).sum().backward()
    (y_ref * torch.tensor(upstream)).sum().backward()
    assert_close(xj.grad, xt.grad, rtol, atol, msg="input gradient")


def _x(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


RESIZES = [
    dict(scale_factor=2), dict(scale_factor=3), dict(scale_factor=1.7), dict(scale_factor=0.6),
    dict(scale_factor=(0.5, 2.5)), dict(scale_factor=1 / 3), dict(scale_factor=1.0),
    dict(scale_factor=1.01), dict(scale_factor=2.3, recompute_scale_factor=True),
    dict(size=(5, 13)), dict(size=(14, 3)), dict(size=1), dict(size=(7, 7)), dict(size=(21, 9)),
]


@pytest.mark.parametrize("mode", ["nearest", "nearest-exact", "bilinear"])
@pytest.mark.parametrize("args", RESIZES)
def test_interpolate_2d_matches_torch(mode, args):
    check_parity(lambda x: F.interpolate(x, mode=mode, **args),
                 lambda x: TF.interpolate(x, mode=mode, **args), _x((2, 3, 7, 9)))


@pytest.mark.parametrize("args", RESIZES)
def test_interpolate_bilinear_align_corners_matches_torch(args):
    check_parity(lambda x: F.interpolate(x, mode="bilinear", align_corners=True, **args),
                 lambda x: TF.interpolate(x, mode="bilinear", align_corners=True, **args),
                 _x((1, 2, 7, 9)))


@pytest.mark.parametrize("mode", ["nearest", "nearest-exact", "linear"])
@pytest.mark.parametrize("args", [dict(scale_factor=2), dict(scale_factor=0.7),
                                  dict(size=17), dict(size=4)])
def test_interpolate_1d_matches_torch(mode, args):
    check_parity(lambda x: F.interpolate(x, mode=mode, **args),
                 lambda x: TF.interpolate(x, mode=mode, **args), _x((2, 3, 9)))


@pytest.mark.parametrize("in_size, out_size, scale", [
    (7, 12, None), (7, 12, 12 / 7), (10, 3, 0.3), (5, 15, 3.0), (9, 20, 2.3), (13, 6, None)])
def test_source_indices_match_torch_on_a_ramp(in_size, out_size, scale):
    """Gather a ramp 0..in-1: the output is exactly the source index PyTorch picked."""
    ramp = torch.arange(in_size, dtype=torch.float32).view(1, 1, in_size)
    kwargs = dict(size=out_size) if scale is None else dict(scale_factor=scale)
    for mode, exact in (("nearest", False), ("nearest-exact", True)):
        expected = TF.interpolate(ramp, mode=mode, **kwargs)[0, 0].numpy()
        np.testing.assert_array_equal(nearest_index(in_size, out_size, scale, exact), expected)
    i0, i1, w0, w1 = linear_index(in_size, out_size, scale)
    expected = TF.interpolate(ramp, mode="linear", **kwargs)[0, 0].numpy()
    # PyTorch blends as fma(x[i0], w0, x[i1] * w1); emulated exactly in float64
    blended = (i0 * w0.astype(np.float64) + (i1 * w1).astype(np.float32)).astype(np.float32)
    np.testing.assert_array_equal(blended, expected)


@pytest.mark.parametrize("fn", [
    lambda x: F.interpolate(x, scale_factor=2.5, mode="nearest"),
    lambda x: F.interpolate(x, size=(3, 7), mode="nearest-exact"),
    lambda x: F.interpolate(x, scale_factor=(1.5, 0.7), mode="bilinear"),
    lambda x: F.interpolate(x, size=(7, 3), mode="bilinear", align_corners=True),
], ids=["nearest", "nearest-exact", "bilinear", "bilinear-aligned"])
def test_interpolate_gradcheck(fn):
    gradcheck(fn, [np.random.default_rng(0).standard_normal((1, 2, 4, 5))])


def test_upsample_layers_match_torch():
    x = _x((2, 3, 5, 6))
    cases = [(nn.Upsample(scale_factor=2), torch.nn.Upsample(scale_factor=2)),
             (nn.Upsample(size=(7, 9), mode="bilinear"),
              torch.nn.Upsample(size=(7, 9), mode="bilinear")),
             (nn.Upsample(scale_factor=1.5, mode="bilinear", align_corners=True),
              torch.nn.Upsample(scale_factor=1.5, mode="bilinear", align_corners=True)),
             (nn.UpsamplingNearest2d(scale_factor=3), torch.nn.UpsamplingNearest2d(scale_factor=3)),
             (nn.UpsamplingBilinear2d(size=(8, 11)), torch.nn.UpsamplingBilinear2d(size=(8, 11)))]
    for ours, ref in cases:
        assert_close(ours(x), ref(to_torch(x)), RTOL, ATOL, msg=repr(ours))


@pytest.mark.parametrize("r", [1, 2, 3])
def test_pixel_shuffle_round_trip_matches_torch(r):
    x = _x((2, 2 * r * r, 3, 4))
    check_parity(lambda x: F.pixel_shuffle(x, r), lambda x: TF.pixel_shuffle(x, r), x)
    y = _x((2, 3, 3 * r, 2 * r))
    check_parity(lambda y: F.pixel_unshuffle(y, r), lambda y: TF.pixel_unshuffle(y, r), y)
    assert_close(nn.PixelShuffle(r)(x), torch.nn.PixelShuffle(r)(to_torch(x)))
    assert_close(nn.PixelUnshuffle(r)(y), torch.nn.PixelUnshuffle(r)(to_torch(y)))
    assert_close(F.pixel_unshuffle(F.pixel_shuffle(x, r), r), to_torch(x))
    unbatched = _x((r * r, 2, 2))
    assert_close(F.pixel_shuffle(unbatched, r), TF.pixel_shuffle(to_torch(unbatched), r))


def test_pixel_shuffle_gradcheck():
    x = np.random.default_rng(0).standard_normal((1, 8, 2, 3))
    gradcheck(lambda x: F.pixel_shuffle(x, 2), [x])
    gradcheck(lambda x: F.pixel_unshuffle(x, 2), [x.reshape(1, 2, 4, 6)])


# ---- pad ----------------------------------------------------------------------------------

PADS_2D = [(1, 2, 3, 0), (0, 0, 0, 0), (-1, 2, 1, -2), (3, -3, -2, 4), (4, 4, 5, 5),
           (-4, 1, 0, -6)]


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("pad", PADS_2D + [(2, 1), (-3, 2)])
def test_pad_matches_torch(mode, pad):
    x = _x((2, 3, 7, 6))
    try:
        TF.pad(to_torch(x), pad, mode=mode)
    except RuntimeError:  # PyTorch refuses this one: so must juanji
        with pytest.raises(ValueError):
            F.pad(x, pad, mode=mode)
        return
    check_parity(lambda x: F.pad(x, pad, mode=mode), lambda x: TF.pad(x, pad, mode=mode), x)


@pytest.mark.parametrize("pad, value", [((1, 2, 0, 1, 2, 0), 0.5), ((1, 1, 1, 1, 1, 1, 1, 1), -2),
                                        ((0, 0, -1, 2), None)])
def test_constant_pad_any_axes_matches_torch(pad, value):
    check_parity(lambda x: F.pad(x, pad, value=value), lambda x: TF.pad(x, pad, value=value),
                 _x((2, 3, 4, 5)))


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_pad_3d_and_1d_non_constant_match_torch(mode):
    check_parity(lambda x: F.pad(x, (1, 2), mode=mode), lambda x: TF.pad(x, (1, 2), mode=mode),
                 _x((2, 3, 5)))
    check_parity(lambda x: F.pad(x, (1, 2, 2, 1, 1, 0), mode=mode),
                 lambda x: TF.pad(x, (1, 2, 2, 1, 1, 0), mode=mode), _x((1, 2, 4, 5, 3)))


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
def test_pad_gradcheck(mode):
    gradcheck(lambda x: F.pad(x, (2, -1, 1, 3), mode=mode),
              [np.random.default_rng(0).standard_normal((1, 2, 4, 5))])


def test_padding_layers_match_torch():
    x = _x((2, 3, 5, 6))
    cases = [(nn.ZeroPad2d(2), torch.nn.ZeroPad2d(2)),
             (nn.ZeroPad2d((1, 0, 2, 3)), torch.nn.ZeroPad2d((1, 0, 2, 3))),
             (nn.ConstantPad2d((1, 2, 0, 1), 3.5), torch.nn.ConstantPad2d((1, 2, 0, 1), 3.5)),
             (nn.ReflectionPad2d((2, 1, 3, 0)), torch.nn.ReflectionPad2d((2, 1, 3, 0))),
             (nn.ReplicationPad2d(3), torch.nn.ReplicationPad2d(3))]
    for ours, ref in cases:
        assert_close(ours(x), ref(to_torch(x)), msg=repr(ours))
    assert nn.ReflectionPad2d(1).padding == (1, 1, 1, 1)  # PyTorch's (left, right, top, bottom)


# ---- errors -------------------------------------------------------------------------------

X = np.zeros((1, 2, 4, 5), np.float32)


@pytest.mark.parametrize("call, match", [
    (lambda: F.interpolate(X), "exactly one of size or scale_factor; got size=None, "
                               "scale_factor=None"),
    (lambda: F.interpolate(X, size=4, scale_factor=2), "exactly one of size or scale_factor"),
    (lambda: F.interpolate(X, scale_factor=2, align_corners=True),
     "align_corners option can only be set with the interpolating modes"),
    (lambda: F.interpolate(X, scale_factor=2, mode="area"), "mode='area' is not "
                                                            "implemented"),
    (lambda: F.interpolate(X[0], scale_factor=2, mode="bicubic"), "mode='bicubic' needs a 4-D"),
    (lambda: F.interpolate(X, scale_factor=2, mode="cubic"), "mode must be one of"),
    (lambda: F.interpolate(X, scale_factor=2, mode="linear"), "mode='linear' needs a 3-D input"),
    (lambda: F.interpolate(X, scale_factor=0), "scale_factor must be a positive number; got 0"),
    (lambda: F.interpolate(X, scale_factor=0.1), "gives an empty output"),
    (lambda: F.interpolate(X, size=(2, 3, 4)), "size must have 2 entries"),
    (lambda: F.interpolate(X, size=0), "size must be >= 1; got 0"),
    (lambda: F.interpolate(X, size=3, recompute_scale_factor=True), "recompute_scale_factor is "
                                                                     "not meaningful"),
    (lambda: F.interpolate(np.zeros((2, 3)), size=3),
     "expects a \\(N, C, L\\) or \\(N, C, H, W\\)"),
    (lambda: nn.Upsample(), "exactly one of size or scale_factor"),
    (lambda: nn.Upsample(scale_factor=2, align_corners=False), "align_corners option"),
    (lambda: F.pad(X, (1, 2, 3)), "even number of ints"),
    (lambda: F.pad(X, (1, 1), mode="mirror"), "mode must be one of"),
    (lambda: F.pad(X, (1, 1), mode="reflect"), "pads the last 1, 2 or 3 axes of an input with 1 "
                                               "or 2 more axes"),
    (lambda: F.pad(X, (5, 0, 0, 0), mode="reflect"), "reflect padding must be smaller than the "
                                                     "padded axis; got pad \\(5, 0\\)"),
    (lambda: F.pad(X, (6, 0, 0, 0), mode="circular"), "circular padding must be at most"),
    (lambda: F.pad(X, (-6, 0)), "crops more than the input size 5"),
    (lambda: F.pixel_shuffle(X, 2), "divisible by upscale_factor\\*\\*2 = 4; got 2 channels"),
    (lambda: F.pixel_unshuffle(X, 2), "divisible by downscale_factor=2; got 4x5"),
    (lambda: F.pixel_shuffle(X, 0), "upscale_factor must be >= 1; got 0"),
    (lambda: nn.ZeroPad2d((1, 2, 3)), "padding must be an int or 4 ints"),
])
def test_resize_errors_name_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()
