"""The compiled kernels (ops/compiled.py, with numba) against the NumPy path they replace: the
same bits, NaN and infinities included, for every geometry the NumPy path takes."""

import numpy as np
import pytest

from juanji.ops import compiled, kernels
from juanji.ops.activation import IN_PLACE

pytest.importorskip("numba")

# (N, C, M, H, W, kernel, stride, dilation)
DEPTHWISE = [
    (2, 5, 1, 9, 8, (3, 3), (1, 1), (1, 1)),
    (1, 4, 1, 11, 9, (3, 3), (2, 2), (1, 1)),  # batch 1, strided
    (2, 3, 2, 8, 10, (3, 2), (1, 2), (2, 1)),  # depth multiplier 2, dilated, asymmetric
    (3, 6, 1, 7, 7, (5, 5), (1, 1), (1, 1)),
    # the compiled kernel's runs: one per output pixel above 64 channels or when strided
    # across, one per output row otherwise; taps in threes along a kernel row (7 = 3 + 3 + 1)
    (2, 70, 1, 6, 7, (3, 5), (1, 1), (1, 1)),
    (2, 66, 1, 8, 9, (3, 3), (2, 1), (1, 2)),
    (1, 3, 1, 10, 16, (2, 7), (1, 1), (2, 2)),
    (1, 8, 1, 9, 10, (3, 4), (2, 1), (1, 1)),
    # channels a multiple of 16 in float32: the register-blocked kernel, 8 output pixels a
    # block (a row's last block overlapping the one before), or the whole row when narrower
    (2, 16, 1, 9, 11, (3, 3), (1, 1), (1, 1)),
    (1, 32, 1, 11, 9, (5, 5), (2, 2), (1, 1)),  # strided, rows of 4 pixels
    (3, 48, 1, 7, 6, (3, 3), (1, 2), (2, 1)),  # dilated, strided across
    (2, 16, 1, 12, 20, (3, 5), (1, 1), (1, 2)),
]


@pytest.mark.parametrize("case", DEPTHWISE)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("block_bytes", [None, 64])  # 64: one output row per block
@pytest.mark.parametrize("bias, activation", [(False, None), (True, None), (True, "relu"),
                                              (False, "relu"), (True, "hardswish"),
                                              # an eval-mode batch norm's affine, then it
                                              (False, "affine"), (True, "affine relu"),
                                              (True, "affine hardswish")])
def test_depthwise_rows_gives_the_bits_of_the_numpy_passes(case, dtype, block_bytes, bias,
                                                          activation, monkeypatch):
    """Each kernel (per row, per pixel, register-blocked) against NumPy's passes, with the
    bias, an activation and a batch norm's affine applied after the sums (by the blocked
    kernel as it stores them, no pass of their own)."""
    if block_bytes is not None:
        monkeypatch.setattr(kernels, "_BLOCK_BYTES", block_bytes)
        monkeypatch.setattr(kernels, "_DIRECT_BLOCK_MACS", block_bytes)
    calls = {"blocked": 0}
    compiled_on = compiled.depthwise_blocked is not None  # not with JUANJI_COMPILED=0
    if compiled_on:
        monkeypatch.setattr(compiled, "depthwise_blocked",
                            _counted(compiled.depthwise_blocked, calls, "blocked"))
    n, c, m, h, w, kernel, stride, dilation = case
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    x.reshape(-1)[:5] = [np.nan, np.inf, -np.inf, -0.0, 0.0]  # a sum may start from -0.0
    xpad = kernels.pad_nhwc(x, (1, 1), (1, 0))
    taps = rng.standard_normal((*kernel, c, m)).astype(dtype).transpose(0, 1, 2, 3)
    out = [(xpad.shape[1] - dilation[0] * (kernel[0] - 1) - 1) // stride[0] + 1,
           (xpad.shape[2] - dilation[1] * (kernel[1] - 1) - 1) // stride[1] + 1]
    b = rng.standard_normal(c * m).astype(dtype) if bias else None
    scale, shift = rng.standard_normal((2, c * m)).astype(dtype)
    scale[:3], shift[:3] = [0.0, np.inf, -1.0], [-0.0, 1.0, np.nan]

    def finish():  # made anew once the compiled kernels are off: NumPy's passes then
        name = None if activation is None else activation.split()[-1]
        after = None if name in (None, "affine") else IN_PLACE[name]
        if activation is None or not activation.startswith("affine"):
            return after
        return kernels.AffineFinish((scale, shift), after, out[1], np.dtype(dtype))

    calls["affine_then"] = 0
    if compiled_on:
        monkeypatch.setattr(compiled, "affine_then",
                            _counted(compiled.affine_then, calls, "affine_then"))
    got = kernels.depthwise_nhwc(xpad, taps, stride, dilation, out, b, finish())
    blocked = compiled_on and dtype == np.float32 and c % 16 == 0 and m == 1
    assert calls["blocked"] == (0 if not blocked else 1 if block_bytes is None else out[0] * n)
    if blocked:
        assert calls["affine_then"] == 0  # applied by the kernel
    monkeypatch.setattr(compiled, "depthwise_rows", None)  # the NumPy passes
    monkeypatch.setattr(compiled, "depthwise_blocked", None)
    monkeypatch.setattr(compiled, "hard_gate", None)
    monkeypatch.setattr(compiled, "hard_gate_in_place", None)
    monkeypatch.setattr(compiled, "affine_then", None)
    want = kernels.depthwise_nhwc(xpad, taps, stride, dilation, out, b, finish())
    assert got.dtype == want.dtype == dtype and np.isnan(want).any()
    assert activation != "relu" or (want == 0).any()
    np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))


