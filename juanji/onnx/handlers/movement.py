"""Gather, Slice, Concat, Split, Reshape, Flatten, Transpose, Squeeze, Unsqueeze, Expand, Tile.

Each runs in NumPy on arrays (shape arithmetic stays exact and is recomputed at every call)
and with juanji's differentiable movement ops on Tensors. Attributes that became inputs over
the opsets (Slice's starts/ends at 10, Split's split and (Un)Squeeze's axes at 13, Reshape's
shape at 5) are read from wherever the node's opset puts them.
"""

import numpy as np

from juanji.onnx.handlers.base import Unsupported, as_float, attr_or_input, data, ints, is_array
from juanji.tensor import Tensor, cat


def gather(node, ctx):
    axis = node.attr("axis", 0)

    def step(x, indices):
        indices = data(indices).astype(np.int64)
        a = axis % x.ndim
        n = x.shape[a]
        if np.any((indices < -n) | (indices >= n)):
            raise IndexError(f"Gather indices must be in [{-n}, {n - 1}] for axis {a} of shape "
                             f"{tuple(x.shape)}; got {indices.min()}..{indices.max()}")
        indices = np.where(indices < 0, indices + n, indices)
        if is_array(x):
            return np.take(x, indices, axis=a)
        return x[(slice(None),) * a + (indices,)]

    return step


def _slice_index(shape, starts, ends, axes, steps):
    """ONNX Slice bounds (negative counts from the end, out-of-range clamped) as slices."""
    index = [slice(None)] * len(shape)
    axes = range(len(starts)) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    for start, end, axis, step in zip(starts, ends, axes, steps):
        if step == 0:
            raise ValueError("Slice steps must be non-zero")
        axis %= len(shape)
        n = shape[axis]
        start, end = (start + n if start < 0 else start), (end + n if end < 0 else end)
        if step > 0:
            start, end = min(max(start, 0), n), min(max(end, 0), n)
        else:
            start, end = min(max(start, 0), n - 1), min(max(end, -1), n - 1)
        index[axis] = slice(start, None if end < 0 else end, step)
    return tuple(index)


def slice_(node, ctx):
    def step(x, *rest):
        if node.opset < 10:
            bounds = [node.attr("starts"), node.attr("ends"), node.attr("axes"), None]
        else:
            bounds = [None if r is None else ints(r) for r in rest] + [None] * (4 - len(rest))
        return x[_slice_index(x.shape, *bounds)]

    return step


def concat(node, ctx):
    axis = node.attr("axis")

    def step(*xs):
        xs = [x for x in xs if x is not None]
        if all(is_array(x) for x in xs):
            return np.concatenate([np.asarray(x) for x in xs], axis=axis)
        like = next(x for x in xs if isinstance(x, Tensor))
        xs = [as_float(x, like) for x in xs if x.shape[axis % like.ndim] or x.ndim != like.ndim]
        return cat(xs, axis)

    return step


def split(node, ctx):
    axis = node.attr("axis", 0)
    count = len(node.outputs)

    def step(x, sizes=None):
        n = x.shape[axis % x.ndim]
        sizes = attr_or_input(node, [None, sizes], 1, "split")
        if not sizes:
            parts = node.attr("num_outputs", count)
            chunk = -(-n // parts)
            sizes = [min(chunk, n - i * chunk) for i in range(parts)]
        if sum(sizes) != n:
            raise ValueError(f"Split sizes {sizes} must add up to {n}, the size of axis {axis}")
        ends = np.cumsum(sizes)
        lead = (slice(None),) * (axis % x.ndim)
        return tuple(x[lead + (slice(int(e - s), int(e)),)] for s, e in zip(sizes, ends))

    return step


def reshape(node, ctx):
    allow_zero = bool(node.attr("allowzero", 0))

    def step(x, shape=None):
        shape = ints(shape) if shape is not None else list(node.attr("shape"))
        if not allow_zero:
            shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
        return np.reshape(x, shape) if is_array(x) else x.reshape(tuple(shape))

    return step


def flatten(node, ctx):
    axis = node.attr("axis", 1)

    def step(x):
        a = axis + x.ndim if axis < 0 else axis
        rows = int(np.prod(x.shape[:a], dtype=np.int64))
        shape = (rows, int(np.prod(x.shape[a:], dtype=np.int64)))
        return np.reshape(x, shape) if is_array(x) else x.reshape(shape)

    return step


def transpose(node, ctx):
    perm = node.attr("perm")

    def step(x):
        axes = tuple(perm) if perm is not None else tuple(reversed(range(x.ndim)))
        return np.transpose(x, axes) if is_array(x) else x.permute(axes)

    return step


def squeeze(node, ctx):
    def step(x, axes=None):
        axes = attr_or_input(node, [None, axes], 1, "axes")
        if axes is None:
            shape = tuple(n for n in x.shape if n != 1)
        else:
            drop = {a % x.ndim for a in axes}
            if any(x.shape[a] != 1 for a in drop):
                raise ValueError(f"Squeeze axes {axes} must have size 1; got shape "
                                 f"{tuple(x.shape)}")
            shape = tuple(n for i, n in enumerate(x.shape) if i not in drop)
        return np.reshape(x, shape) if is_array(x) else x.reshape(shape)

    return step


def unsqueeze(node, ctx):
    def step(x, axes=None):
        axes = attr_or_input(node, [None, axes], 1, "axes")
        rank = x.ndim + len(axes)
        shape = list(x.shape)
        for a in sorted(a % rank for a in axes):
            shape.insert(a, 1)
        return np.reshape(x, shape) if is_array(x) else x.reshape(tuple(shape))

    return step


def expand(node, ctx):
    def step(x, shape):
        out = np.broadcast_shapes(tuple(x.shape), tuple(ints(shape)))
        if is_array(x):
            return np.broadcast_to(x, out).copy()
        return x.reshape((1,) * (len(out) - x.ndim) + tuple(x.shape)).expand(out)

    return step


def tile(node, ctx):
    def step(x, repeats):
        repeats = ints(repeats)
        if is_array(x):
            return np.tile(x, repeats)
        spread = tuple(v for n in x.shape for v in (1, n))  # (1, d0, 1, d1, ...)
        wide = tuple(v for r, n in zip(repeats, x.shape) for v in (r, n))
        return x.reshape(spread).expand(wide).reshape(tuple(r * n for r, n in
                                                          zip(repeats, x.shape)))

    return step


def _reshape_check(node, ctx):
    if node.opset < 5 and node.attr("shape") is None:
        raise Unsupported("Reshape-1 without a shape attribute")
    return reshape(node, ctx)


HANDLERS = {
    "Gather": gather,
    "Slice": slice_,
    "Concat": concat,
    "Split": split,
    "Reshape": _reshape_check,
    "Flatten": flatten,
    "Transpose": transpose,
    "Squeeze": squeeze,
    "Unsqueeze": unsqueeze,
    "Expand": expand,
    "Tile": tile,
}
