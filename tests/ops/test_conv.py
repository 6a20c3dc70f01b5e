"""conv2d / conv1d / Conv2d / Conv1d / DepthwiseSeparableConv2d: PyTorch parity (forward and
the input, weight and bias gradients) over a parameter grid, float64 gradient checks of every
code path (im2col, 1x1 GEMM, depthwise), padding modes, and the error messages."""

import collections

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from gradcheck import assert_close, gradcheck, to_torch

import juanji
import juanji.nn as nn
import juanji.nn.functional as F
from juanji.ops import compiled, kernels
from juanji.ops import conv as conv_ops

# float32 sums of up to C*KH*KW products in a different order than PyTorch's
RTOL, ATOL = 1e-4, 1e-4


def check_parity(ours, theirs, arrays, seed=0, rtol=RTOL, atol=ATOL):
    """ours(*juanji tensors) vs theirs(*torch tensors): outputs, then every input's gradient
    under the same random upstream gradient. Entries that are None are passed through."""
    jt = [None if a is None else juanji.tensor(a, requires_grad=True) for a in arrays]
    tt = [None if a is None else to_torch(a, requires_grad=True) for a in arrays]
    y, y_ref = ours(*jt), theirs(*tt)
    assert_close(y, y_ref, rtol, atol, msg="forward")
    upstream = np.random.default_rng(seed).standard_normal(y.shape).astype(y.dtype)
    (y * juanji.tensor(upstream)).sum().backward()
    (y_ref * torch.tensor(upstream)).sum().backward()
    for i, (a, b) in enumerate(zip(jt, tt)):
        if a is not None:
            assert_close(a.grad, b.grad, rtol, atol, msg=f"gradient of input {i}")


def _arrays(rng, *shapes):
    return [None if s is None else rng.standard_normal(s).astype(np.float32) for s in shapes]


CONV2D_GRID = [
    # N, C, OC, G, H, W, kernel, stride, padding, dilation
    (2, 3, 4, 1, 7, 9, 3, 1, 1, 1),  # odd sizes, 'standard' 3x3
    (1, 3, 5, 1, 8, 8, (2, 3), (2, 1), (1, 0), (1, 2)),  # batch 1, asymmetric everything
    (2, 4, 6, 2, 9, 7, 3, 3, 0, 1),  # grouped, stride = kernel
    (2, 4, 4, 1, 11, 10, 2, 3, 1, 1),  # stride > kernel
    (2, 6, 6, 6, 7, 8, 3, 1, 1, 1),  # depthwise
    (2, 4, 12, 4, 7, 6, (3, 2), (1, 2), (2, 1), (2, 1)),  # depthwise, multiplier 3
    (3, 5, 7, 1, 6, 5, 1, 1, 0, 1),  # 1x1 direct GEMM path
    (2, 6, 4, 2, 6, 5, 1, 1, 0, 1),  # grouped 1x1
    (2, 4, 6, 1, 9, 9, 1, 2, 0, 1),  # strided 1x1 (window path)
    (1, 2, 3, 1, 5, 6, 3, 1, "same", 2),  # 'same' with dilation
    (2, 3, 2, 1, 6, 7, (2, 4), 1, "same", 1),  # 'same' with even kernels: extra cell after
    (2, 3, 2, 1, 6, 7, (3, 3), 1, "valid", 1),
    (1, 1, 1, 1, 3, 3, 3, 1, 0, 1),  # kernel = input
    (2, 3, 4, 1, 6, 5, 2, 1, 2, 1),  # stride 1, padding beyond the kernel's reach
    (2, 4, 3, 1, 7, 6, (3, 2), 1, (2, 1), (2, 1)),  # OC <= C: input gradient as a conv
    (2, 1, 4, 1, 9, 12, 3, 1, 1, 1),  # 1 -> 4 channels: the compiled direct kernel
    (2, 2, 3, 1, 8, 15, (3, 2), 1, (1, 0), (1, 2)),  # direct, dilated, asymmetric
    (2, 1, 12, 1, 9, 12, 3, 1, 1, 1),  # one input channel: channels-first columns
    (2, 2, 3, 1, 8, 15, (3, 2), (2, 1), (1, 0), (1, 2)),  # channels-first, dilated
    (2, 3, 4, 1, 9, 21, 3, 2, 1, 1),  # a 3x3 stride-2 RGB stem: channels-first at stride 2
]


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("case", CONV2D_GRID)
@pytest.mark.parametrize("rebuild_columns", [False, True])
def test_conv2d_matches_torch(case, bias, rebuild_columns, monkeypatch):
    if rebuild_columns:  # backward rebuilds the columns from the input, as for big layers
        monkeypatch.setattr(conv_ops, "_KEEP_COLUMNS_BYTES", 0)
    n, c, oc, g, h, w, k, s, p, d = case
    kh, kw = (k, k) if isinstance(k, int) else k
    rng = np.random.default_rng(0)
    arrays = _arrays(rng, (n, c, h, w), (oc, c // g, kh, kw), (oc,) if bias else None)
    check_parity(lambda x, wt, b: F.conv2d(x, wt, b, s, p, d, g),
                 lambda x, wt, b: TF.conv2d(x, wt, b, s, p, d, g), arrays)


# the tests of what only the compiled path does (numba missing, or JUANJI_COMPILED=0: skipped)
needs_compiled = pytest.mark.skipif(compiled.njit is None, reason="the compiled path is off")


def test_conv2d_paths_are_taken():
    """The fast paths the grid relies on are really used (else they go untested)."""
    rng = np.random.default_rng(0)
    cases = {"pointwise": ((2, 4, 5, 5), (6, 4, 1, 1), 1, 1),
             "depthwise": ((2, 4, 5, 5), (8, 1, 3, 3), 1, 4),
             "im2col": ((2, 4, 5, 5), (6, 2, 3, 3), 1, 2),
             "channels_first": ((2, 1, 5, 9), (12, 1, 3, 3), 1, 1),
             "direct": ((2, 1, 5, 9), (6, 1, 3, 3), 1, 1),
             "channels_first stride 2": ((2, 3, 9, 21), (4, 3, 3, 3), 2, 1)}
    if compiled.njit is None:  # the direct path is the compiled one's
        cases["channels_first direct"] = cases.pop("direct")
    for path, (xs, ws, s, g) in cases.items():
        fn = conv_ops.Conv2d()
        fn.run(rng.standard_normal(xs), rng.standard_normal(ws), None, stride=(s, s),
               padding=((0, 0), (0, 0)), dilation=(1, 1), groups=g)
        assert fn.path == path.split()[0]


@pytest.mark.parametrize("channels, stride, padding, as_conv", [
    ((4, 4), 1, 1, True),  # OC <= C at stride 1: the flipped-kernel convolution
    ((4, 3), 1, 2, True),
    ((3, 6), 1, 1, False),  # a widening layer: the per-tap scatter
    ((4, 4), 2, 1, False),  # strided
    ((4, 4), 1, 3, False),  # padding beyond the kernel's reach
])
def test_conv2d_input_gradient_route(channels, stride, padding, as_conv, monkeypatch):
    """The input gradient takes the route chosen for the layer's shape (both are in the grid)."""
    calls = []
    scatter = conv_ops.conv_input_grad_nhwc
    monkeypatch.setattr(conv_ops, "conv_input_grad_nhwc",
                        lambda *a, **k: calls.append("scatter") or scatter(*a, **k))
    c, oc = channels
    rng = np.random.default_rng(3)
    x = juanji.tensor(rng.standard_normal((2, c, 6, 6)), requires_grad=True)
    w = juanji.tensor(rng.standard_normal((oc, c, 3, 3)))
    F.conv2d(x, w, stride=stride, padding=padding).sum().backward()
    assert calls == ([] if as_conv else ["scatter"])


def test_conv2d_unbatched_input():
    rng = np.random.default_rng(1)
    x, w = _arrays(rng, (3, 6, 7), (4, 3, 3, 3))
    check_parity(lambda x, w: F.conv2d(x, w, padding=1), lambda x, w: TF.conv2d(x, w, padding=1),
                 [x, w])


def test_conv2d_keeps_float32_and_float64():
    x = np.ones((1, 2, 4, 4), np.float32)
    assert F.conv2d(x, np.ones((3, 2, 3, 3), np.float32)).dtype == np.float32
    assert F.conv2d(x.astype(np.float64), np.ones((3, 2, 3, 3))).dtype == np.float64


@pytest.mark.parametrize("case", [
    ((2, 3, 6, 7), (4, 3, 3, 2), dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2))),
    ((2, 3, 6, 7), (4, 3, 3, 2), dict(padding=(2, 1), dilation=(1, 2))),
    ((2, 3, 6, 7), (4, 3, 2, 2), dict(padding=2)),
    ((2, 4, 6, 7), (3, 4, 3, 2), dict(padding=(2, 1), dilation=(1, 2))),  # gx as a conv
    ((2, 1, 5, 11), (3, 1, 3, 3), dict(stride=(2, 1), padding=(0, 1))),  # channels-first
    ((1, 4, 5, 5), (6, 2, 2, 2), dict(padding="same", groups=2)),
    ((2, 4, 5, 6), (4, 1, 3, 3), dict(padding=1, groups=4)),
    ((2, 4, 5, 6), (8, 1, 2, 3), dict(stride=2, groups=4)),
    ((2, 4, 3, 4), (3, 4, 1, 1), dict()),
    ((2, 4, 3, 4), (4, 2, 1, 1), dict(groups=2)),
])
@pytest.mark.parametrize("rebuild_columns", [False, True])
def test_conv2d_gradcheck(case, rebuild_columns, monkeypatch):
    if rebuild_columns:
        monkeypatch.setattr(conv_ops, "_KEEP_COLUMNS_BYTES", 0)
    x_shape, w_shape, kwargs = case
    rng = np.random.default_rng(2)
    x, w, b = (rng.standard_normal(s) for s in (x_shape, w_shape, (w_shape[0],)))
    gradcheck(lambda x, w, b: F.conv2d(x, w, b, **kwargs), [x, w, b])


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("padding, stride, dilation", [
    (1, 1, 1), ((2, 1), (2, 1), 1), ("same", 1, (1, 2)), ("valid", 2, 1), (0, 1, 1)])
