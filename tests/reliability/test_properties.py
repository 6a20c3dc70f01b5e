"""Property-based tests (Hypothesis): readers of untrusted files, and the conv arithmetic.

Readers: whatever the bytes, ``read_idx`` returns an array or raises ``IDXError`` and
``read_image`` returns an array or raises ``ValueError``; never a struct / numpy / zlib /
Pillow exception. Arithmetic: ``conv_output_size``, ``pool_output_size`` and
``conv_transpose_output_size`` give the shapes PyTorch's F.conv2d, F.max_pool2d,
F.avg_pool2d and F.conv_transpose2d produce, and raise ValueError exactly where PyTorch
refuses; juanji's functional ops agree with PyTorch on both.
"""

import gzip
import io
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image

import juanji
import juanji.nn.functional as JF
from juanji.arithmetic import conv_output_size, conv_transpose_output_size, pool_output_size
from juanji.data.idx import IDX_DTYPES, IDXError, read_idx, write_idx
from juanji.viz.images import read_image

FAST = settings(max_examples=80, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return path


# ---- IDX -------------------------------------------------------------------------------------

DTYPES = [dt.newbyteorder("=") for dt in IDX_DTYPES.values()]


@st.composite
def idx_arrays(draw):
    dtype = draw(st.sampled_from(DTYPES))
    shape = tuple(draw(st.lists(st.integers(0, 4), min_size=1, max_size=4)))
    raw = draw(st.binary(min_size=dtype.itemsize * int(np.prod(shape)),
                         max_size=dtype.itemsize * int(np.prod(shape))))
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def read_idx_or_idx_error(path):
    """read_idx's result, or None when it raised IDXError (anything else fails the test)."""
    try:
        return read_idx(path)
    except IDXError as err:
        assert str(path) in str(err)
        return None


@FAST
@given(data=st.binary(max_size=64), compress=st.booleans())
def test_idx_random_bytes_give_an_array_or_idx_error(tmp_path, data, compress):
    path = write(tmp_path, "r.idx", gzip.compress(data) if compress else data)
    array = read_idx_or_idx_error(path)
    if array is not None:  # the bytes happened to form a valid file
        assert data[:2] == b"\x00\x00" and array.ndim == data[3]
        assert 4 + 4 * array.ndim + array.nbytes == len(data)


@FAST
@given(type_code=st.integers(0, 255), ndim=st.integers(0, 4),
       sizes=st.lists(st.integers(0, 2**32 - 1), min_size=4, max_size=4),
       payload=st.binary(max_size=64), compress=st.booleans())
def test_idx_random_headers_give_an_array_or_idx_error(tmp_path, type_code, ndim, sizes,
                                                       payload, compress):
    data = bytes([0, 0, type_code, ndim]) + np.asarray(sizes[:ndim], ">u4").tobytes() + payload
    path = write(tmp_path, "h.idx", gzip.compress(data) if compress else data)
    array = read_idx_or_idx_error(path)
    if array is not None:
        assert array.shape == tuple(sizes[:ndim]) and array.nbytes == len(payload)


@FAST
@given(array=idx_arrays(), compress=st.booleans(), cut=st.floats(0, 1), extra=st.binary(
    min_size=1, max_size=8))
def test_idx_round_trip_and_every_truncation_or_extension_is_refused(tmp_path, array, compress,
                                                                     cut, extra):
    path = tmp_path / "a.idx"
    write_idx(path, array, compress=compress)
    back = read_idx(path)
    assert back.dtype == array.dtype and back.shape == array.shape
    assert back.tobytes() == array.tobytes()  # bytes, so NaN payloads compare too

    plain = gzip.decompress(path.read_bytes()) if compress else path.read_bytes()
    short = plain[:int(cut * (len(plain) - 1))]
    for data in (short, plain + extra):
        path.write_bytes(gzip.compress(data) if compress else data)
        assert read_idx_or_idx_error(path) is None
    whole = gzip.compress(plain) if compress else plain
    path.write_bytes(whole[:int(cut * (len(whole) - 1))])  # cut the file itself (gzip stream)
    assert read_idx_or_idx_error(path) is None


# ---- images ----------------------------------------------------------------------------------

MAGICS = [b"", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"BM", b"\xff\xd8\xff", b"RIFF", b"II*\x00",
          b"P5\n", b"\x00\x00\x01\x00"]


def read_image_or_value_error(path, **kwargs):
    """read_image's result, or None when it raised ValueError (anything else fails the test)."""
    try:
        with warnings.catch_warnings():
            # Pillow's size warning must become juanji's error; others (e.g. corrupt EXIF
            # data) may pass
            warnings.simplefilter("ignore")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return read_image(path, **kwargs)
    except ValueError as err:
        assert str(path) in str(err)
        return None


@FAST
@given(magic=st.sampled_from(MAGICS), data=st.binary(max_size=200))
def test_image_random_bytes_give_an_image_or_value_error(tmp_path, magic, data):
    image = read_image_or_value_error(write(tmp_path, "r.img", magic + data))
    if image is not None:
        assert image.dtype == np.float32 and image.ndim in (2, 3)


@st.composite
def small_images(draw):
    mode = draw(st.sampled_from(["L", "RGB", "RGBA", "P"]))
    h, w = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    channels = {"L": 1, "RGB": 3, "RGBA": 4, "P": 1}[mode]
    pixels = draw(st.binary(min_size=h * w * channels, max_size=h * w * channels))
    array = np.frombuffer(pixels, np.uint8).reshape((h, w, channels)[:3 if channels > 1 else 2])
    return Image.fromarray(array, mode) if mode != "P" else Image.fromarray(array).convert("P")


@FAST
@given(img=small_images(), fmt=st.sampled_from(["PNG", "BMP", "GIF"]), cut=st.floats(0, 1),
       flip=st.integers(0, 10_000))
def test_image_small_valid_files_round_trip_and_damage_gives_value_error(tmp_path, img, fmt,
                                                                         cut, flip):
    buffer = io.BytesIO()
    img.save(buffer, format=fmt)
    data = buffer.getvalue()
    path = write(tmp_path, "a.img", data)
    image = read_image(path)
    w, h = img.size
    assert image.shape in ((h, w), (h, w, 3))
    if fmt != "GIF" and img.mode in ("L", "RGB"):  # lossless formats, no palette conversion
        assert np.array_equal(np.round(image * 255).astype(np.uint8), np.asarray(img))
    assert read_image_or_value_error(path, max_pixels=w * h - 1) is None

    damaged = bytearray(data)
    damaged[flip % len(data)] ^= 0xFF
    for bad in (data[:int(cut * (len(data) - 1))], bytes(damaged)):
        read_image_or_value_error(write(tmp_path, "b.img", bad))


# ---- conv and pool arithmetic against PyTorch --------------------------------------------------

sizes = st.integers(1, 9)
kernels = st.integers(1, 5)
strides = st.integers(1, 4)
paddings = st.integers(0, 3)
dilations = st.integers(1, 3)


def torch_shape(fn, *args, **kwargs):
    """(OH, OW) of a PyTorch op, or None when PyTorch refuses the arguments."""
    try:
        return tuple(fn(*args, **kwargs).shape[2:])
    except RuntimeError:
        return None


def juanji_shape(fn, *args, **kwargs):
    """(OH, OW) of a juanji op, or None when it raises ValueError (anything else fails)."""
    try:
        return tuple(fn(*args, **kwargs).shape[2:])
    except ValueError:
        return None


def arithmetic(fn, *args, **kwargs):
    """fn's result, or None when it raises ValueError (anything else fails the test)."""
    try:
        return fn(*args, **kwargs)
    except ValueError:
        return None


@FAST
@given(h=sizes, w=sizes, k=kernels, s=strides, p=paddings, d=dilations)
def test_conv2d_output_size(h, w, k, s, p, d):
    x, weight = np.zeros((1, 1, h, w), np.float32), np.zeros((1, 1, k, k), np.float32)
    expected = torch_shape(torch.nn.functional.conv2d, torch.from_numpy(x),
                           torch.from_numpy(weight), stride=s, padding=p, dilation=d)
    sizes = [arithmetic(conv_output_size, n, k, s, p, d) for n in (h, w)]
    assert (None if None in sizes else tuple(sizes)) == expected
    assert juanji_shape(JF.conv2d, juanji.tensor(x), juanji.tensor(weight), stride=s,
                        padding=p, dilation=d) == expected


@FAST
@given(h=sizes, w=sizes, k=kernels, s=strides, p=paddings, d=dilations, ceil_mode=st.booleans(),
       stride_default=st.booleans())
def test_max_pool2d_output_size(h, w, k, s, p, d, ceil_mode, stride_default):
    x = np.zeros((1, 1, h, w), np.float32)
    stride = None if stride_default else s
    expected = torch_shape(torch.nn.functional.max_pool2d, torch.from_numpy(x), k, stride, p, d,
                           ceil_mode)
    if p <= k // 2:  # PyTorch's own rule on padding, checked by the functional op
        sizes = [arithmetic(pool_output_size, n, k, stride or k, p, d, ceil_mode) for n in (h, w)]
        assert (None if None in sizes else tuple(sizes)) == expected
    assert juanji_shape(JF.max_pool2d, juanji.tensor(x), k, stride, p, d, ceil_mode) == expected


@FAST
@given(h=sizes, w=sizes, k=kernels, s=strides, p=paddings, ceil_mode=st.booleans(),
       count_include_pad=st.booleans())
def test_avg_pool2d_output_size(h, w, k, s, p, ceil_mode, count_include_pad):
    x = np.zeros((1, 1, h, w), np.float32)
    expected = torch_shape(torch.nn.functional.avg_pool2d, torch.from_numpy(x), k, s, p,
                           ceil_mode, count_include_pad)
    if p <= k // 2:
        sizes = [arithmetic(pool_output_size, n, k, s, p, 1, ceil_mode) for n in (h, w)]
        assert (None if None in sizes else tuple(sizes)) == expected
    assert juanji_shape(JF.avg_pool2d, juanji.tensor(x), k, s, p, ceil_mode,
                        count_include_pad) == expected


@FAST
@given(h=sizes, w=sizes, k=kernels, s=strides, p=paddings, d=dilations,
       output_padding=st.integers(0, 3))
def test_conv_transpose2d_output_size(h, w, k, s, p, d, output_padding):
    x, weight = np.zeros((1, 1, h, w), np.float32), np.zeros((1, 1, k, k), np.float32)
    expected = torch_shape(torch.nn.functional.conv_transpose2d, torch.from_numpy(x),
                           torch.from_numpy(weight), stride=s, padding=p,
                           output_padding=output_padding, dilation=d)
    if expected is not None:
        assert tuple(conv_transpose_output_size(n, k, s, p, output_padding, d)
                     for n in (h, w)) == expected
    assume(expected is None or min(expected) > 0)  # see the test below
    # an output of exactly 0: PyTorch returns an empty tensor for some kernels and refuses for
    # others ("Output size is too small"); juanji always returns the empty tensor
    zero = 0 in [(n - 1) * s - 2 * p + d * (k - 1) + 1 + output_padding for n in (h, w)]
    assume(not (zero and output_padding < max(s, d)))
    assert juanji_shape(JF.conv_transpose2d, juanji.tensor(x), juanji.tensor(weight), stride=s,
                        padding=p, output_padding=output_padding, dilation=d) == expected


def test_conv_transpose2d_empty_output_like_pytorch():
    x, weight = np.zeros((1, 1, 1, 1), np.float32), np.zeros((1, 1, 4, 4), np.float32)
    expected = torch.nn.functional.conv_transpose2d(torch.from_numpy(x), torch.from_numpy(weight),
                                                    padding=2).shape
    assert tuple(expected) == (1, 1, 0, 0)
    assert JF.conv_transpose2d(juanji.tensor(x), juanji.tensor(weight), padding=2).shape == \
        expected


@pytest.mark.parametrize("op", ["conv2d", "conv_transpose2d"])
def test_zero_size_kernel_is_refused_with_a_clear_error(op):
    x, weight = juanji.tensor(np.zeros((1, 1, 2, 2))), juanji.tensor(np.zeros((1, 1, 0, 0)))
    with pytest.raises(ValueError, match="kernel"):
        getattr(JF, op)(x, weight)


bad_ints = st.integers(-2, 3)


@FAST
@given(h=sizes, k=st.integers(0, 4), s=bad_ints, p=bad_ints, d=bad_ints, op=st.sampled_from(
    ["conv2d", "max_pool2d", "avg_pool2d", "conv_transpose2d"]))
def test_invalid_arguments_raise_value_error_where_pytorch_refuses(h, k, s, p, d, op):
    """Zero or negative kernel, stride, dilation or padding: juanji raises ValueError exactly
    where PyTorch refuses, and otherwise gives PyTorch's shape."""
    assume(min(k, s, p + 1, d) < 1)
    x = np.zeros((1, 1, h, h), np.float32)
    tx, jx = torch.from_numpy(x), juanji.tensor(x)
    kwargs = dict(stride=s, padding=p) if op == "avg_pool2d" else dict(stride=s, padding=p,
                                                                       dilation=d)
    if op in ("conv2d", "conv_transpose2d"):
        assume(k > 0)  # a zero-size weight: see the test above
        weight = np.zeros((1, 1, k, k), np.float32)
        torch_args, juanji_args = (tx, torch.from_numpy(weight)), (jx, juanji.tensor(weight))
    else:
        torch_args, juanji_args = (tx, k), (jx, k)
    try:
        expected = torch_shape(getattr(torch.nn.functional, op), *torch_args, **kwargs)
    except ValueError:  # PyTorch checks some arguments in Python
        expected = None
    assert juanji_shape(getattr(JF, op), *juanji_args, **kwargs) == expected
