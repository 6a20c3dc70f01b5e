"""Shape, Size, ConstantOfShape, Range, Cast, CastLike, Identity and Dropout.

Shape, Size, ConstantOfShape and Range make int64 (or the given type's) NumPy arrays at call
time, so graphs that compute sizes from the input (dynamic batch, H, W) work. Cast keeps a
float Tensor in the graph when the type does not change; a cast to another type gives a
NumPy array (integers and booleans carry no gradient; a float-to-float change of precision
is rare in CNN graphs and leaves the graph too). float16 and bfloat16 targets run as float32.
Dropout is the identity unless its opset-12 training_mode input is true.
"""

import numpy as np

from juanji.nn import functional as F
from juanji.onnx.handlers.base import Unsupported, as_float, data, is_array
from juanji.onnx.reader import MAX_TENSOR_BYTES, NUMERIC_TYPES, import_onnx, to_array


def _np_type(onnx_type):
    dtype = np.dtype(import_onnx().helper.tensor_dtype_to_np_dtype(onnx_type))
    return np.dtype(np.float32) if dtype == np.float16 or dtype.name == "bfloat16" else dtype


def shape(node, ctx):
    start, end = node.attr("start", 0), node.attr("end")

    def step(x):
        return np.array(x.shape[start:end], dtype=np.int64)

    return step


def size(node, ctx):
    return lambda x: np.array(int(np.prod(x.shape, dtype=np.int64)), dtype=np.int64)


def constant_of_shape(node, ctx):
    value = node.attr("value")
    fill = np.zeros(1, np.float32) if value is None else to_array(value[1], None)

    def step(dims):
        dims = [int(d) for d in data(dims).reshape(-1)]
        if any(d < 0 for d in dims):
            raise ValueError(f"ConstantOfShape dims must be >= 0; got {dims}")
        nbytes = int(np.prod(dims, dtype=np.int64)) * fill.dtype.itemsize
        if nbytes > MAX_TENSOR_BYTES:
            raise ValueError(f"ConstantOfShape would allocate {nbytes} bytes for shape {dims}, "
                             f"over the limit of {MAX_TENSOR_BYTES}")
        return np.full(dims, fill.reshape(-1)[0], dtype=fill.dtype)

    return step


def range_(node, ctx):
    def step(start, limit, delta):
        start, limit, delta = (data(v).reshape(()) for v in (start, limit, delta))
        if delta == 0:
            raise ValueError("Range delta must be non-zero")
        count = max(int(np.ceil((limit - start) / delta)), 0)
        return (start + np.arange(count) * delta).astype(start.dtype)

    return step


def _cast_to(x, dtype):
    if is_array(x):
        return np.asarray(x).astype(dtype)
    if x.dtype == dtype:
        return x
    return x.data.astype(dtype)


def cast(node, ctx):
    if node.attr("to") not in NUMERIC_TYPES:
        raise Unsupported(f"Cast to element type {node.attr('to')}: juanji casts to float, "
                          f"double, float16, bfloat16, bool and 8- to 64-bit integer types")
    dtype = _np_type(node.attr("to"))
    return lambda x: _cast_to(x, dtype)


def cast_like(node, ctx):
    return lambda x, like: _cast_to(x, data(like).dtype)


def dropout(node, ctx):
    def step(x, ratio=None, training=None):
        ratio = node.attr("ratio", 0.5) if node.opset < 12 else \
            (0.5 if ratio is None else float(data(ratio)))
        train = node.opset >= 12 and training is not None and bool(data(training))
        y = F.dropout(as_float(x), ratio, training=True) if train and ratio > 0 else x
        if len(node.outputs) < 2 or not node.outputs[1]:
            return y
        mask = (data(y) != 0) if train and ratio > 0 else np.ones(x.shape, dtype=bool)
        return y, mask

    return step


def identity(node, ctx):
    return lambda x: x


HANDLERS = {
    "Shape": shape,
    "Size": size,
    "ConstantOfShape": constant_of_shape,
    "Range": range_,
    "Cast": cast,
    "CastLike": cast_like,
    "Identity": identity,
    "Dropout": dropout,
}