def test_conv2d_layer_padding_modes_match_torch(mode, padding, stride, dilation):
    ours = nn.Conv2d(3, 4, (3, 2), stride, padding, dilation, padding_mode=mode)
    ref = torch.nn.Conv2d(3, 4, (3, 2), stride, padding, dilation, padding_mode=mode)
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(ours.weight.data))
        ref.bias.copy_(torch.tensor(ours.bias.data))
    x = np.random.default_rng(3).standard_normal((2, 3, 6, 7)).astype(np.float32)
    xj, xt = juanji.tensor(x, requires_grad=True), to_torch(x, requires_grad=True)
    y, y_ref = ours(xj), ref(xt)
    assert_close(y, y_ref, RTOL, ATOL, msg="forward")
    upstream = np.random.default_rng(4).standard_normal(y.shape).astype(np.float32)
    (y * juanji.tensor(upstream)).sum().backward()
    (y_ref * torch.tensor(upstream)).sum().backward()
    assert_close(xj.grad, xt.grad, RTOL, ATOL, msg="input grad")
    assert_close(ours.weight.grad, ref.weight.grad, RTOL, ATOL, msg="weight grad")
    assert_close(ours.bias.grad, ref.bias.grad, RTOL, ATOL, msg="bias grad")


def test_conv2d_layer_shapes_init_and_state_dict():
    layer = nn.Conv2d(6, 8, 3, groups=2, bias=False)
    assert layer.weight.shape == (8, 3, 3, 3) and layer.bias is None
    assert list(layer.state_dict()) == ["weight"]
    assert layer.kernel_size == (3, 3) and layer.stride == (1, 1) and layer.padding == (0, 0)
    bound = 1 / np.sqrt(3 * 9)  # kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(fan_in))
    assert np.abs(layer.weight.data).max() <= bound
    assert layer.weight.data.dtype == np.float32
    assert "groups=2" in repr(layer) and "bias=False" in repr(layer)


CONV1D_GRID = [
    (2, 3, 4, 1, 11, 3, 1, 1, 1),
    (1, 4, 6, 2, 10, 4, 2, 2, 1),
    (2, 4, 4, 4, 9, 3, 1, "same", 2),
    (2, 3, 5, 1, 8, 1, 1, 0, 1),
    (2, 3, 5, 1, 13, 2, 3, 0, 3),
]