# (N, C, H, W, kernel, stride, dilation, ((top, bottom), (left, right)), read in place)
PADDED_DEPTHWISE = [
    (1, 64, 14, 14, (5, 5), (1, 1), (1, 1), ((2, 2), (2, 2)), True),  # border pixels 64
    (2, 32, 9, 19, (3, 3), (2, 2), (1, 1), ((1, 1), (1, 1)), True),  # channels at a time, 32
    (1, 48, 7, 7, (5, 5), (1, 1), (1, 1), ((2, 2), (2, 2)), False),  # no block inside: copied
    (1, 16, 4, 17, (7, 3), (1, 1), (1, 2), ((3, 3), (0, 4)), True),  # windows past both ends
    (3, 16, 8, 12, (3, 3), (3, 1), (2, 1), ((4, 0), (3, 1)), True),  # rows in the padding
    (1, 128, 5, 20, (1, 1), (1, 1), (1, 1), ((0, 0), (0, 0)), True),  # no padding
]


@pytest.mark.parametrize("case", PADDED_DEPTHWISE)
@pytest.mark.parametrize("layout", ["channels_last", "contiguous"])
def test_depthwise_blocked_reads_the_padding_as_zeros(case, layout, monkeypatch):
    """With `padding`, the register-blocked kernel reads unpadded channels-last x, the padding
    as +0.0 (an NCHW-memory x, or one too narrow for a block of pixels whose windows stay
    inside, is copied padded first): the bits of the NumPy passes over a padded copy, NaN,
    infinities and signed zeros in x and the taps, with and without bias."""
    if compiled.depthwise_blocked is None:
        pytest.skip("the compiled path is off (JUANJI_COMPILED=0)")
    calls = {"blocked": 0, "pad": 0}
    monkeypatch.setattr(compiled, "depthwise_blocked",
                        _counted(compiled.depthwise_blocked, calls, "blocked"))
    monkeypatch.setattr(kernels, "pad_nhwc", _counted(kernels.pad_nhwc, calls, "pad"))
    n, c, h, w, kernel, stride, dilation, padding, in_place = case
    rng = np.random.default_rng(5)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    x.reshape(-1)[:5] = [np.nan, np.inf, -np.inf, -0.0, 0.0]
    if layout == "channels_last":
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    taps = rng.standard_normal((*kernel, c, 1)).astype(np.float32)
    taps[0, 0, :3, 0] = [np.inf, -0.0, np.nan]  # inf * +0.0 = NaN in the padding
    out = [(size + sum(pads) - d * (k - 1) - 1) // s + 1
           for size, pads, k, s, d in zip((h, w), padding, kernel, stride, dilation)]
    for bias in (None, rng.standard_normal(c).astype(np.float32)):
        got = kernels.depthwise_nhwc(x.transpose(0, 2, 3, 1), taps, stride, dilation, out, bias,
                                     padding=padding)
        with monkeypatch.context() as numpy_passes:
            numpy_passes.setattr(compiled, "depthwise_blocked", None)
            numpy_passes.setattr(compiled, "depthwise_rows", None)
            want = kernels.depthwise_nhwc(kernels.pad_nhwc(x, *padding), taps, stride,
                                          dilation, out, bias)
        np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))
    assert calls["blocked"] == 2
    copied = layout == "contiguous" or not in_place
    assert calls["pad"] == 2 + (2 if copied else 0)  # the want's, and x's


