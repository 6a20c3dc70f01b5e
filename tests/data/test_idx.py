import gzip
import tracemalloc
import zlib

import numpy as np
import pytest

from juanji.data.idx import IDXError, read_idx, write_idx

DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]


def sample_array(dtype, shape=(3, 4, 5)):
    """Values spanning the dtype's range, so byte-order mistakes change them."""
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        values = np.linspace(info.min, info.max, num=np.prod(shape))
    else:
        values = np.linspace(-1e6, 1e6, num=np.prod(shape)) + 0.125
    return values.astype(dtype).reshape(shape)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("compress", [False, True])
def test_round_trip_every_dtype(tmp_path, dtype, compress):
    array = sample_array(dtype)
    path = tmp_path / "a.idx"
    write_idx(path, array, compress=compress)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype)
    assert back.dtype.isnative
    np.testing.assert_array_equal(back, array)
    assert path.read_bytes()[:2] == (b"\x1f\x8b" if compress else b"\x00\x00")


def test_round_trip_one_dimensional(tmp_path):
    write_idx(tmp_path / "labels.idx1", np.array([7, 0, 9], dtype=np.uint8))
    np.testing.assert_array_equal(read_idx(tmp_path / "labels.idx1"), [7, 0, 9])


def test_layout_is_big_endian_header_then_payload(tmp_path):
    write_idx(tmp_path / "u8", np.array([[1, 2], [3, 4]], dtype=np.uint8))
    assert (tmp_path / "u8").read_bytes() == (
        b"\x00\x00\x08\x02" b"\x00\x00\x00\x02" b"\x00\x00\x00\x02" b"\x01\x02\x03\x04")
    write_idx(tmp_path / "i16", np.array([258], dtype=np.int16))
    assert (tmp_path / "i16").read_bytes() == b"\x00\x00\x0b\x01\x00\x00\x00\x01\x01\x02"


def test_reads_hand_built_file(tmp_path):
    path = tmp_path / "f32"
    path.write_bytes(b"\x00\x00\x0d\x01\x00\x00\x00\x02" + b"\x3f\x80\x00\x00\xc0\x00\x00\x00")
    np.testing.assert_array_equal(read_idx(path), np.array([1.0, -2.0], dtype=np.float32))


def test_gzip_detected_by_magic_not_name(tmp_path):
    array = sample_array(np.int32)
    write_idx(tmp_path / "compressed.idx", array, compress=True)
    write_idx(tmp_path / "plain.gz", array, compress=False)
    np.testing.assert_array_equal(read_idx(tmp_path / "compressed.idx"), array)
    np.testing.assert_array_equal(read_idx(tmp_path / "plain.gz"), array)


def test_compression_follows_suffix_by_default(tmp_path):
    write_idx(tmp_path / "a.gz", np.zeros(3, np.uint8))
    write_idx(tmp_path / "a", np.zeros(3, np.uint8))
    assert (tmp_path / "a.gz").read_bytes()[:2] == b"\x1f\x8b"
    assert (tmp_path / "a").read_bytes()[:2] == b"\x00\x00"


HEADER_2x2_U8 = b"\x00\x00\x08\x02\x00\x00\x00\x02\x00\x00\x00\x02"


@pytest.mark.parametrize("compress", [False, True])
def test_truncated_payload(tmp_path, compress):
    path = tmp_path / "short.idx"
    data = HEADER_2x2_U8 + b"\x01\x02\x03"
    path.write_bytes(gzip.compress(data) if compress else data)
    with pytest.raises(IDXError, match="truncated") as info:
        read_idx(path)
    message = str(info.value)
    assert str(path) in message
    assert "expected 4" in message and "received 3" in message


def test_trailing_bytes(tmp_path):
    path = tmp_path / "long.idx"
    path.write_bytes(HEADER_2x2_U8 + b"\x01\x02\x03\x04\x05")
    with pytest.raises(IDXError, match="trailing") as info:
        read_idx(path)
    assert str(path) in str(info.value)
    assert "expected 4" in str(info.value) and "received 5" in str(info.value)


def test_wrong_magic(tmp_path):
    path = tmp_path / "bad.idx"
    path.write_bytes(b"\x00\x01" + HEADER_2x2_U8[2:] + b"\x00" * 4)
    with pytest.raises(IDXError, match=r"magic.*0x00 0x01"):
        read_idx(path)


def test_wrong_type_code(tmp_path):
    path = tmp_path / "bad.idx"
    path.write_bytes(b"\x00\x00\x0a\x01\x00\x00\x00\x01\x00")
    with pytest.raises(IDXError, match=r"type code 0x0A; expected one of 0x08, 0x09, 0x0B"):
        read_idx(path)


def test_zero_ndim(tmp_path):
    path = tmp_path / "bad.idx"
    path.write_bytes(b"\x00\x00\x08\x00")
    with pytest.raises(IDXError, match="ndim must be at least 1; got 0"):
        read_idx(path)


def test_truncated_header(tmp_path):
    path = tmp_path / "bad.idx"
    path.write_bytes(b"\x00\x00\x08\x03\x00\x00\x00\x02")
    with pytest.raises(IDXError, match="truncated IDX header; ndim=3 needs 16 bytes, file holds 8"):
        read_idx(path)
    path.write_bytes(b"\x00\x00")
    with pytest.raises(IDXError, match="expected at least 4 bytes, got 2"):
        read_idx(path)