@pytest.mark.parametrize("case", CONV1D_GRID)
def test_conv1d_matches_torch(case):
    n, c, oc, g, length, k, s, p, d = case
    arrays = _arrays(np.random.default_rng(5), (n, c, length), (oc, c // g, k), (oc,))
    check_parity(lambda x, w, b: F.conv1d(x, w, b, s, p, d, g),
                 lambda x, w, b: TF.conv1d(x, w, b, s, p, d, g), arrays)


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
def test_conv1d_layer_matches_torch(mode):
    ours = nn.Conv1d(3, 5, 3, stride=2, padding=2, padding_mode=mode)
    ref = torch.nn.Conv1d(3, 5, 3, stride=2, padding=2, padding_mode=mode)
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(ours.weight.data))
        ref.bias.copy_(torch.tensor(ours.bias.data))
    x = np.random.default_rng(6).standard_normal((2, 3, 9)).astype(np.float32)
    assert ours.weight.shape == (5, 3, 3)
    assert_close(ours(x), ref(to_torch(x)), RTOL, ATOL)


def test_conv1d_gradcheck():
    rng = np.random.default_rng(7)
    x, w, b = rng.standard_normal((2, 4, 7)), rng.standard_normal((4, 2, 3)), rng.standard_normal(4)
    gradcheck(lambda x, w, b: F.conv1d(x, w, b, stride=2, padding=1, groups=2), [x, w, b])


def test_depthwise_separable_block():
    block = nn.DepthwiseSeparableConv2d(4, 6, 3, stride=2, padding=1)
    names = [name for name, _ in block.named_parameters()]
    assert names == ["depthwise.weight", "pointwise.weight"]
    assert block.depthwise.weight.shape == (4, 1, 3, 3) and block.depthwise.groups == 4
    assert block.pointwise.weight.shape == (6, 4, 1, 1)
    assert sum(p.numel() for p in block.parameters()) == 4 * 9 + 4 * 6
    x = np.random.default_rng(8).standard_normal((2, 4, 7, 7)).astype(np.float32)
    ref = TF.conv2d(TF.conv2d(to_torch(x), to_torch(block.depthwise.weight), None, 2, 1,
                              groups=4), to_torch(block.pointwise.weight))
    assert_close(block(x), ref, RTOL, ATOL)
    with_bias = nn.DepthwiseSeparableConv2d(4, 6, 3, bias=True)
    assert [n for n, _ in with_bias.named_parameters()] == [
        "depthwise.weight", "depthwise.bias", "pointwise.weight", "pointwise.bias"]


# ---- errors -------------------------------------------------------------------------------

X = np.zeros((1, 4, 5, 5), np.float32)
W = np.zeros((6, 4, 3, 3), np.float32)


@pytest.mark.parametrize("kwargs, match", [
    (dict(stride=0), "stride must be >= 1; got 0"),
    (dict(stride=(1, 0)), "stride must be >= 1"),
    (dict(dilation=0), "dilation must be >= 1; got 0"),
    (dict(padding=-1), "padding must be >= 0; got -1"),
    (dict(padding="full"), "padding must be an int, a pair, 'same' or 'valid'"),
    (dict(padding="same", stride=2), "padding='same' needs stride 1"),
    (dict(groups=3), "input channels = weight.shape\\[1\\] \\* groups"),
    (dict(groups=0), "groups must be >= 1"),
    (dict(dilation=3), "kernel height 3 \\(dilated span 7\\) is larger than the padded input "
                       "height 5"),
])
def test_conv2d_errors_name_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        F.conv2d(X, W, **kwargs)


def test_conv2d_other_errors():
    with pytest.raises(ValueError, match="expects a \\(N, C, H, W\\) or \\(C, H, W\\) input; "
                                         "got shape \\(4, 5\\)"):
        F.conv2d(np.zeros((4, 5), np.float32), W)
    with pytest.raises(ValueError, match="groups must divide out_channels; got out_channels=6, "
                                         "groups=4"):
        F.conv2d(np.zeros((1, 4, 5, 5), np.float32), np.zeros((6, 1, 3, 3), np.float32),
                 groups=4)
    with pytest.raises(ValueError, match="kernel width 7"):
        F.conv2d(X, np.zeros((6, 4, 3, 7), np.float32), padding=(0, 0))
    with pytest.raises(ValueError, match="bias of shape \\(6,\\)"):
        F.conv2d(X, W, np.zeros(5, np.float32))
    with pytest.raises(ValueError, match="3-D weight"):
        F.conv1d(np.zeros((1, 4, 5)), W)


@pytest.mark.parametrize("kwargs, match", [
    (dict(groups=4), "groups must divide in_channels; got in_channels=6, groups=4"),
    (dict(groups=3, out_channels=4), "groups must divide out_channels; got out_channels=4"),
    (dict(stride=0), "stride must be >= 1; got 0"),
    (dict(dilation=(1, 0)), "dilation must be >= 1"),
    (dict(padding=-2), "padding must be >= 0; got -2"),
    (dict(padding_mode="mirror"), "padding_mode must be one of"),
    (dict(padding="same", stride=2), "padding='same' needs stride 1"),
    (dict(padding="full"), "padding must be one of"),
    (dict(kernel_size=0), "kernel_size must be >= 1"),
])
def test_conv2d_layer_errors(kwargs, match):
    args = dict(in_channels=6, out_channels=6, kernel_size=3)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        nn.Conv2d(**args)


@pytest.mark.parametrize("stride, dilation", [(1, 1), (2, 1), (1, 2), (2, 2)])
def test_depthwise_in_bands_of_output_rows_matches_torch(stride, dilation, monkeypatch):
    # tiny blocks: a batch of one splits into bands of one output row each, as a big map does
    monkeypatch.setattr(kernels, "_BLOCK_BYTES", 64)
    rng = np.random.default_rng(3)
    arrays = _arrays(rng, (1, 4, 11, 9), (8, 1, 3, 3), (8,))
    check_parity(lambda x, wt, b: F.conv2d(x, wt, b, stride, 1, dilation, 4),
                 lambda x, wt, b: TF.conv2d(x, wt, b, stride, 1, dilation, 4), arrays)


@pytest.mark.parametrize("trained", ["weight and bias", "bias only", "weight only"])
@pytest.mark.parametrize("rebuild_columns", [False, True])
def test_channels_first_bias_in_the_product_matches_torch(trained, rebuild_columns, monkeypatch):
    """The channels-first path multiplies its bias in as a weight column on a row of ones, and
    takes the bias's gradient from the weight gradient's product; with the weight frozen that
    product does not run and the bias's gradient is the plain sum."""
    if rebuild_columns:
        monkeypatch.setattr(conv_ops, "_KEEP_COLUMNS_BYTES", 0)
    rng = np.random.default_rng(4)
    x, w, b = _arrays(rng, (3, 1, 9, 12), (12, 1, 3, 3), (12,))
    fn = conv_ops.Conv2d()
    jw = juanji.tensor(w, requires_grad=trained != "bias only")
    jb = juanji.tensor(b, requires_grad=trained != "weight only")
    y = fn.run(juanji.tensor(x), jw, jb, stride=(1, 1), padding=((1, 1), (0, 2)),
               dilation=(1, 1), groups=1)
    assert fn.path == "channels_first" and fn.bias_in_product
    tw = to_torch(w, requires_grad=jw.requires_grad)
    tb = to_torch(b, requires_grad=jb.requires_grad)
    y_ref = TF.conv2d(TF.pad(to_torch(x), (0, 2, 1, 1)), tw, tb)
    assert_close(y, y_ref, RTOL, ATOL, msg="forward")
    upstream = rng.standard_normal(y.shape).astype(np.float32)
    (y * juanji.tensor(upstream)).sum().backward()
    (y_ref * torch.tensor(upstream)).sum().backward()
    for ours, theirs, name in ((jw, tw, "weight"), (jb, tb, "bias")):
        if ours.requires_grad:
            assert_close(ours.grad, theirs.grad, RTOL, ATOL, msg=f"{name} grad")
        else:
            assert ours.grad is None


# Winograd's F(2x2, 3x3): the input's 4x4 tiles d, the filters g and the 4x4 products M
# transformed by B^T d B, G g G^T and A^T M A
_BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.float64)
_G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])
_AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.float64)


def _winograd_magnitudes(x, w, padding):
    """Winograd's evaluation with every number, the transforms' included, by its absolute
    value, in float64 -> (N, OC, OH, OW): the scale of its rounding errors. Every product and
    sum of the float32 evaluation is a rounding away from this computation's terms, so the
    error is at most gamma_n times it, n the longest chain of roundings (Higham, Accuracy and
    Stability of Numerical Algorithms, 3.5)."""
    xp = np.pad(np.abs(x).astype(np.float64), ((0, 0), (0, 0), (padding,) * 2, (padding,) * 2))
    oh, ow = xp.shape[2] - 2, xp.shape[3] - 2
    th, tw = (oh + 1) // 2, (ow + 1) // 2
    xp = np.pad(xp, ((0, 0), (0, 0), (0, 2 * th + 2 - xp.shape[2]), (0, 2 * tw + 2 - xp.shape[3])))
    u = np.abs(_G) @ np.abs(w).astype(np.float64) @ np.abs(_G).T  # (OC, C, 4, 4)
    out = np.zeros((x.shape[0], w.shape[0], 2 * th, 2 * tw))
    for i in range(th):
        for j in range(tw):
            d = xp[:, :, 2 * i : 2 * i + 4, 2 * j : 2 * j + 4]  # (N, C, 4, 4)
            v = np.abs(_BT) @ d @ np.abs(_BT).T
            m = np.einsum("ncab,kcab->nkab", v, u)
            out[:, :, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2] = np.abs(_AT) @ m @ np.abs(_AT).T
    return out[:, :, :oh, :ow]