@pytest.mark.parametrize("channels", [3, 70, 16])  # a run per output row, per output pixel;
def test_depthwise_rows_keep_a_sum_of_negative_zeros(channels, monkeypatch):  # blocked
    # every product -0.0: the NumPy passes give -0.0 (the first product, then -0.0 added), so
    # a compiled sum must not start from +0.0
    xpad = np.full((1, 5, 6, channels), -0.0, dtype=np.float32)
    taps = np.ones((3, 3, channels, 1), dtype=np.float32)
    got = kernels.depthwise_nhwc(xpad, taps, (1, 1), (1, 1), (3, 4))
    monkeypatch.setattr(compiled, "depthwise_rows", None)
    monkeypatch.setattr(compiled, "depthwise_blocked", None)
    want = kernels.depthwise_nhwc(xpad, taps, (1, 1), (1, 1), (3, 4))
    assert np.signbit(want).all()
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_in_place_gives_the_bits_of_numpys_maximum(dtype, monkeypatch):
    x = np.random.default_rng(0).standard_normal((3, 37)).astype(dtype)
    x.reshape(-1)[:6] = [np.nan, -np.nan, -0.0, 0.0, -np.inf, np.inf]
    got, want = x.copy(), x.copy()
    kernels.relu_in_place(got)
    monkeypatch.setattr(compiled, "relu_in_place", None)
    kernels.relu_in_place(want)
    np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))


def test_compiled_kernels_are_off_without_numba_or_when_asked(monkeypatch):
    import importlib

    monkeypatch.setenv("JUANJI_COMPILED", "0")
    try:
        assert importlib.reload(compiled).depthwise_rows is None
    finally:
        monkeypatch.delenv("JUANJI_COMPILED")
        importlib.reload(compiled)
    assert compiled.depthwise_rows is not None


@pytest.mark.parametrize("times_x", [True, False])  # hardswish, hardsigmoid
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "strided"])
def test_hard_gate_gives_the_bits_of_the_numpy_passes(times_x, dtype, layout, monkeypatch):
    from juanji.ops import activation

    rng = np.random.default_rng(1)
    x = (rng.standard_normal((3, 4, 5, 6)) * 4).astype(dtype)
    x.reshape(-1)[:9] = [np.nan, np.inf, -np.inf, -3.0, 3.0, -0.0, 0.0, -2.9999, 6.0]
    if layout == "channels_last":
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    elif layout == "strided":  # not one block of memory: the NumPy passes run instead
        x = x[:, ::2]
    got = activation.hard_gate(x, times_x)
    monkeypatch.setattr(compiled, "hard_gate", None)
    monkeypatch.setattr(compiled, "hard_gate_in_place", None)
    want = activation.hard_gate(x, times_x)
    assert np.isnan(want).any()
    np.testing.assert_array_equal(np.ascontiguousarray(got).view(np.uint8),
                                  np.ascontiguousarray(want).view(np.uint8))


@pytest.mark.parametrize("times_x", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_hard_gate_in_place_gives_the_bits_of_the_numpy_passes(times_x, dtype, monkeypatch):
    from juanji.ops import activation

    x = (np.random.default_rng(2).standard_normal((7, 33)) * 4).astype(dtype)
    x.reshape(-1)[:7] = [np.nan, np.inf, -np.inf, -3.0, 3.0, -0.0, 0.0]
    got, want = x.copy(), x.copy()
    activation.hard_gate_in_place(got, times_x)
    monkeypatch.setattr(compiled, "hard_gate_in_place", None)
    activation.hard_gate_in_place(want, times_x)
    np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))


@pytest.mark.parametrize("activation", [None, "relu", "hardswish"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_epilogue_bias_and_activation_give_the_bits_of_the_numpy_passes(activation,
                                                                            dtype, monkeypatch):
    """`compiled.bias_then`: the bias and the activation in one pass (counted), the bits of
    the bias pass and then the activation's own pass; sums that round to -0.0, +-inf and NaN
    among them."""
    calls = {"bias_then": 0}
    monkeypatch.setattr(compiled, "bias_then",
                        _counted(compiled.bias_then, calls, "bias_then"))
    y = (np.random.default_rng(3).standard_normal((2, 3, 5, 4)) * 4).astype(dtype)
    y[0, 0, 0] = [np.nan, np.inf, -0.0, -3.0]
    y[0, 0, 1] = [-np.inf, 1e38 if dtype == np.float32 else 1e308, -0.0, 2.5]
    bias = np.array([1.0, -np.inf, -0.0, 0.5], dtype)
    finish = None if activation is None else IN_PLACE[activation]
    got, want = y.copy(), y.copy()
    kernels.conv_epilogue(bias, finish, 5, dtype)(got)
    assert calls["bias_then"] == 1
    monkeypatch.setattr(compiled, "bias_then", None)
    kernels.conv_epilogue(bias, finish, 5, dtype)(want)
    np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))