def test_corrupt_gzip(tmp_path):
    path = tmp_path / "bad.gz"
    path.write_bytes(gzip.compress(HEADER_2x2_U8 + b"\x01\x02\x03\x04")[:-6])
    with pytest.raises(IDXError, match="corrupt or truncated gzip stream"):
        read_idx(path)


def test_errors_are_value_errors():
    assert issubclass(IDXError, ValueError)


def test_write_rejects_unsupported_dtype(tmp_path):
    with pytest.raises(IDXError, match=r"dtype must be one of .*; got int64"):
        write_idx(tmp_path / "a", np.zeros(3, dtype=np.int64))
    with pytest.raises(IDXError, match="ndim=0"):
        write_idx(tmp_path / "a", np.uint8(3))
    assert list(tmp_path.iterdir()) == []


def test_write_is_atomic_and_overwrites(tmp_path):
    path = tmp_path / "a.idx"
    write_idx(path, np.zeros(5, np.uint8))
    write_idx(path, np.ones(2, np.uint8))
    np.testing.assert_array_equal(read_idx(path), [1, 1])
    assert [p.name for p in tmp_path.iterdir()] == ["a.idx"]  # no temporary file left


def test_read_returns_writable_array(tmp_path):
    write_idx(tmp_path / "a", np.arange(4, dtype=np.int16))
    array = read_idx(tmp_path / "a")
    array[0] = 9  # would raise on a read-only view of the file bytes
    assert array.flags.c_contiguous


def gzip_bomb(path, header, inflated):
    """A gzip file holding ``header`` then ``inflated`` zero bytes (about 1000:1 smaller)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: gzip container
    chunk = bytes(1 << 20)
    parts = [compressor.compress(header)]
    parts += [compressor.compress(chunk) for _ in range(inflated >> 20)]
    path.write_bytes(b"".join(parts) + compressor.flush())


def test_gzip_bomb_is_rejected_without_inflating_it(tmp_path):
    path = tmp_path / "bomb.gz"
    gzip_bomb(path, HEADER_2x2_U8, 64 << 20)  # 64 MiB of zeros behind a 4-byte payload
    assert path.stat().st_size < 100_000
    tracemalloc.start()
    try:
        with pytest.raises(IDXError, match="trailing") as info:
            read_idx(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(path) in str(info.value) and "expected 4 payload bytes" in str(info.value)
    assert peak < 4 << 20  # inflating it all would need 64 MiB


def test_header_claiming_more_than_gzip_can_hold(tmp_path):
    path = tmp_path / "absurd.gz"
    header = b"\x00\x00\x08\x03" + b"\xff\xff\xff\xff" * 3  # (2**32 - 1)**3 bytes
    path.write_bytes(gzip.compress(header + bytes(100)))
    with pytest.raises(IDXError, match=r"shape \(4294967295, 4294967295, 4294967295\)") as info:
        read_idx(path)
    message = str(info.value)
    assert str(path) in message and "at most" in message and "truncated" in message


def test_header_claiming_more_than_the_plain_file_holds(tmp_path):
    path = tmp_path / "absurd.idx"
    path.write_bytes(b"\x00\x00\x0e\x02" + b"\xff\xff\xff\xff" * 2 + bytes(16))
    with pytest.raises(IDXError, match="truncated") as info:
        read_idx(path)
    assert "expected 147573952520956936200 payload bytes, received 16" in str(info.value)


def test_empty_file(tmp_path):
    for path, data in ((tmp_path / "empty.idx", b""), (tmp_path / "empty.gz", gzip.compress(b""))):
        path.write_bytes(data)
        with pytest.raises(IDXError, match="expected at least 4 bytes, got 0") as info:
            read_idx(path)
        assert str(path) in str(info.value)


def test_gzip_cut_short_names_the_file(tmp_path):
    path = tmp_path / "cut.gz"
    data = gzip.compress(b"\x00\x00\x08\x01\x00\x00\x4e\x20" + bytes(range(200)) * 100)
    for cut in (3, 11, 30, len(data) // 2, len(data) - 1):
        path.write_bytes(data[:cut])
        with pytest.raises(IDXError, match="corrupt or truncated gzip stream") as info:
            read_idx(path)
        assert str(path) in str(info.value)


def test_gzip_trailing_bytes_after_the_payload(tmp_path):
    path = tmp_path / "long.gz"
    path.write_bytes(gzip.compress(HEADER_2x2_U8 + b"\x01\x02\x03\x04\x05"))
    with pytest.raises(IDXError, match="trailing") as info:
        read_idx(path)
    assert "expected 4 payload bytes" in str(info.value) and str(path) in str(info.value)


def test_folder_or_missing_file_is_an_os_error_naming_it(tmp_path):
    with pytest.raises(IsADirectoryError, match=str(tmp_path)):
        read_idx(tmp_path)
    with pytest.raises(FileNotFoundError, match="nothing.idx"):
        read_idx(tmp_path / "nothing.idx")
