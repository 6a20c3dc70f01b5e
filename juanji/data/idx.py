"""Reader and writer for IDX files, the format of MNIST and Fashion-MNIST.

An IDX file is a header followed by a raw array, all big-endian:

    bytes 0-1   zero
    byte  2     element type code (see ``IDX_DTYPES``)
    byte  3     ndim
    ndim x 4    dimension sizes, unsigned 32-bit
    payload     prod(sizes) elements, C order

Files may be gzip-compressed; compression is detected from the gzip magic bytes, never from
the file name.
"""

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

from juanji.io.files import atomic_write_bytes

# Type code -> big-endian element dtype, as defined by the IDX format.
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

GZIP_MAGIC = b"\x1f\x8b"
# Deflate inflates at most 1032 bytes per compressed byte (a 258-byte match in 2 bits).
DEFLATE_MAX_RATIO = 1032


class IDXError(ValueError):
    """An IDX file whose bytes disagree with the format or with its own header."""


def read_idx(path):
    """Read an IDX file (plain or gzip) into an array of shape given by its header.

    Returns a C-contiguous array in native byte order with the header's element type
    (uint8, int8, int16, int32, float32 or float64). Raises ``IDXError`` naming the file when
    the magic, type code, ndim or payload length disagree with the format; the payload must
    hold exactly prod(sizes) elements, so truncated files and trailing bytes are both rejected.
    A gzip file is inflated as a stream and only as far as the header allows (plus one byte to
    see trailing data), so a gzip bomb is rejected without being inflated. Raises ``OSError``
    (``FileNotFoundError``, ``IsADirectoryError``, ...) when the file cannot be opened.
    """
    path = Path(path)
    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        if file.read(2) != GZIP_MAGIC:
            file.seek(0)
            return _read_idx_stream(path, file, size)
        file.seek(0)
        try:
            with gzip.GzipFile(fileobj=file) as stream:
                return _read_idx_stream(path, stream, None, max_bytes=DEFLATE_MAX_RATIO * size)
        except (OSError, EOFError, zlib.error) as err:
            raise IDXError(f"{path}: corrupt or truncated gzip stream ({err})") from None


def _read_exactly(stream, buffer):
    """Fill the C-contiguous array ``buffer`` from ``stream``; return how many bytes it got
    (fewer at the end of the stream)."""
    view, filled = memoryview(buffer.reshape(-1).view(np.uint8)), 0
    while filled < len(view):
        got = stream.readinto(view[filled:])
        if not got:
            break
        filled += got
    return filled


def _read_idx_stream(path, stream, size, max_bytes=None):
    """Parse an IDX stream; ``size`` is its exact length when known (a plain file), else None
    and ``max_bytes`` bounds what it can hold (a gzip stream)."""
    head = stream.read(4)
    if len(head) < 4:
        raise IDXError(f"{path}: too short for an IDX header; expected at least 4 bytes, "
                       f"got {len(head)}")
    if head[0] != 0 or head[1] != 0:
        raise IDXError(f"{path}: bad IDX magic; expected the first two bytes to be 0x00 0x00, "
                       f"got 0x{head[0]:02x} 0x{head[1]:02x}")
    type_code, ndim = head[2], head[3]
    if type_code not in IDX_DTYPES:
        known = ", ".join(f"0x{code:02X}" for code in IDX_DTYPES)
        raise IDXError(f"{path}: unknown IDX type code 0x{type_code:02X}; expected one of {known}")
    if ndim == 0:
        raise IDXError(f"{path}: IDX ndim must be at least 1; got 0")

    header_len = 4 + 4 * ndim
    sizes = stream.read(4 * ndim)
    if len(sizes) < 4 * ndim:
        raise IDXError(f"{path}: truncated IDX header; ndim={ndim} needs {header_len} bytes, "
                       f"file holds {4 + len(sizes)}")
    shape = tuple(int(n) for n in np.frombuffer(sizes, dtype=">u4"))

    dtype = IDX_DTYPES[type_code]
    expected = math.prod(shape) * dtype.itemsize
    about = (f"header says shape {shape} of {dtype.newbyteorder('=').name}, expected "
             f"{expected} payload bytes")
    if size is not None and size - header_len != expected:  # a plain file: known length
        problem = "truncated" if size - header_len < expected else "has trailing bytes"
        raise IDXError(f"{path}: IDX payload {problem}; {about}, received {size - header_len}")
    if max_bytes is not None and expected > max_bytes:  # checked before allocating
        raise IDXError(f"{path}: IDX payload truncated; {about}, but the compressed file can "
                       f"hold at most {max_bytes} bytes")

    array = np.empty(shape, dtype=dtype.newbyteorder("="))  # filled with big-endian bytes
    received = _read_exactly(stream, array)
    if received < expected:
        raise IDXError(f"{path}: IDX payload truncated; {about}, received {received}")
    if stream.read(1):  # read no further: the rest may be a gzip bomb
        raise IDXError(f"{path}: IDX payload has trailing bytes; {about}, received more")
    if not dtype.isnative:
        array.byteswap(inplace=True)  # big-endian bytes -> native values
    return array


def write_idx(path, array, compress=None):
    """Write ``array`` as an IDX file, atomically (temporary file, then rename).

    ``array`` must have 1 to 255 dimensions, each below 2**32, and one of the IDX element
    types. ``compress`` picks gzip; None means gzip exactly when the name ends in ``.gz``.
    """
    path = Path(path)
    array = np.asarray(array)
    type_code = next((code for code, dt in IDX_DTYPES.items()
                      if dt.newbyteorder("=") == array.dtype.newbyteorder("=")), None)
    if type_code is None:
        allowed = ", ".join(dt.newbyteorder("=").name for dt in IDX_DTYPES.values())
        raise IDXError(f"write_idx: array dtype must be one of {allowed}; got {array.dtype}")
    if not 1 <= array.ndim <= 255:
        raise IDXError(f"write_idx: array must have 1 to 255 dimensions; got ndim={array.ndim}")
    if any(size >= 2**32 for size in array.shape):
        raise IDXError(f"write_idx: every dimension must be below 2**32; got {array.shape}")

    header = bytes([0, 0, type_code, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    payload = header + np.ascontiguousarray(array, IDX_DTYPES[type_code]).tobytes()
    if compress is None:
        compress = path.name.endswith(".gz")
    if compress:
        payload = gzip.compress(payload, mtime=0)  # mtime=0: same array, same bytes
    atomic_write_bytes(path, payload)