@pytest.mark.parametrize("activation", [None, "relu", "hardswish"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_eval_batch_norm_and_activation_give_the_bits_of_the_numpy_passes(activation,
                                                                             dtype,
                                                                             monkeypatch):
    """`compiled.affine_then`: a conv's eval-mode batch norm (x * scale + shift per channel)
    and its activation in one pass (counted), the bits of NumPy's multiply, its add and then
    the activation's own pass; results -0.0, +-inf and NaN among them."""
    calls = {"affine_then": 0}
    monkeypatch.setattr(compiled, "affine_then",
                        _counted(compiled.affine_then, calls, "affine_then"))
    rows = (np.random.default_rng(4).standard_normal((6, 5 * 4)) * 4).astype(dtype)
    rows[0, :4] = [np.nan, np.inf, -0.0, -3.0]  # (R, OW*OC): OW = 5, OC = 4
    rows[1, :4] = [-np.inf, 1e38 if dtype == np.float32 else 1e308, 0.0, 2.5]
    scale = np.array([1.5, 0.0, 2.0, -0.5], dtype)  # inf * 0 = NaN
    shift = np.array([0.5, -np.inf, -0.0, 1e38 if dtype == np.float32 else 1e308], dtype)
    finish = None if activation is None else IN_PLACE[activation]
    got, want = rows.copy(), rows.copy()
    kernels.AffineFinish((scale, shift), finish, 5, np.dtype(dtype))(got)
    assert calls["affine_then"] == 1
    monkeypatch.setattr(compiled, "affine_then", None)
    kernels.AffineFinish((scale, shift), finish, 5, np.dtype(dtype))(want)
    np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))


def _without_compiled(monkeypatch, *names):
    for name in names:
        monkeypatch.setattr(compiled, name, None)


def _assert_same_bits(got, expected):
    """Each pair of arrays equal, NaN where NaN, and with the same signs of zero."""
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_array_equal(g, e)
        assert np.array_equal(np.signbit(g), np.signbit(e))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("relu", [False, True])
def test_batch_norm_passes_give_the_bits_of_the_numpy_passes(dtype, relu, monkeypatch):
    """The affine forward (with a fused ReLU) and the input gradient: the same operations in
    the same order, so the same bits."""
    rng = np.random.default_rng(3)
    rows = rng.standard_normal((300, 7 * 5)).astype(dtype)  # (R, P*C): P = 7, C = 5
    rows[0, :3] = [np.nan, np.inf, -0.0]
    gy = rng.standard_normal(rows.shape).astype(dtype)
    mean, scale, k, shift = (rng.standard_normal(5) for _ in range(4))
    rows[1, 0], scale[0], shift[0] = -0.0, abs(scale[0]), -0.0  # x * scale + shift = -0.0
    finish = kernels.relu_in_place if relu else None

    def passes():
        return (kernels.channel_combination([(rows, scale)], shift, 7, finish=finish),
                kernels.batch_norm_input_grad(gy, rows, mean, scale, k, shift, 7))

    got = passes()
    _without_compiled(monkeypatch, "affine", "batch_norm_input_grad")
    for g, w in zip(got, passes()):
        np.testing.assert_array_equal(g.view(np.uint8), w.view(np.uint8))