def _winograd_for_small_layers(monkeypatch):
    """Winograd also for layers too small to gain from it, so the tests run fast."""
    monkeypatch.setattr(conv_ops, "_WINOGRAD_TILES", 1)
    monkeypatch.setattr(conv_ops, "_WINOGRAD_WORK", 1)


def _winograd_conv(x, w, b, padding, activation=None):
    """Conv2d under no_grad with Winograd allowed -> (output array, the path it took)."""
    fn = conv_ops.Conv2d()
    with juanji.no_grad():
        y = fn.run(x, w, b, stride=(1, 1), padding=((padding,) * 2,) * 2, dilation=(1, 1),
                   groups=1, activation=activation)
    return y.data, fn.path


@needs_compiled
@pytest.mark.parametrize("n, c, oc, h, w, padding", [
    (2, 32, 48, 9, 11, 1),  # odd output: the last tiles' second row and column dropped
    (1, 40, 32, 12, 10, 0),  # 'valid'
    (2, 32, 32, 7, 8, 2),  # padding beyond the kernel's reach
])
@pytest.mark.parametrize("bias", [True, False])
def test_winograd_is_within_its_error_bound_and_matches_torch(n, c, oc, h, w, padding, bias,
                                                              monkeypatch):
    _winograd_for_small_layers(monkeypatch)
    rng = np.random.default_rng(7)
    x, wt, b = _arrays(rng, (n, c, h, w), (oc, c, 3, 3), (oc,) if bias else None)
    y, path = _winograd_conv(x, wt, b, padding)
    assert path == "winograd"
    exact = TF.conv2d(torch.from_numpy(x).double(), torch.from_numpy(wt).double(),
                      None if b is None else torch.from_numpy(b).double(), padding=padding)
    # the longest chain of roundings: 4 in the filter's transform, 2 in the tile's, the
    # product, C - 1 sums over the channels, 4 in the output transform, the bias
    chain = 4 + 2 + 1 + (c - 1) + 4 + 1
    gamma = chain * 2.0**-24 / (1 - chain * 2.0**-24)
    magnitudes = _winograd_magnitudes(x, wt, padding)
    bound = gamma * (magnitudes + (0 if b is None else np.abs(b)[:, None, None]))
    assert np.all(np.abs(y - exact.numpy()) <= bound)
    assert_close(y, TF.conv2d(to_torch(x), to_torch(wt), None if b is None else to_torch(b),
                              padding=padding), RTOL, ATOL)


@needs_compiled
@pytest.mark.parametrize("activation", ["relu", "hardswish"])
def test_winograd_epilogue_gives_the_bits_of_separate_passes(activation, monkeypatch):
    """Bias and a fused activation applied to each block of output rows: the same bits as the
    bare Winograd conv followed by the bias and the activation op."""
    _winograd_for_small_layers(monkeypatch)
    x, wt, b = _arrays(np.random.default_rng(8), (2, 32, 9, 7), (32, 32, 3, 3), (32,))
    fused, path = _winograd_conv(x, wt, b, 1, activation)
    bare, _ = _winograd_conv(x, wt, None, 1)
    with juanji.no_grad():
        separate = getattr(F, activation)(juanji.tensor(bare + b[:, None, None])).data
    assert path == "winograd"
    np.testing.assert_array_equal(fused, separate)


@needs_compiled
def test_winograd_does_not_depend_on_the_threads(monkeypatch):
    _winograd_for_small_layers(monkeypatch)
    x, wt = _arrays(np.random.default_rng(9), (3, 32, 30, 18), (40, 32, 3, 3))
    runs = []
    for threads in (1, 2, 3):
        monkeypatch.setattr(juanji.backend, "_num_threads", threads)
        y, path = _winograd_conv(x, wt, None, 1)
        assert path == "winograd"
        runs.append(y)
    for y in runs[1:]:
        np.testing.assert_array_equal(y, runs[0])


@needs_compiled
def test_winograd_only_where_it_applies(monkeypatch):
    """Inference on float32 3x3 stride-1 convs of at least 24 channels, 16 tiles and 2^19
    tile-channel products, with the compiled path, unless set_winograd(False); everything
    else takes the direct GEMM, whose bits training sees."""
    rng = np.random.default_rng(10)
    x, wt = _arrays(rng, (2, 32, 32, 32), (32, 32, 3, 3))  # 512 tiles * 32 * 32 = 2^19
    assert _winograd_conv(x, wt, None, 1)[1] == "winograd"
    fn = conv_ops.Conv2d()
    trained = fn.run(x, juanji.tensor(wt, requires_grad=True), None, stride=(1, 1),
                     padding=((1, 1), (1, 1)), dilation=(1, 1), groups=1)
    assert fn.path == "im2col"
    juanji.backend.set_winograd(False)
    try:
        direct, path = _winograd_conv(x, wt, None, 1)
    finally:
        juanji.backend.set_winograd(True)
    assert path == "im2col"
    np.testing.assert_array_equal(direct, trained.data)
    assert _winograd_conv(x.astype(np.float64), wt.astype(np.float64), None, 1)[1] == "im2col"
    assert _winograd_conv(x[:, :16], wt[:, :16], None, 1)[1] != "winograd"  # 16 channels
    assert _winograd_conv(x[:1, :, :30], wt, None, 1)[1] != "winograd"  # 240 tiles
    assert _winograd_conv(x[:1, :, :6, :6], wt, None, 1)[1] != "winograd"  # 9 tiles
    monkeypatch.setattr(compiled, "winograd_tiles", None)  # no numba
    assert _winograd_conv(x, wt, None, 1)[1] == "im2col"
    with pytest.raises(ValueError, match="set_winograd expects True or False; got 1"):
        juanji.backend.set_winograd(1)


@needs_compiled
@pytest.mark.parametrize("x_shape, w_shape, padding, path", [
    ((40, 1, 12, 12), (6, 1, 5, 5), 2, "direct"),  # blocks of samples summed in float64
    ((24, 16, 12, 12), (32, 16, 3, 3), 1, "im2col"),  # register-blocked: blocks of rows
])
def test_compiled_weight_gradients_do_not_depend_on_the_threads(x_shape, w_shape, padding,
                                                                 path, monkeypatch):
    """The compiled weight gradients' blocks are fixed by the shapes and summed in order."""
    gy_shape = (x_shape[0], w_shape[0], x_shape[2], x_shape[3])
    x, w, gy = _arrays(np.random.default_rng(12), x_shape, w_shape, gy_shape)
    grads = []
    for threads in (1, 2, 3):
        monkeypatch.setattr(juanji.backend, "_num_threads", threads)
        fn = conv_ops.Conv2d()
        fn.run(x, juanji.tensor(w, requires_grad=True), None, stride=(1, 1),
               padding=((padding,) * 2,) * 2, dilation=(1, 1), groups=1)
        assert fn.path == path
        grads.append(fn.backward(gy)[1])
    for gw in grads[1:]:
        np.testing.assert_array_equal(gw, grads[0])


