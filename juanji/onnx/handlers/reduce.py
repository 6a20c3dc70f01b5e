"""ReduceMean/Sum/Prod/Max/Min/L1/L2/SumSquare and ArgMax/ArgMin.

`axes` is an attribute before opset 18 (before 13 for ReduceSum) and an optional input after;
no axes reduces over all of them unless noop_with_empty_axes=1 (then the op is the
identity). keepdims defaults to 1; ReduceProd of an integer array keeps its dtype (NumPy's
prod widens it). ArgMax/ArgMin give int64 indices (no gradient), the last tied position with
select_last_index=1.
"""

import numpy as np

from juanji.onnx.handlers.base import as_float, data, is_array


def _axes_input_from(op):
    return 13 if op == "ReduceSum" else 18


def _reduce(tensor_fn, array_fn):
    def build(node, ctx):
        keepdims = bool(node.attr("keepdims", 1))
        noop = bool(node.attr("noop_with_empty_axes", 0))
        from_input = node.opset >= _axes_input_from(node.op_type)

        def step(x, axes=None):
            if from_input:
                axes = None if axes is None else [int(a) for a in data(axes).reshape(-1)]
            else:
                axes = node.attr("axes")
            if not axes:
                if noop:
                    return x
                axes = range(x.ndim)
            axes = tuple(sorted({int(a) % max(x.ndim, 1) for a in axes}))
            if is_array(x):
                return array_fn(x, axes, keepdims)
            return tensor_fn(as_float(x), axes, keepdims)

        return step
    return build


def _sum_square(x, axes, keepdims):
    return (x * x).sum(axes, keepdim=keepdims)


def _l2(x, axes, keepdims):
    return _sum_square(x, axes, keepdims).sqrt()


def _arg(largest):
    def build(node, ctx):
        axis, keepdims = node.attr("axis", 0), bool(node.attr("keepdims", 1))
        last = bool(node.attr("select_last_index", 0))

        def step(x):
            x = data(x)
            a = axis % x.ndim
            if last:
                flipped = np.flip(x, a)
                index = flipped.argmax(a) if largest else flipped.argmin(a)
                index = x.shape[a] - 1 - index
            else:
                index = x.argmax(a) if largest else x.argmin(a)
            index = index.astype(np.int64)
            return np.expand_dims(index, a) if keepdims else index

        return step
    return build


HANDLERS = {
    "ReduceMean": _reduce(lambda x, a, k: x.mean(a, keepdim=k),
                          lambda x, a, k: x.mean(a, keepdims=k)),
    "ReduceSum": _reduce(lambda x, a, k: x.sum(a, keepdim=k),
                         lambda x, a, k: x.sum(a, keepdims=k)),
    "ReduceProd": _reduce(lambda x, a, k: x.prod(a, keepdim=k),
                          lambda x, a, k: x.prod(a, keepdims=k, dtype=x.dtype)),
    "ReduceMax": _reduce(lambda x, a, k: x.max(a, keepdim=k),
                         lambda x, a, k: x.max(a, keepdims=k)),
    "ReduceMin": _reduce(lambda x, a, k: x.min(a, keepdim=k),
                         lambda x, a, k: x.min(a, keepdims=k)),
    "ReduceL1": _reduce(lambda x, a, k: x.abs().sum(a, keepdim=k),
                        lambda x, a, k: np.abs(x).sum(a, keepdims=k)),
    "ReduceL2": _reduce(_l2, lambda x, a, k: np.sqrt((x * x).sum(a, keepdims=k))),
    "ReduceSumSquare": _reduce(_sum_square, lambda x, a, k: (x * x).sum(a, keepdims=k)),
    "ArgMax": _arg(True),
    "ArgMin": _arg(False),
}