@pytest.mark.parametrize("block_bytes", [None, 256])  # 256: many blocks, combined in order
def test_batch_norm_sums_match_the_numpy_passes_to_float32_rounding(block_bytes,
                                                                  monkeypatch):
    """The statistics and the two gradient sums accumulate in float64 where the NumPy passes
    sum float32 products: equal to float32 rounding, and closer to float64 truth."""
    if block_bytes is not None:
        monkeypatch.setattr(kernels, "_BLOCK_BYTES", block_bytes)
    rng = np.random.default_rng(4)
    rows = (rng.standard_normal((400, 6 * 4)) * 3 + 5).astype(np.float32)
    gy = rng.standard_normal(rows.shape).astype(np.float32)
    mean = rows.reshape(-1, 4).mean(axis=0, dtype=np.float64)

    def sums():
        return (*kernels.channel_moments(rows, 4, 6),
                *kernels.channel_grad_sums(gy, rows, mean, 6))

    got = sums()
    _without_compiled(monkeypatch, "channel_sums_and_squares", "channel_grad_sums")
    want = sums()
    x, g64 = rows.reshape(-1, 4).astype(np.float64), gy.reshape(-1, 4).astype(np.float64)
    terms = (x / len(x), (x - x.mean(axis=0)) ** 2 / len(x), g64,
             g64 * (x - mean.astype(np.float32)))
    for g, w, t in zip(got, want, terms):
        assert g.dtype == w.dtype
        # float32 sums of n terms are good to about n * eps32 of the sum of their magnitudes
        bound = len(x) * np.finfo(np.float32).eps * np.abs(t).sum(axis=0)
        assert (np.abs(g - w) <= bound).all()
        truth = t.sum(axis=0)
        assert (np.abs(g - truth) <= np.abs(w - truth) + 1e-5 * np.abs(truth)).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_norm_backward_masks_a_fused_relu_inside_its_passes(dtype, monkeypatch):
    """With the compiled passes, batch norm's backward masks gy by a fused ReLU's output
    inside them: the input gradient has the bits of masking first (relu_gradient), the sums
    match to float32 rounding, for both the compiled and the NumPy form of the masked passes."""
    rng = np.random.default_rng(5)
    rows = rng.standard_normal((200, 3 * 4)).astype(dtype)
    gy = rng.standard_normal(rows.shape).astype(dtype)
    gy[0, :3] = [np.inf, -2.0, np.nan]
    relu_out = np.maximum(rng.standard_normal(rows.shape), 0).astype(dtype)
    relu_out[0, :3] = 0.0  # masked: inf * 0 is NaN, -2 * 0 is -0.0
    mean, scale, k, shift = (rng.standard_normal(4) for _ in range(4))
    masked = kernels.relu_gradient(gy, relu_out)
    want = kernels.batch_norm_input_grad(masked, rows, mean, scale, k, shift, 3)
    want_sums = kernels.channel_grad_sums(masked, rows, mean, 3)
    for compiled_path in (True, False):
        if not compiled_path:
            _without_compiled(monkeypatch, "batch_norm_input_grad", "channel_grad_sums")
        got = kernels.batch_norm_input_grad(gy, rows, mean, scale, k, shift, 3, relu_out)
        np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))
        got_sums = kernels.channel_grad_sums(gy, rows, mean, 3, relu_out)
        for g, w in zip(got_sums, want_sums):
            np.testing.assert_allclose(g, w, rtol=1e-5, equal_nan=True)


SPECIAL = [np.nan, np.inf, -np.inf, -0.0, 0.0, 6.0, -6.0, 3.0, -3.0, 1e-45, 3e38, -3e38]
NUMPY_OPS = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide}


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("order", ["x first", "constant first", "x twice"])
def test_program_kernel_binary_ops_give_numpys_bits(op, dtype, order):
    x = np.array(SPECIAL * len(SPECIAL), dtype)  # every pair of special values
    c = np.repeat(np.array(SPECIAL, dtype), len(SPECIAL))
    operands = {"x first": (("x",), ("c", 0)), "constant first": (("c", 0), ("x",)),
                "x twice": (("x",), ("x",))}[order]
    kernel = compiled.program_kernel(((op, *operands),))
    for k in range(len(SPECIAL)):
        xs, constant = x[k * len(SPECIAL):(k + 1) * len(SPECIAL)], c[k * len(SPECIAL)]
        out = np.empty_like(xs)
        kernel(xs, out, np.array([constant], dtype))
        a, b = {"x first": (xs, constant), "constant first": (constant, xs),
                "x twice": (xs, xs)}[order]
        with np.errstate(all="ignore"):
            expected = NUMPY_OPS[op](a, b)
        assert out.dtype == expected.dtype
        np.testing.assert_array_equal(out, expected)
        assert np.array_equal(np.signbit(out), np.signbit(expected))


@pytest.mark.parametrize("low, high", [(0.0, 6.0), (-0.0, 0.0), (-np.inf, 1.0), (2.0, -1.0),
                                       (-3e38, np.inf)])