@needs_compiled
def test_winograd_reads_channels_last_memory_in_place(monkeypatch):
    """A conv's output (channels-last memory) is tiled in place, its padding read as zeros:
    the same bits as from the NCHW copy."""
    _winograd_for_small_layers(monkeypatch)
    x, wt = _arrays(np.random.default_rng(13), (2, 32, 9, 11), (40, 32, 3, 3))
    x[0, 0, 0, :3] = [-0.0, np.inf, np.nan]
    channels_last = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    for padding in (0, 1, 2):
        (y, path), (y_cl, _) = (_winograd_conv(a, wt, None, padding) for a in (x, channels_last))
        assert path == "winograd"
        np.testing.assert_array_equal(y, y_cl)


# The compiled register-blocked kernels (kernels.direct_nhwc_runs): float32 groups=1 convs with
# up to 96 channels in, a multiple of 16 up to 128 out and at least 8 output columns, forward,
# input gradient (at stride 1 a conv itself) and weight gradient
needs_register_blocked = pytest.mark.skipif(compiled.nhwc_conv is None,
                                            reason="numba is not installed")


def _count_register_blocked(monkeypatch):
    """Count the calls of the two compiled kernels (a Counter by name)."""
    calls = collections.Counter()

    def counting(name, kernel):
        def counted(*args):
            calls[name] += 1
            kernel(*args)
        return counted

    for name in ("nhwc_conv", "nhwc_conv_weight_grad"):
        monkeypatch.setattr(compiled, name, counting(name, getattr(compiled, name)))
    return calls


def _gamma(n):
    """Higham's gamma_n for float32: the relative bound of n successive roundings."""
    return n * 2.0**-24 / (1 - n * 2.0**-24)


REGISTER_BLOCKED_GRID = [
    # N, C, OC, H, W, kernel, stride, padding, dilation; whether the forward, the input
    # gradient (stride 1, OC <= C, C a multiple of 16, padding within reach) and the weight
    # gradient (kernels.direct_grad_runs) run the register-blocked kernels
    (2, 16, 16, 10, 10, 3, 1, 1, 1, True, True, True),  # ResNet-20's first stage
    (2, 12, 32, 9, 13, 3, 1, 1, 1, True, False, True),  # 12 channels, 13 columns: overlaps
    (3, 8, 48, 11, 20, (3, 5), (2, 1), (1, 2), (1, 2), True, False, True),  # strided, dilated
    (2, 16, 32, 12, 17, 3, 2, 1, 1, True, False, True),  # stride 2: the input gradient scatters
    (2, 32, 16, 7, 9, (1, 3), 1, (0, 3), (1, 2), True, True, True),  # padding to the reach
    (2, 32, 16, 7, 9, (1, 3), 1, (0, 5), (1, 2), True, False, True),  # padding beyond it
    (1, 20, 16, 6, 10, 1, 1, 1, 1, True, False, True),  # a padded 1x1 (not the pointwise path)
    (2, 16, 16, 5, 9, (1, 3), 1, (2, 1), 1, True, False, True),  # rows that read padding alone
    (2, 6, 16, 14, 14, 5, 1, 0, 1, True, False, True),  # LeNet-5's second: 6 channels -> 8
    (2, 3, 16, 9, 12, 3, 1, 1, 1, True, False, True),  # ResNet-20's RGB stem
    (2, 8, 30, 9, 12, 3, 1, 1, 1, True, False, False),  # 30 filters padded to 32; dW by BLAS
    (2, 3, 64, 13, 19, 7, 2, 3, 1, True, False, False),  # ResNet-18's stem: dW by BLAS
    (2, 3, 32, 9, 12, 3, 1, 1, 1, False, False, False),  # channels-first columns for both
    (2, 1, 30, 12, 12, 5, 1, 0, 1, False, False, False),  # SimpleConvNet's: the same
]


@needs_register_blocked
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("case", REGISTER_BLOCKED_GRID)
def test_register_blocked_conv_matches_torch(case, bias, monkeypatch):
    calls = _count_register_blocked(monkeypatch)
    n, c, oc, h, w, k, s, p, d, forward, input_grad, weight_grad = case
    kh, kw = (k, k) if isinstance(k, int) else k
    arrays = _arrays(np.random.default_rng(20), (n, c, h, w), (oc, c, kh, kw),
                     (oc,) if bias else None)
    check_parity(lambda x, wt, b: F.conv2d(x, wt, b, s, p, d),
                 lambda x, wt, b: TF.conv2d(x, wt, b, s, p, d), arrays)
    assert calls["nhwc_conv"] == forward + input_grad
    assert calls["nhwc_conv_weight_grad"] == weight_grad


@needs_register_blocked
@pytest.mark.parametrize("case", [c for c in REGISTER_BLOCKED_GRID if c[-3]])  # forward
def test_register_blocked_conv_is_within_its_error_bound(case, monkeypatch):
    """Each output is a chain of C*KH*KW fused multiply-adds and each weight gradient one of
    N*OH*OW (in blocks, then the blocks' sums): within gamma_n of the exact float64 result
    times the sum of the products' magnitudes (Higham, 3.1). In blocks of one output row,
    each padded on its own."""
    calls = _count_register_blocked(monkeypatch)
    monkeypatch.setattr(kernels, "_DIRECT_BLOCK_MACS", 1)
    n, c, oc, h, w, k, s, p, d, _, _, weight_grad_too = case
    kh, kw = (k, k) if isinstance(k, int) else k
    x, wt = _arrays(np.random.default_rng(21), (n, c, h, w), (oc, c, kh, kw))
    fn = conv_ops.Conv2d()
    padding = tuple((q, q) for q in ((p, p) if isinstance(p, int) else p))
    geometry = dict(stride=(s, s) if isinstance(s, int) else s, padding=padding,
                    dilation=(d, d) if isinstance(d, int) else d, groups=1)
    y = fn.run(x, juanji.tensor(wt, requires_grad=True), None, **geometry).data
    gy = np.random.default_rng(22).standard_normal(y.shape).astype(np.float32)
    gw = fn.backward(gy)[1]
    assert calls["nhwc_conv"]
    assert calls["nhwc_conv_weight_grad"] == (n * y.shape[2] if weight_grad_too else 0)

    def exact(a, b, absolute=False):
        a, b = (torch.from_numpy(np.abs(v) if absolute else v).double() for v in (a, b))
        return TF.conv2d(a, b, None, s, p, d).numpy()

    assert np.all(np.abs(y - exact(x, wt)) <= _gamma(c * kh * kw) * exact(x, wt, True))

    def exact_grad(absolute=False):
        xt = torch.from_numpy(np.abs(x) if absolute else x).double().requires_grad_()
        wtt = torch.from_numpy(np.abs(wt) if absolute else wt).double().requires_grad_()
        TF.conv2d(xt, wtt, None, s, p, d).backward(torch.from_numpy(
            np.abs(gy) if absolute else gy).double())
        return wtt.grad.numpy()

    if weight_grad_too:
        chain = y.shape[3] + n * y.shape[2]  # a row's chain, then the rows' sums
        assert np.all(np.abs(gw - exact_grad()) <= _gamma(chain) * exact_grad(True))


