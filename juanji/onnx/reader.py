"""Reading an ONNX file as untrusted input: parse, check, and turn tensors into arrays.

The file is parsed with the `onnx` package (protobuf only: nothing in it is executed).
External-data tensors are read here, not by `onnx.load`, so that every location is checked:
it must be a relative path that stays inside the model's folder after resolving `..` and
symlinks (the path-traversal class of CVE-2024-27318). A tensor whose declared size
(prod(dims) * itemsize) exceeds the bytes it actually has, or `max_tensor_bytes`, is refused
before anything is allocated. float16 and bfloat16 tensors are upcast to float32.
"""

import os

import numpy as np

INSTALL_HINT = "pip install 'juanji[onnx]'"
MAX_TENSOR_BYTES = 1 << 32  # 4 GiB: more than any CNN weight; a guard against forged dims


class OnnxImportError(ValueError):
    """A model file juanji cannot read or run; the message names the node, input or tensor.

    `problems` holds one line per node at fault when loading found several (else empty).
    """

    def __init__(self, message, problems=()):
        super().__init__(message)
        self.problems = list(problems)


def import_onnx():
    """The `onnx` package, imported on first use (an optional extra)."""
    try:
        import onnx
    except ImportError as error:
        raise ImportError(f"juanji.onnx needs the onnx package: {INSTALL_HINT}") from error
    return onnx


def read_model(source):
    """Parse `source` (a path, or the file's bytes) into (ModelProto, folder or None)."""
    onnx = import_onnx()
    from google.protobuf.message import DecodeError

    if isinstance(source, (bytes, bytearray, memoryview)):
        data, folder, label = bytes(source), None, "the given bytes"
    elif isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no ONNX file at {path!r}")
        with open(path, "rb") as f:
            data = f.read()
        folder, label = os.path.dirname(os.path.abspath(path)), repr(path)
    else:
        raise TypeError(f"load expects a path or bytes; got {type(source).__name__}")
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError) as error:
        raise OnnxImportError(f"{label} is not an ONNX model (or is truncated): "
                              f"{error}") from None
    if model.ir_version <= 0 or not model.HasField("graph") or not model.graph.output:
        raise OnnxImportError(f"{label} is not an ONNX model: it has no ir_version, graph or "
                              f"graph outputs")
    return model, folder


def _np_dtype(data_type, name):
    onnx = import_onnx()
    tp = onnx.TensorProto
    if data_type in (tp.STRING, tp.UNDEFINED) or data_type not in NUMERIC_TYPES:
        type_name = tp.DataType.Name(data_type) if data_type in tp.DataType.values() else \
            str(data_type)
        raise OnnxImportError(f"tensor {name!r} has element type {type_name}; juanji reads "
                              f"float, double, float16, bfloat16, bool and integer tensors")
    return onnx.helper.tensor_dtype_to_np_dtype(data_type)


NUMERIC_TYPES = {1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 16}  # TensorProto element types
_TYPED_FIELD = {1: "float_data", 2: "int32_data", 3: "int32_data", 4: "int32_data",
                5: "int32_data", 6: "int32_data", 7: "int64_data", 9: "int32_data",
                10: "int32_data", 11: "double_data", 12: "uint64_data", 13: "uint64_data",
                16: "int32_data"}


def declared_bytes(tensor):
    """prod(dims) * itemsize as the file declares it, with a check on each dim."""
    count = 1
    for d in tensor.dims:
        if d < 0:
            raise OnnxImportError(f"tensor {tensor.name!r} has a negative dimension {d} in "
                                  f"{list(tensor.dims)}")
        count *= int(d)
    itemsize = _np_dtype(tensor.data_type, tensor.name).itemsize
    return count, count * itemsize


def to_array(tensor, folder, max_bytes=MAX_TENSOR_BYTES):
    """A TensorProto as a NumPy array (float16/bfloat16 as float32), checked before allocation.

    folder: the model's folder, where external data lives (None when loaded from bytes).
    """
    onnx = import_onnx()
    count, nbytes = declared_bytes(tensor)
    if nbytes > max_bytes:
        raise OnnxImportError(f"tensor {tensor.name!r} declares {nbytes} bytes "
                              f"(dims {list(tensor.dims)}), over the limit of {max_bytes}")
    if tensor.data_location == onnx.TensorProto.EXTERNAL:
        raw = _read_external(tensor, folder, nbytes)
        tensor = onnx.TensorProto(dims=tensor.dims, data_type=tensor.data_type,
                                  name=tensor.name, raw_data=raw)
    elif tensor.HasField("raw_data"):
        if len(tensor.raw_data) != nbytes:
            raise OnnxImportError(f"tensor {tensor.name!r} declares {nbytes} bytes (dims "
                                  f"{list(tensor.dims)}) but holds {len(tensor.raw_data)}")
    else:
        held = len(getattr(tensor, _TYPED_FIELD[tensor.data_type]))
        if held != count:
            raise OnnxImportError(f"tensor {tensor.name!r} declares {count} values (dims "
                                  f"{list(tensor.dims)}) but holds {held}")
    array = onnx.numpy_helper.to_array(tensor)
    if array.dtype == np.float16 or array.dtype.name == "bfloat16":
        array = array.astype(np.float32)
    return np.array(array)  # writable, owns its memory


def _read_external(tensor, folder, nbytes):
    """The bytes of an external-data tensor, from a file inside `folder` only."""
    info = {entry.key: entry.value for entry in tensor.external_data}
    name = tensor.name
    if folder is None:
        raise OnnxImportError(f"tensor {name!r} keeps its data in an external file; load the "
                              f"model from its path, not from bytes")
    location = info.get("location", "")
    if not location or os.path.isabs(location) or location.startswith(("/", "\\")) or \
            ".." in location.replace("\\", "/").split("/") or ":" in location:
        raise OnnxImportError(f"tensor {name!r}: external-data location {location!r} must be "
                              f"a relative path inside the model's folder")
    root = os.path.realpath(folder)
    path = os.path.realpath(os.path.join(root, location))
    if os.path.commonpath([root, path]) != root:
        raise OnnxImportError(f"tensor {name!r}: external-data location {location!r} leaves "
                              f"the model's folder (it resolves to {path!r})")
    if not os.path.isfile(path):
        raise OnnxImportError(f"tensor {name!r}: external-data file {location!r} is missing "
                              f"next to the model")
    offset = int(info.get("offset", 0) or 0)
    length = int(info.get("length", nbytes) or nbytes)
    available = os.path.getsize(path) - offset
    if offset < 0 or length != nbytes or available < nbytes:
        raise OnnxImportError(f"tensor {name!r} declares {nbytes} bytes (dims "
                              f"{list(tensor.dims)}) but its external data {location!r} has "
                              f"length {length} and {max(available, 0)} bytes from offset "
                              f"{offset}")
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(nbytes)