def test_program_kernel_clip_gives_np_clips_bits(low, high):
    x = np.array(SPECIAL + [0.5, -0.5, 7.0], np.float32)
    out = np.empty_like(x)
    compiled.program_kernel((("clip", ("x",), ("c", 0), ("c", 1)),))(
        x, out, np.array([low, high], np.float32))
    expected = np.clip(x, low, high)
    np.testing.assert_array_equal(out, expected)
    assert np.array_equal(np.signbit(out), np.signbit(expected))


def test_program_kernel_follows_the_program_in_order():
    # Paddle's hardswish with a scale and shift around it: (s1*x + b1) then the gate, then
    # s2 * . + b2; every instruction's result rounded to float32 as NumPy's passes round it
    program = (("mul", ("c", 0), ("x",)), ("add", ("v", 0), ("c", 1)),
               ("add", ("v", 1), ("c", 2)), ("clip", ("v", 2), ("c", 3), ("c", 4)),
               ("mul", ("v", 1), ("v", 3)), ("div", ("v", 4), ("c", 4)),
               ("mul", ("c", 5), ("v", 5)), ("sub", ("v", 6), ("c", 6)))
    c = np.array([0.7, -0.1, 3, 0, 6, 1.3, 0.2], np.float32)
    x = np.random.default_rng(0).standard_normal(5000).astype(np.float32) * 5
    x[:len(SPECIAL)] = SPECIAL
    out = np.empty_like(x)
    compiled.program_kernel(program)(x, out, c)
    with np.errstate(all="ignore"):
        a = c[0] * x + c[1]
        expected = c[5] * (a * np.clip(a + c[2], c[3], c[4]) / c[4]) - c[6]
    np.testing.assert_array_equal(out, expected)
    assert compiled.program_kernel(program) is compiled.program_kernel(tuple(program))


# (kernel, stride, padding, dilation, ceil_mode): tiled windows (the compiled backward too),
# overlapping ones, dilated, ceil_mode past the edge, ResNet's 3x3 stride-2 stem pool, and
# overlapping dilated windows without padding
POOLS = [(2, 2, 0, 1, False), (3, 2, 1, 1, False), (3, 1, 1, 2, False), (2, 2, 0, 1, True),
         (3, 3, 0, 1, False), (3, 2, 0, 2, False)]


@pytest.mark.parametrize("geometry", POOLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("with_nan", [False, True])
@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
def test_max_pool_gives_the_bits_of_the_numpy_passes(geometry, dtype, with_nan, layout,
                                                     monkeypatch):
    """Channels-first memory with nothing to pad takes the planes kernels (counted), the rest
    the channels-last ones; both against the NumPy passes."""
    import juanji
    from juanji.nn import functional as F

    kernel, stride, padding, dilation, ceil_mode = geometry
    rng = np.random.default_rng(1)
    # few distinct values: many ties, +0.0 and -0.0 among them; then infinities (and NaN)
    x = rng.integers(-2, 3, (3, 5, 9, 11)).astype(dtype)
    x[x == 0] = np.where(rng.random(int((x == 0).sum())) < 0.5, -0.0, 0.0)
    x[0, 0, 0, :3] = [np.inf, -np.inf, np.inf]
    if with_nan:
        x[1, 2, 3, 4], x[1, 2, 3, 5], x[2, 4, 0, 0] = np.nan, np.nan, np.nan
    if layout == "channels_last":
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    gy = rng.standard_normal((3, 5) + F.max_pool2d(juanji.Tensor(x), kernel, stride, padding,
                                                    dilation, ceil_mode).shape[2:]).astype(dtype)
    gy[0, 0, 0, 0], gy[0, 1, 0, 0] = -np.inf, -1.5  # -inf * 0 is NaN; -1.5 * 0 is -0.0

    def run():
        t = juanji.Tensor(x, requires_grad=True)
        out, indices = F.max_pool2d(t, kernel, stride, padding, dilation, ceil_mode,
                                    return_indices=True)
        out.backward(gy)
        with juanji.no_grad():
            untracked = F.max_pool2d(juanji.Tensor(x), kernel, stride, padding, dilation,
                                     ceil_mode)
        return out.data, indices.data, t.grad, untracked.data

    calls = {"max_pool_planes": 0, "max_unpool_planes": 0, "max_pool_rows": 0}
    for name in calls:
        monkeypatch.setattr(compiled, name, _counted(getattr(compiled, name), calls, name))
    got = run()
    planes = layout == "channels_first" and padding == 0 and not ceil_mode
    assert (calls["max_pool_planes"] > 0, calls["max_pool_rows"] > 0) == (planes, not planes)
    assert (calls["max_unpool_planes"] > 0) == (planes and stride == kernel)
    _without_compiled(monkeypatch, "max_pool_rows", "max_unpool_tiled", "max_pool_planes",
                      "max_unpool_planes")
    _assert_same_bits(got, run())


def _counted(kernel, calls, name):
    """`kernel` with its calls counted in calls[name]."""
    def count(*args):
        calls[name] += 1
        return kernel(*args)

    return count


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["alike", "different"])
def test_relu_training_passes_give_the_bits_of_the_numpy_passes(dtype, layout, monkeypatch):
    import juanji
    from juanji.nn import functional as F

    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 4, 5, 6)).astype(dtype)
    x.reshape(-1)[:6] = [np.nan, np.inf, -np.inf, -0.0, 0.0, -1e-45]
    x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)  # as a conv's
    gy = rng.standard_normal(x.shape).astype(dtype)
    gy.reshape(-1)[:4] = [np.inf, -np.inf, np.nan, -2.0]  # masked: NaN, NaN, NaN, -0.0
    if layout == "alike":
        gy = np.ascontiguousarray(gy.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)

    def run():
        t = juanji.Tensor(x, requires_grad=True)
        y = F.relu(t)
        y.backward(gy)
        return y.data, t.grad

    got = run()
    _without_compiled(monkeypatch, "relu_with_mask", "masked_gradient")
    _assert_same_bits(got, run())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("settings", [
    {"momentum": 0.9}, {"momentum": 0.9, "dampening": 0.3, "weight_decay": 1e-2},
    {"momentum": 0.5, "nesterov": True, "weight_decay": 5e-4}, {"momentum": 0.9, "maximize": True},
    {"momentum": np.float64(0.9), "lr": np.float64(0.1)}])