@needs_register_blocked
def test_register_blocked_only_where_it_applies(monkeypatch):
    """float32 NumPy arrays, up to 96 channels in, up to 128 out (a multiple of 16, or within
    1/8 of one), >= 8 output columns; everything else takes im2col and BLAS, as does a
    process without numba."""
    calls = _count_register_blocked(monkeypatch)
    rng = np.random.default_rng(24)

    def runs(x_shape, w_shape, dtype=np.float32, trained=False):
        calls.clear()
        x, wt = (rng.standard_normal(s).astype(dtype) for s in (x_shape, w_shape))
        F.conv2d(juanji.tensor(x), juanji.tensor(wt, requires_grad=trained), padding=1)
        return calls["nhwc_conv"] == 1

    assert runs((2, 8, 6, 8), (16, 8, 3, 3))
    assert runs((1, 64, 3, 8), (64, 64, 3, 3))
    assert runs((2, 3, 6, 8), (16, 3, 3, 3), trained=True)  # not channels-first columns
    assert runs((2, 1, 6, 8), (16, 1, 3, 3))
    assert not runs((2, 1, 6, 8), (16, 1, 3, 3), trained=True)  # the columns serve dW too
    assert not runs((2, 8, 6, 8), (16, 8, 3, 3), np.float64)
    assert runs((1, 96, 3, 8), (128, 96, 3, 3))
    assert not runs((1, 104, 3, 8), (16, 104, 3, 3))  # 104 channels in: BLAS gains
    assert runs((2, 8, 6, 8), (30, 8, 3, 3))  # 30 out: the filters padded to 32
    assert not runs((2, 8, 6, 8), (24, 8, 3, 3))  # 24 out: 32 would waste a quarter
    assert not runs((2, 8, 6, 8), (144, 8, 3, 3))  # 144 out
    assert not runs((2, 8, 6, 7), (16, 8, 3, 3))  # 7 columns
    monkeypatch.setattr(compiled, "nhwc_conv", None)  # no numba
    assert not runs((2, 8, 6, 8), (16, 8, 3, 3))


@needs_register_blocked
@pytest.mark.parametrize("kernel, x_shape, w_shape, activation", [
    ("nhwc_conv", (2, 16, 9, 11), (32, 16, 3, 3), "relu"),
    ("nhwc_conv", (2, 16, 9, 11), (32, 16, 3, 3), "hardswish"),
    # the channels-first kernel adds the bias as it stores each sum
    ("nchw_conv", (2, 1, 9, 20), (6, 1, 3, 3), None),
    ("nchw_conv", (2, 1, 9, 20), (6, 1, 3, 3), "relu"),
])
def test_register_blocked_epilogue_gives_the_bits_of_separate_passes(kernel, x_shape, w_shape,
                                                                     activation, monkeypatch):
    """The bias and a fused activation applied to the kernels' output: the rounding of a
    bias pass after the conv, then the activation."""
    calls = []
    compiled_kernel = getattr(compiled, kernel)
    monkeypatch.setattr(compiled, kernel, lambda *a: (calls.append(1), compiled_kernel(*a)))
    x, wt, b = _arrays(np.random.default_rng(25), x_shape, w_shape, (w_shape[0],))

    def conv(bias, act):
        fn = conv_ops.Conv2d()
        with juanji.no_grad():
            return fn.run(x, wt, bias, stride=(1, 1), padding=((1, 1), (1, 1)),
                          dilation=(1, 1), groups=1, activation=act).data

    with juanji.no_grad():
        separate = juanji.tensor(conv(None, None) + b[:, None, None])
        if activation:
            separate = getattr(F, activation)(separate)
    np.testing.assert_array_equal(conv(b, activation), separate.data)
    assert calls


@needs_register_blocked
def test_compiling_the_register_blocked_kernels_leaves_numba_settings_alone():
    from numba.core import config

    before = config.SLP_VECTORIZE, config.LOOP_VECTORIZE
    compiled._slp_kernels.clear()  # compiled again, here
    x, wt = _arrays(np.random.default_rng(26), (1, 8, 4, 8), (16, 8, 1, 1))
    with juanji.no_grad():
        F.conv2d(juanji.tensor(x), juanji.tensor(wt), padding=1)
    assert compiled._slp_kernels and (config.SLP_VECTORIZE, config.LOOP_VECTORIZE) == before


@needs_register_blocked
def test_register_blocked_bits_do_not_depend_on_the_vectors(monkeypatch):
    """Blocks of 32 or 16 output channels (and 8 or 16 input channels in the weight
    gradient), with 512-bit vectors or without: each sum is the same chain of fused
    multiply-adds, so the same bits."""
    x, wt, gy = _arrays(np.random.default_rng(27), (3, 24, 9, 11), (32, 24, 3, 3),
                        (3, 32, 9, 11))

    def conv():
        fn = conv_ops.Conv2d()
        y = fn.run(x, juanji.tensor(wt, requires_grad=True), None, stride=(1, 1),
                   padding=((1, 1), (1, 1)), dilation=(1, 1), groups=1)
        return y.data, fn.backward(gy)[1]

    calls = _count_register_blocked(monkeypatch)
    wide = conv()
    monkeypatch.setattr(compiled, "_lanes", lambda oc: 16)
    narrow_blocks = conv()
    monkeypatch.setattr(compiled, "_slp_kernels", {})  # compiled again, 256-bit vectors
    monkeypatch.setattr(compiled, "_wide", [False])
    narrow_vectors = conv()
    assert calls["nhwc_conv"] == calls["nhwc_conv_weight_grad"] == 3
    for y, gw in (narrow_blocks, narrow_vectors):
        np.testing.assert_array_equal(y, wide[0])
        np.testing.assert_array_equal(gw, wide[1])


# The channels-first register-blocked kernels (compiled.nchw_conv, nchw_conv_weight_grad;
# kernels.nchw_blocked_runs, nchw_grad_runs): float32 stride-1 convs with at most 8 output
# channels on planes at least 16 + the kernel's reach wide. They take the direct path (C * OC
# <= 8: LeNet-5's first), whose padded input is widened for the weight gradient's blocks, and
# the input gradient of widening stride-1 layers with at most 8 channels in (LeNet-5's second)
def _count_channels_first(monkeypatch):
    """Count the calls of the channels-first kernels (a Counter by name)."""
    calls = collections.Counter()
    for name in ("nchw_conv", "direct_conv", "nchw_conv_weight_grad", "direct_conv_weight_grad"):
        kernel = getattr(compiled, name)
        monkeypatch.setattr(compiled, name, lambda *a, name=name, kernel=kernel: (
            calls.update([name]), kernel(*a)))
    return calls


CHANNELS_FIRST_GRID = [
    # N, C, OC, H, W, kernel, padding, dilation; whether the forward, the input gradient and
    # the weight gradient run the register-blocked kernels (in training)
    (3, 1, 6, 28, 28, 5, 2, 1, True, True, True),  # LeNet-5's first
    (2, 1, 6, 9, 12, 3, 1, 1, True, True, True),  # 12 columns: the planes widened with zeros
    (2, 2, 4, 7, 21, (3, 5), (1, 2), (2, 1), True, True, True),  # dilated, asymmetric
    (2, 1, 3, 5, 20, 3, 1, 1, True, True, True),  # an odd number of rows: the last pair
    # overlaps; 20 columns: the second block of 16 too
    (2, 1, 8, 1, 20, 1, 0, 1, False, False, True),  # one row: the plane kernel forward; the
    # input gradient by the per-tap scatter
    (2, 1, 7, 6, 9, 3, 1, 1, True, True, True),  # 7 channels out: the weight gradient's
    # blocks of one channel (7 does not divide into more)
    (2, 6, 16, 14, 14, 5, 0, 1, False, True, False),  # LeNet-5's second: 6 channels in
    (2, 3, 8, 5, 17, 3, 1, (1, 2), False, True, False),
    (2, 6, 16, 10, 10, 5, 3, 1, False, True, False),  # padding within the reach
    (2, 6, 16, 10, 10, 3, 3, 1, False, False, False),  # beyond it: the per-tap scatter
    (2, 12, 16, 8, 9, 3, 1, 1, False, False, False),  # 12 channels in: not a few
]


