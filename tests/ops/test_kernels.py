"""ops/kernels.py against naive loop references on random shapes (channels-last layouts)."""

import numpy as np
import pytest

from juanji.ops import kernels

GEOMETRIES = [
    # N, H, W, C, kernel, stride, dilation, groups
    (2, 7, 6, 4, (3, 3), (1, 1), (1, 1), 1),
    (1, 9, 8, 6, (2, 3), (2, 3), (2, 1), 3),
    (3, 5, 5, 2, (1, 1), (1, 1), (1, 1), 2),
    (2, 8, 7, 3, (3, 2), (3, 1), (1, 2), 1),
]


def _out(size, k, s, d):
    return (size - d * (k - 1) - 1) // s + 1


def _out_size(h, w, kernel, stride, dilation):
    return (_out(h, kernel[0], stride[0], dilation[0]), _out(w, kernel[1], stride[1], dilation[1]))


@pytest.mark.parametrize("n, per_sample, block", [(128, 10, 1090), (100, 4, 120), (7, 1, 3),
                                                   (5, 1, 1 << 30), (0, 8, 64), (3, 100, 1)])
def test_sample_blocks_cover_everything_in_even_blocks(n, per_sample, block):
    blocks = kernels.sample_blocks(n, per_sample, block)
    assert [i for start, stop in blocks for i in range(start, stop)] == list(range(n))
    most = max(1, block // per_sample)
    assert len(blocks) == -(-n // most)  # no more blocks than the size needs
    sizes = [stop - start for start, stop in blocks]
    assert all(size <= most for size in sizes)
    assert not sizes or max(sizes) - min(sizes) < len(sizes)  # 64 + 64, not 109 + 19
    rows = kernels.sample_row_blocks(2, 10, 100, 350)  # 3.5 rows a block: row ranges
    assert [(b, r0, r1) for b, _, r0, r1 in rows] == [
        (b, r, min(r + 3, 10)) for b in range(2) for r in range(0, 10, 3)]


def naive_windows(xpad, kernel, stride, dilation):
    n, hp, wp, c = xpad.shape
    oh, ow = (_out(hp, kernel[0], stride[0], dilation[0]),
              _out(wp, kernel[1], stride[1], dilation[1]))
    out = np.zeros((n, oh, ow, kernel[0], kernel[1], c))
    for b in range(n):
        for p in range(oh):
            for q in range(ow):
                for i in range(kernel[0]):
                    for j in range(kernel[1]):
                        out[b, p, q, i, j] = xpad[b, p * stride[0] + i * dilation[0],
                                                  q * stride[1] + j * dilation[1]]
    return out


def test_pad_nhwc_matches_np_pad():
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    got = kernels.pad_nhwc(x, (1, 2), (0, 3), value=-1.0, extra_h=1, extra_w=2)
    expected = np.pad(x.transpose(0, 2, 3, 1), ((0, 0), (1, 3), (0, 5), (0, 0)),
                      constant_values=-1.0)
    np.testing.assert_array_equal(got, expected)
    copy = kernels.pad_nhwc(x, (0, 0), (0, 0))  # NCHW memory: one channels-last copy
    assert copy.flags.c_contiguous and not np.shares_memory(copy, x)
    np.testing.assert_array_equal(copy, x.transpose(0, 2, 3, 1))
    channels_last = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    view = kernels.pad_nhwc(channels_last, (0, 0), (0, 0))
    assert np.shares_memory(view, channels_last)  # what conv returns: no padding, no copy


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_window_view_and_im2col_match_naive(geometry):
    n, h, w, c, kernel, stride, dilation, groups = geometry
    xpad = np.random.default_rng(1).standard_normal((n, h, w, c))
    expected = naive_windows(xpad, kernel, stride, dilation)
    out = expected.shape[1:3]
    np.testing.assert_array_equal(kernels.window_view(xpad, kernel, stride, dilation, out),
                                  expected)
    cols = kernels.im2col_nhwc(xpad, kernel, stride, dilation, out, groups)
    cg = c // groups
    for g in range(groups):
        rows = expected[..., g * cg:(g + 1) * cg].reshape(n * out[0] * out[1], -1)
        np.testing.assert_array_equal(cols[g], rows)
    back = kernels.ungroup_columns(kernels.group_columns(expected, groups), expected.shape)
    np.testing.assert_array_equal(back, expected)


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_col2im_matches_naive_scatter(geometry):
    n, h, w, c, kernel, stride, dilation, groups = geometry
    rng = np.random.default_rng(2)
    out = _out_size(h, w, kernel, stride, dilation)
    dcols = rng.standard_normal((n, *out, *kernel, c))
    expected = np.zeros((n, h, w, c))
    for b in range(n):
        for p in range(out[0]):
            for q in range(out[1]):
                for i in range(kernel[0]):
                    for j in range(kernel[1]):
                        expected[b, p * stride[0] + i * dilation[0],
                                 q * stride[1] + j * dilation[1]] += dcols[b, p, q, i, j]
    got = kernels.col2im_nhwc(dcols, (n, h, w, c), kernel, stride, dilation)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    grouped = kernels.group_columns(dcols, groups)
    got = kernels.col2im_groups(grouped, (n, h, w, c), kernel, stride, dilation, out)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("block_bytes", [1, 100, 1 << 22])  # rows of one sample, samples
@pytest.mark.parametrize("keep_columns", [False, True])
def test_conv_nhwc_is_the_naive_windows_times_the_weights(geometry, block_bytes, keep_columns):
    n, h, w, c, kernel, stride, dilation, _ = geometry
    rng = np.random.default_rng(7)
    xpad = rng.standard_normal((n, h, w, c))
    wrows = rng.standard_normal((5, kernel[0] * kernel[1] * c))
    windows = naive_windows(xpad, kernel, stride, dilation)  # (N, OH, OW, KH, KW, C)
    expected = windows.reshape(*windows.shape[:3], -1) @ wrows.T
    y, cols = kernels.conv_nhwc(xpad, wrows, kernel, stride, dilation, windows.shape[1:3],
                                keep_columns, block_bytes)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
    if keep_columns:
        np.testing.assert_array_equal(cols[0], windows.reshape(-1, wrows.shape[1]))
    else:
        assert cols is None


def test_pad_nchw_matches_np_pad():
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    got = kernels.pad_nchw(x.transpose(0, 2, 3, 1).copy().transpose(0, 3, 1, 2), (1, 2), (0, 3))
    np.testing.assert_array_equal(got, np.pad(x, ((0, 0), (0, 0), (1, 2), (0, 3))))
    assert got.flags.c_contiguous


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("block_bytes", [1, 1 << 22])  # one sample per block, all samples
@pytest.mark.parametrize("keep_columns", [False, True])
@pytest.mark.parametrize("bias", [False, True])
def test_channels_first_conv_and_weight_grad_match_naive(geometry, block_bytes, keep_columns,
                                                         bias):
    n, h, w, c, kernel, stride, dilation, _ = geometry
    rng = np.random.default_rng(8)
    xpad = rng.standard_normal((n, h, w, c))
    windows = naive_windows(xpad, kernel, stride, dilation)  # (N, OH, OW, KH, KW, C)
    out = windows.shape[1:3]
    columns = windows.transpose(5, 3, 4, 0, 1, 2)  # (C, KH, KW, N, OH, OW)
    got = np.empty(columns.shape)
    kernels.channels_first_columns(xpad.transpose(0, 3, 1, 2), kernel, stride, dilation, out,
                                   got)
    np.testing.assert_array_equal(got, columns)
    wrows = rng.standard_normal((5, c * kernel[0] * kernel[1]))  # (OC, C*KH*KW)
    b = rng.standard_normal(5) if bias else None
    xpad_nchw = np.ascontiguousarray(xpad.transpose(0, 3, 1, 2))
    y, cols = kernels.conv_channels_first(xpad_nchw, wrows, kernel, stride, dilation, out,
                                          keep_columns, block_bytes, bias=b)
    matrix = columns.reshape(wrows.shape[1], -1)  # (K, N*OH*OW)
    expected = matrix.T @ wrows.T + (0 if b is None else b)
    np.testing.assert_allclose(y.reshape(-1, 5), expected, rtol=1e-12, atol=1e-12)
    gy_rows = rng.standard_normal((matrix.shape[1], 5))
    if bias:  # the bias's input: a row of ones under the columns
        matrix = np.concatenate([matrix, np.ones((1, matrix.shape[1]))])
    if keep_columns:
        np.testing.assert_array_equal(cols, matrix)
        kept = dict(cols=cols)
    else:
        assert cols is None
        kept = dict(xpad=xpad_nchw, ones=bias)
    gw = kernels.conv_channels_first_weight_grad(gy_rows, kernel, stride, dilation, out,
                                                 chunk_bytes=block_bytes, **kept)
    # with a bias, its gradient (the sum of gy_rows) is the last column
    np.testing.assert_allclose(gw, gy_rows.T @ matrix.T, rtol=1e-12, atol=1e-12)
    if bias:
        np.testing.assert_allclose(gw[:, -1], gy_rows.sum(axis=0), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("chunk_bytes", [1, 1 << 18])
def test_conv_input_grad_is_gemm_then_col2im(geometry, chunk_bytes):
    n, h, w, c, kernel, stride, dilation, _ = geometry
    rng = np.random.default_rng(5)
    out = _out_size(h, w, kernel, stride, dilation)
    oc = 5
    gy = rng.standard_normal((n, *out, oc))
    wtaps = rng.standard_normal((*kernel, oc, c))
    dwindows = np.zeros((n, *out, *kernel, c))  # naive: every output cell times every tap
    for b in range(n):
        for p in range(out[0]):
            for q in range(out[1]):
                for i in range(kernel[0]):
                    for j in range(kernel[1]):
                        dwindows[b, p, q, i, j] = gy[b, p, q] @ wtaps[i, j]
    expected = kernels.col2im_nhwc(dwindows, (n, h, w, c), kernel, stride, dilation)
    got = kernels.conv_input_grad_nhwc(gy.reshape(n, -1, oc), wtaps, (n, h, w, c), stride,
                                       dilation, out, chunk_bytes)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("chunk_bytes", [1, 1 << 21])
def test_conv_weight_grad_is_the_naive_sum_over_windows(geometry, chunk_bytes):
    n, h, w, c, kernel, stride, dilation, _ = geometry
    rng = np.random.default_rng(6)
    out = _out_size(h, w, kernel, stride, dilation)
    oc = 4
    xpad = np.zeros((n, h, w, c))
    xpad[:, 1 : h - 2, 2:] = rng.standard_normal((n, h - 3, w - 2, c))
    gy = rng.standard_normal((n, *out, oc))
    windows = naive_windows(xpad, kernel, stride, dilation)  # (N, OH, OW, KH, KW, C)
    expected = np.zeros((oc, *kernel, c))
    for b in range(n):
        for p in range(out[0]):
            for q in range(out[1]):
                expected += gy[b, p, q][:, None, None, None] * windows[b, p, q][None]
    x = xpad[:, 1 : h - 2, 2:].transpose(0, 3, 1, 2)  # unpadded NCHW; pads (1, 2), (2, 0)
    got = kernels.conv_weight_grad(x, gy.reshape(-1, oc), kernel, stride, ((1, 2), (2, 0)),
                                   dilation, out, chunk_bytes)
    np.testing.assert_allclose(got, expected.reshape(oc, -1), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("multiplier", [1, 3])
def test_depthwise_and_its_gradients_match_naive(multiplier):
    rng = np.random.default_rng(3)
    n, hp, wp, c = 2, 7, 8, 3
    kernel, stride, dilation = (3, 2), (2, 1), (1, 2)
    xpad = rng.standard_normal((n, hp, wp, c))
    taps = rng.standard_normal((*kernel, c, multiplier))
    windows = naive_windows(xpad, kernel, stride, dilation)  # (N, OH, OW, KH, KW, C)
    expected = np.einsum("nhwijc,ijcm->nhwcm", windows, taps)
    out = windows.shape[1:3]
    got = kernels.depthwise_nhwc(xpad, taps, stride, dilation, out)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    gy = rng.standard_normal(expected.shape)
    dxpad, dtaps = kernels.depthwise_nhwc_grads(gy, taps, xpad.shape, stride, dilation,
                                                xp_nhwc=xpad)
    np.testing.assert_allclose(dtaps, np.einsum("nhwijc,nhwcm->ijcm", windows, gy), rtol=1e-12)
    dwindows = np.einsum("nhwcm,ijcm->nhwijc", gy, taps)
    expected_dx = kernels.col2im_nhwc(dwindows, xpad.shape, kernel, stride, dilation)
    np.testing.assert_allclose(dxpad, expected_dx, rtol=1e-12, atol=1e-12)
    none_x, only_taps = kernels.depthwise_nhwc_grads(gy, taps, xpad.shape, stride, dilation,
                                                     xp_nhwc=xpad, need_x=False)
    assert none_x is None and np.allclose(only_taps, dtaps)


@pytest.mark.parametrize("index", [
    [0, 0, 1, 1, 1, 3, 5, 5],  # monotone, with empty bins 2 and 4
    [4, 1, 1, 0, 3, 1, 4, 0],  # unsorted, repeated
    [2],
    list(range(6)),
])
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_index_add_axis_is_the_adjoint_of_take(index, axis):
    rng = np.random.default_rng(4)
    shape = [3, 4, 5]
    shape[axis] = len(index)
    values = rng.standard_normal(shape)
    size = 6
    expected_shape = list(shape)
    expected_shape[axis] = size
    expected = np.zeros(expected_shape)
    for k, target in enumerate(index):
        src = [slice(None)] * 3
        dst = [slice(None)] * 3
        src[axis], dst[axis] = k, target
        expected[tuple(dst)] += values[tuple(src)]
    got = kernels.index_add_axis(values, np.array(index), size, axis)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    x = rng.standard_normal(expected_shape)  # <take(x), v> == <x, index_add(v)>
    np.testing.assert_allclose((np.take(x, index, axis=axis) * values).sum(), (x * got).sum())


def test_scatter_add_flat_accumulates_repeats():
    rng = np.random.default_rng(5)
    index = rng.integers(0, 7, (4, 5))
    values = rng.standard_normal((4, 5)).astype(np.float32)
    expected = np.zeros(9, np.float32)
    for i, v in zip(index.ravel(), values.ravel()):
        expected[i] += v
    got = kernels.scatter_add_flat(index, values, 9)
    assert got.dtype == np.float32 and got.shape == (9,)
    np.testing.assert_allclose(got, expected, rtol=1e-6)


@pytest.mark.parametrize("shape", [(3, 4), (2, 5, 7), (2, 3, 4, 6), (1, 2, 3, 4, 5)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_channel_rows_sums_and_dots_match_naive(shape, channels_last):
    rng = np.random.default_rng(len(shape))
    if channels_last:  # an NCHW view of channels-last memory, as conv returns
        x = np.moveaxis(rng.standard_normal((shape[0], *shape[2:], shape[1])), -1, 1)
    else:
        x = rng.standard_normal(shape)
    c = shape[1]
    rows, period = kernels.channels_last_rows(x)
    assert rows.shape == (x.size // (period * c), period * c)
    assert np.shares_memory(rows, x) == (channels_last or x.ndim == 2)
    for k in range(period * c):  # column k holds channel k % C
        np.testing.assert_array_equal(np.sort(rows[:, k]), np.sort(
            np.moveaxis(x, 1, -1)[..., k // c, k % c].ravel() if x.ndim > 2 else x[:, k]))
    axes = (0, *range(2, x.ndim))
    np.testing.assert_allclose(kernels.channel_sums(rows, c), x.sum(axis=axes), rtol=1e-12)
    np.testing.assert_allclose(kernels.channel_sums(rows.astype(np.float32), c, np.float64),
                               x.astype(np.float32).sum(axis=axes, dtype=np.float64), rtol=1e-12)
    y = rng.standard_normal(shape)
    yrows, _ = kernels.channels_last_rows(y)
    np.testing.assert_allclose(kernels.channel_dots(rows, yrows, c), (x * y).sum(axis=axes),
                               rtol=1e-12)
    v = rng.standard_normal(c)
    np.testing.assert_array_equal(
        kernels.rows_to_channels_first(rows * kernels.tile_channels(v, period), x.shape),
        x * v.reshape(1, c, *([1] * (x.ndim - 2))))


def test_channel_sums_in_float64_keep_a_constant_exact():
    rows = np.full((1000, 12), 0.7, np.float32)  # a float32 sum of 4000 copies drifts
    assert (kernels.channel_sums(rows, 3, np.float64) / 4000).astype(np.float32).tolist() == \
        [np.float32(0.7)] * 3


@pytest.mark.parametrize("block_bytes", [8, 1 << 21])
def test_channel_combination_and_elementwise_blocks_match_numpy(block_bytes, monkeypatch):
    monkeypatch.setattr(kernels, "_BLOCK_BYTES", block_bytes)
    rng = np.random.default_rng(8)
    a, b = rng.standard_normal((6, 4 * 3)), rng.standard_normal((6, 4 * 3))  # P=4, C=3
    sa, sb, shift = rng.standard_normal(3), rng.standard_normal(3), rng.standard_normal(3)
    got = kernels.channel_combination([(a, sa), (b, sb)], shift, 4)
    np.testing.assert_allclose(got, a * np.tile(sa, 4) + b * np.tile(sb, 4) + np.tile(shift, 4),
                               rtol=1e-12)
    in_place = a.copy()
    assert kernels.channel_combination([(in_place, None), (b, None)], None, 4,
                                       out=in_place) is in_place
    np.testing.assert_allclose(in_place, a + b, rtol=1e-12)
    x = rng.standard_normal((3, 4, 5)).transpose(2, 0, 1)  # one block, not C order
    for arrays in [(x, np.empty_like(x)), (x[::2], np.empty((3, 3, 4)))]:  # strided: samples
        out = arrays[1]
        kernels.elementwise_blocks(lambda x, out: np.multiply(x, 2.0, out=out), arrays[0], out)
        np.testing.assert_array_equal(out, arrays[0] * 2.0)