def test_sgd_momentum_step_gives_the_bits_of_the_numpy_path(dtype, settings, monkeypatch):
    from juanji import optim
    from juanji.nn.module import Parameter

    rng = np.random.default_rng(3)
    start = rng.standard_normal((7, 11)).astype(dtype)
    start.reshape(-1)[:2] = [-0.0, 0.0]
    grads = [rng.standard_normal((7, 11)).astype(dtype) for _ in range(3)]
    grads[1].reshape(-1)[:2] = [0.0, -0.0]

    def run():
        p = Parameter(start.copy())
        opt = optim.SGD([p], **{"lr": 0.05, **settings})
        for g in grads:  # the first step makes the buffer; the next two run compiled
            p.grad = g
            opt.step()
        return p.data, opt.state[p]["momentum_buffer"]

    got = run()
    _without_compiled(monkeypatch, "sgd_momentum")
    expected = run()
    assert all(g.dtype == e.dtype == dtype for g, e in zip(got, expected, strict=True))
    _assert_same_bits(got, expected)


@pytest.mark.parametrize("geometry", [((3, 3), (1, 1), (1, 1)), ((5, 5), (1, 1), (1, 1)),
                                      ((3, 3), (2, 2), (1, 1)), ((3, 2), (1, 2), (2, 1))])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_col2im_rows_gives_the_bits_of_col2im_nhwc(geometry, dtype):
    kernel, stride, dilation = geometry
    rng = np.random.default_rng(6)
    n, oh, ow, c = 3, 4, 5, 6
    hp = (oh - 1) * stride[0] + dilation[0] * (kernel[0] - 1) + 1
    wp = (ow - 1) * stride[1] + dilation[1] * (kernel[1] - 1) + 1
    dcols = (rng.standard_normal((n, oh, ow, *kernel, c)) * 1e3).astype(dtype)
    dcols.reshape(-1)[:5] = [np.inf, -np.inf, np.nan, -0.0, 1e-30]
    expected = kernels.col2im_nhwc(dcols, (n, hp, wp, c), kernel, stride, dilation)
    got = np.zeros((n, hp, wp, c), dtype)
    compiled.col2im_rows(dcols, got, 0, n, *stride, *dilation)
    np.testing.assert_array_equal(got, expected)  # the same adds in the same order
    assert np.array_equal(np.signbit(got), np.signbit(expected))


def _rows_then_columns(t, combine):
    """combine(row0, row1, row2, row3) over axis -3 of t (..., 4, 4, C), then over axis -2 of
    each result: the two halves of a 4x4 Winograd transform, NumPy pass by pass."""
    rows = combine(*(t[..., r, :, :] for r in range(4)))  # 4 of (..., 4, C)
    return [combine(*(row[..., s, :] for s in range(4))) for row in rows]  # 4 x 4 of (..., C)