@needs_register_blocked
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("case", CHANNELS_FIRST_GRID)
def test_channels_first_kernels_match_torch(case, bias, monkeypatch):
    calls = _count_channels_first(monkeypatch)
    n, c, oc, h, w, k, p, d, forward, input_grad, weight_grad = case
    kh, kw = (k, k) if isinstance(k, int) else k
    arrays = _arrays(np.random.default_rng(30), (n, c, h, w), (oc, c, kh, kw),
                     (oc,) if bias else None)
    forward_calls, channels_first = [], []

    def ours(x, wt, b):
        y = F.conv2d(x, wt, b, 1, p, d)
        forward_calls.append(calls["nchw_conv"])
        channels_first.append(y.data.flags.c_contiguous)
        return y

    check_parity(ours, lambda x, wt, b: TF.conv2d(x, wt, b, 1, p, d), arrays)
    assert (forward_calls[0] > 0) == forward
    assert channels_first[0] == forward  # the kernel writes channels-first memory
    assert (calls["nchw_conv"] > forward_calls[0]) == input_grad
    assert (calls["nchw_conv_weight_grad"] > 0) == weight_grad
    assert calls["direct_conv_weight_grad"] == 0


@needs_register_blocked
@pytest.mark.parametrize("case", [c for c in CHANNELS_FIRST_GRID if c[-2]])  # input gradient
def test_channels_first_kernels_are_within_their_error_bounds(case, monkeypatch):
    """Each output of the forward is a chain of C*KH*KW fused multiply-adds, and each of the
    input gradient one of OC*KH*KW: within gamma_n of the exact float64 result times the sum
    of the products' magnitudes (Higham, 3.1); the weight gradient is a chain per lane over
    a sample's output cells, then the lanes and the samples added in float64. In blocks of
    one sample, over 1, 2 and 3 threads: the same bits."""
    calls = _count_channels_first(monkeypatch)
    monkeypatch.setattr(kernels, "_DIRECT_BLOCK_MACS", 1)
    n, c, oc, h, w, k, p, d, forward, _, weight_grad = case
    kh, kw = (k, k) if isinstance(k, int) else k
    x, wt = _arrays(np.random.default_rng(31), (n, c, h, w), (oc, c, kh, kw))
    pads = tuple((q, q) for q in ((p, p) if isinstance(p, int) else p))
    dilation = (d, d) if isinstance(d, int) else d
    results = []
    for threads in (1, 2, 3):
        monkeypatch.setattr(juanji.backend, "_num_threads", threads)
        fn = conv_ops.Conv2d()
        y = fn.run(juanji.tensor(x, requires_grad=True), juanji.tensor(wt, requires_grad=True),
                   None, stride=(1, 1), padding=pads, dilation=dilation, groups=1).data
        gy = np.random.default_rng(32).standard_normal(y.shape).astype(np.float32)
        results.append((y, *fn.backward(gy)[:2]))
    for result in results[1:]:
        for ours, first in zip(result, results[0]):
            np.testing.assert_array_equal(ours, first)
    y, gx, gw = results[0]
    assert calls["nchw_conv"] == 3 * n * (1 + forward)
    assert calls["nchw_conv_weight_grad"] == 3 * n * weight_grad

    def exact(absolute=False):
        a, b, g = (torch.from_numpy(np.abs(v) if absolute else v).double() for v in (x, wt, gy))
        a.requires_grad_(), b.requires_grad_()
        out = TF.conv2d(a, b, None, 1, p, d)
        out.backward(g)
        return out.detach().numpy(), a.grad.numpy(), b.grad.numpy()

    (y_exact, gx_exact, gw_exact), (y_abs, gx_abs, gw_abs) = exact(), exact(True)
    if forward:
        assert np.all(np.abs(y - y_exact) <= _gamma(c * kh * kw) * y_abs)
    assert np.all(np.abs(gx - gx_exact) <= _gamma(oc * kh * kw) * gx_abs)
    if weight_grad:  # a lane's chain: one product per row and block of 16 columns
        chain = y.shape[2] * -(-y.shape[3] // 16) + 1  # + 1: the float64 sums after it
        assert np.all(np.abs(gw - gw_exact) <= _gamma(chain) * gw_abs)


@needs_register_blocked
@pytest.mark.parametrize("case", [c for c in CHANNELS_FIRST_GRID if c[2] * c[1] <= 8])
@pytest.mark.parametrize("activation", [None, "relu"])
def test_direct_convs_eval_batch_norm_gives_the_bits_of_separate_passes(case, activation,
                                                                         monkeypatch):
    """An eval-mode batch norm in the direct path's epilogue (`affine`, as ONNX imports fuse
    it), also where the channels-first kernel writes channels-first memory: x * scale +
    shift per channel, then the activation, as separate passes round them."""
    calls = _count_channels_first(monkeypatch)
    n, c, oc, h, w, k, p, d, forward, _, _ = case
    kh, kw = (k, k) if isinstance(k, int) else k
    x, wt, b = _arrays(np.random.default_rng(33), (n, c, h, w), (oc, c, kh, kw), (oc,))
    scale, shift = _arrays(np.random.default_rng(34), (oc,), (oc,))
    pads = tuple((q, q) for q in ((p, p) if isinstance(p, int) else p))
    dilation = (d, d) if isinstance(d, int) else d
    geometry = dict(stride=(1, 1), padding=pads, dilation=dilation, groups=1)
    with juanji.no_grad():
        ours = conv_ops.Conv2d.apply(juanji.tensor(x), juanji.tensor(wt), juanji.tensor(b),
                                     activation=activation, affine=(scale, shift),
                                     **geometry).data
        plain = conv_ops.Conv2d.apply(juanji.tensor(x), juanji.tensor(wt), juanji.tensor(b),
                                      **geometry).data
    expected = plain * scale[:, None, None] + shift[:, None, None]
    if activation == "relu":
        expected = np.maximum(expected, np.float32(0))
    np.testing.assert_array_equal(ours, expected)
    # without a weight gradient the planes are not widened for its blocks: the channels-first
    # kernel runs where they are wide enough as they are
    reach = dilation[1] * (kw - 1)
    assert (calls["nchw_conv"] > 0) == (forward and w + sum(pads[1]) >= 16 + reach)


@needs_register_blocked
def test_channels_first_kernel_only_where_it_applies(monkeypatch):
    """float32 NumPy arrays; float64 (gradient checks) and a process without numba take the
    plane kernel and the scatter."""
    calls = _count_channels_first(monkeypatch)
    rng = np.random.default_rng(33)

    def runs(dtype):
        calls.clear()
        x = juanji.tensor(rng.standard_normal((2, 1, 6, 20)).astype(dtype), requires_grad=True)
        wt = rng.standard_normal((6, 1, 3, 3)).astype(dtype)
        F.conv2d(x, wt, padding=1).sum().backward()
        return calls["nchw_conv"], calls["direct_conv"]

    assert runs(np.float32) == (2, 0)  # forward and input gradient, one block each
    assert runs(np.float64) == (0, 1)
    monkeypatch.setattr(compiled, "nchw_conv", None)  # no numba
    assert runs(np.float32) == (0, 1)


@pytest.mark.parametrize("channels", [1, 3, 4, 5])  # up to 4 from channels-first memory: a
@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])  # plane at a time
def test_padded_rows_match_numpys_pad(channels, layout):
    """The direct conv's block of padded input rows, from either memory layout, against
    np.pad of a channels-last copy (rows reaching both the top and the bottom padding)."""
    x = np.random.default_rng(6).standard_normal((3, channels, 5, 7)).astype(np.float32)
    if layout == "channels_last":
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    padding = ((2, 1), (1, 3))
    want = np.pad(np.ascontiguousarray(x.transpose(0, 2, 3, 1)),
                  ((0, 0), padding[0], padding[1], (0, 0)))  # (N, 8, 11, C)
    for start, stop, rows in [(0, 3, (0, 8)), (1, 2, (1, 4)), (2, 3, (5, 8))]:
        got = kernels.padded_rows(x.transpose(0, 2, 3, 1), start, stop, rows, padding)
        assert got.flags.c_contiguous
        np.testing.assert_array_equal(got, want[start:stop, rows[0] : rows[1]])


def _channels_last(x):
    """x (N, C, H, W) as an NCHW view of NHWC memory, as juanji's convs return."""
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


@pytest.mark.parametrize("x_shape, w_shape, stride, padding, groups, path", [
    # depthwise, the padding read in place or (a narrow map) from a padded copy
    ((1, 16, 16, 16), (16, 1, 3, 3), (1, 1), ((1, 1), (1, 1)), 16, "depthwise"),
    ((2, 32, 15, 17), (32, 1, 3, 3), (2, 2), ((1, 1), (1, 1)), 32, "depthwise"),
    ((1, 64, 7, 7), (64, 1, 5, 5), (1, 1), ((2, 2), (2, 2)), 64, "depthwise"),
    ((1, 16, 9, 9), (16, 1, 3, 3), (1, 1), ((0, 0), (0, 0)), 16, "depthwise"),
    ((1, 24, 9, 9), (24, 1, 3, 3), (1, 1), ((1, 1), (1, 1)), 24, None),  # not 16 lanes
    ((1, 16, 9, 9), (32, 1, 3, 3), (1, 1), ((1, 1), (1, 1)), 16, None),  # multiplier 2
    # pointwise: a GEMM with an epilogue or, with nothing to apply, one product
    ((1, 16, 12, 12), (32, 16, 1, 1), (1, 1), ((0, 0), (0, 0)), 1, "pointwise"),
    ((1, 256, 1, 1), (64, 256, 1, 1), (1, 1), ((0, 0), (0, 0)), 1, "pointwise"),
    ((1, 2, 8, 8), (3, 2, 1, 1), (1, 1), ((0, 0), (0, 0)), 1, None),  # the direct kernel's
    ((1, 16, 8, 8), (32, 16, 1, 1), (2, 2), ((0, 0), (0, 0)), 1, None),  # stride 2
    ((1, 16, 8, 8), (32, 16, 3, 3), (1, 1), ((1, 1), (1, 1)), 1, None),  # 3x3
])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("activation, affine", [(None, False), ("relu", False),
                                                ("hardswish", True), (None, True)])
def test_inference_conv_is_the_ops_path_with_its_bits(x_shape, w_shape, stride, padding,
                                                      groups, path, bias, activation, affine):
    """InferenceConv picks the path Conv2d.forward takes (or none) and runs its kernels: the
    same bits, with and without a bias, an eval-mode batch norm's affine and an activation;
    an NCHW-contiguous or float64 input gets no path."""
    if path == "depthwise" and compiled.depthwise_blocked is None:
        path = None  # the register-blocked kernel needs the compiled path
    rng = np.random.default_rng(34)
    x = _channels_last(rng.standard_normal(x_shape).astype(np.float32))
    wt = rng.standard_normal(w_shape).astype(np.float32)
    b = rng.standard_normal(w_shape[0]).astype(np.float32) if bias else None
    scale_shift = tuple(rng.standard_normal((2, w_shape[0])).astype(np.float32)) if affine \
        else None
    geometry = dict(stride=stride, padding=padding, dilation=(1, 1), groups=groups)
    args = (stride, padding, (1, 1), groups, activation, affine)
    plan = conv_ops.InferenceConv(x, wt, b, *args)
    fn = conv_ops.Conv2d()
    with juanji.no_grad():
        want = fn.run(x, wt, b, **geometry, activation=activation, affine=scale_shift).data
    if path is None or (path == "pointwise" and fn.path != "pointwise"):
        assert plan.path is None
        return
    assert plan.path == path == fn.path
    got = plan(x, wt, b, scale_shift)
    assert got.shape == want.shape and got.transpose(0, 2, 3, 1).flags.c_contiguous
    np.testing.assert_array_equal(got, want)
    assert plan.fits(x, wt, b, *args)
    assert not plan.fits(x, wt.copy(), b, *args)  # another weight array: planned again
    assert not plan.fits(x[:, :, 1:], wt, b, *args)
    assert not plan.fits(x, wt, b, *args[:-2], "relu" if activation is None else None, affine)
    others = [x.astype(np.float64)]
    if x.shape[2] * x.shape[3] > 1:  # else NCHW memory is NHWC memory
        others.append(np.ascontiguousarray(x))
    for other in others:
        assert conv_ops.InferenceConv(other, wt.astype(other.dtype), None, *args).path is None


@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("stride", [1, 2])
def test_input_major_1x1_weights_are_read_in_place_and_give_the_same_conv(groups, stride):
    """A 1x1 conv's weight laid out input-major (memory (C, OC), as the ONNX importer keeps
    it) is the same weight: weight_rows reads it without a copy, with W.T C-contiguous for
    BLAS, and the conv and its gradients match PyTorch's with it, as with the C-contiguous
    weight."""
    rng = np.random.default_rng(35)
    x = _channels_last(rng.standard_normal((2, 16, 5, 7)).astype(np.float32))
    w = rng.standard_normal((24, 16 // groups, 1, 1)).astype(np.float32)
    b = rng.standard_normal(24).astype(np.float32)
    major = conv_ops.input_major(w)
    np.testing.assert_array_equal(major, w)
    assert major.shape == w.shape and major.reshape(24, -1).T.flags.c_contiguous
    for weight in (w, major):
        rows = conv_ops.weight_rows(weight, groups)  # (G, OCg, Cg)
        assert rows.shape == (groups, 24 // groups, 16 // groups)
        assert np.shares_memory(rows, weight)
        np.testing.assert_array_equal(rows.reshape(24, -1), w.reshape(24, -1))
    gy = rng.standard_normal((2, 24, (5 - 1) // stride + 1, (7 - 1) // stride + 1))
    tx, tw, tb = (to_torch(a, requires_grad=True) for a in (x, w, b))
    want = TF.conv2d(tx, tw, tb, stride=stride, groups=groups)
    want.backward(torch.from_numpy(gy.astype(np.float32)))
    for weight in (w, major):
        jx, jw, jb = (juanji.Tensor(a, requires_grad=True) for a in (x, weight, b))
        got = F.conv2d(jx, jw, jb, stride=stride, groups=groups)
        got.backward(gy.astype(np.float32))
        assert_close(got, want)
        for mine, theirs in ((jx, tx), (jw, tw), (jb, tb)):
            assert_close(mine.grad, theirs.grad)