def _input_transform(d0, d1, d2, d3):  # B^T's rows
    return [d0 - d2, d1 + d2, d2 - d1, d1 - d3]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_winograd_transforms_give_the_bits_of_numpy_passes(dtype):
    """The tiles B^T d B, the filters G g G^T and the outputs A^T M A: the same adds, in the
    same order, as NumPy passes over whole arrays, NaN, infinities and signed zeros included."""
    rng = np.random.default_rng(11)
    n, th, tw, c, k = 2, 3, 4, 5, 6
    x = rng.standard_normal((n, 2 * th + 1, 2 * tw - 1, c)).astype(dtype)
    x.flat[rng.choice(x.size, 12, replace=False)] = SPECIAL
    v = np.empty((16, n * th * tw, c), dtype)
    scratch = np.empty((4, 4, c), dtype), np.empty((4, 4, c), dtype)
    for top, left in ((1, 1), (0, 2), (2, 0)):  # the tiles' padding, read as zeros
        xpad = np.zeros((n, 2 * th + 2, 2 * tw + 2, c), dtype)
        xpad[:, top : top + x.shape[1], left : left + x.shape[2]] = x[:, : 2 * th + 2 - top,
                                                                     : 2 * tw + 2 - left]
        tiles = np.lib.stride_tricks.sliding_window_view(xpad, (4, 4), axis=(1, 2))[:, ::2, ::2]
        tiles = tiles.transpose(0, 1, 2, 4, 5, 3)  # (N, TH, TW, 4, 4, C)
        expected = np.stack([t for row in _rows_then_columns(tiles, _input_transform)
                             for t in row])
        compiled.winograd_tiles(x, top, left, tw, v, *scratch, 0, n, 0, th)
        _assert_same_bits([v], [expected.reshape(16, -1, c)])
    part = np.empty((16, th - 1, c), dtype)  # one sample's tile rows 1:TH, one tile column
    compiled.winograd_tiles(x, top, left, 1, part, *scratch, 1, 2, 1, th)
    _assert_same_bits([part], [expected.reshape(16, n, th, tw, c)[:, 1, 1:, 0]])

    w = rng.standard_normal((k, 3, 3, c)).astype(dtype)  # channels-last filters
    w.flat[:12] = SPECIAL
    half = dtype(0.5)

    def filter_transform(g0, g1, g2, *_):  # G's rows
        return [g0, (g0 + g1 + g2) * half, (g0 - g1 + g2) * half, g2]

    padded = np.concatenate([w, np.zeros_like(w[:, :1])], axis=1)  # a 4th row G ignores
    padded = np.concatenate([padded, np.zeros_like(padded[:, :, :1])], axis=2)
    u = np.empty((16, k, c), dtype)
    compiled.winograd_weights(w, half, np.empty((4, 3, c), dtype), u)
    _assert_same_bits([u], [np.stack([t for row in _rows_then_columns(padded, filter_transform)
                                      for t in row])])

    m = rng.standard_normal((16, n * th * tw, k)).astype(dtype)
    m.flat[:12] = SPECIAL
    bias = rng.standard_normal(k).astype(dtype)
    bias[:2] = [-0.0, np.nan]
    for oh, ow in ((2 * th, 2 * tw), (2 * th - 1, 2 * tw - 1)):  # even and odd outputs
        mm = m.reshape(4, 4, n, th, tw, k)
        rows = [mm[0] + mm[1] + mm[2], mm[1] - mm[2] - mm[3]]  # A^T's rows over M's rows
        full = np.empty((n, th, 2, tw, 2, k), dtype)
        for a, row in enumerate(rows):
            full[:, :, a, :, 0] = row[0] + row[1] + row[2]
            full[:, :, a, :, 1] = row[1] - row[2] - row[3]
        full = full.reshape(n, 2 * th, 2 * tw, k)[:, :oh, :ow]
        for with_bias, relu in ((False, False), (True, False), (True, True), (False, True)):
            y = np.full((n, oh, ow, k), 7, dtype)
            compiled.winograd_outputs(m, y, np.empty((4, k), dtype),
                                      bias if with_bias else np.empty(0, dtype), relu, 0, n, 0, th)
            expected = full + bias if with_bias else full.copy()
            _assert_same_bits([y], [np.maximum(expected, 0) if relu else expected])
