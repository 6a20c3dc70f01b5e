"""One emitter per juanji op: `emit(graph, call) -> output value name` writes the ONNX nodes
that compute what the op computed (see exporter.py for `graph` and `call`).

`call.inputs` are the op's input Tensors (None for an absent optional one), `call.params` its
keyword parameters, `call.out` its output. This file holds the tensor ops (elementwise,
movement, resizing, reductions) and the registry, EMITTERS; the layer ops are in
export_layers.py. Ops with no ONNX form are listed in REFUSED with the reason.
"""

import numpy as np

from juanji.onnx import export_layers as layers
from juanji.onnx.export_layers import int_list, unary
from juanji.ops import (
    deform,
    dropout,
    elementwise,
    linalg,
    loss,
    movement,
    pool,
    reduce,
    resize,
)

INT64_MIN = -(2**63)


def _refuse_batch(graph, call, what):
    raise ValueError(f"cannot keep the batch dynamic: {what} in layer {call.layer}; export "
                     "with dynamic_batch=False")


# ---- elementwise --------------------------------------------------------------------------
def _binary(op):
    def emit(g, call):
        peers = [g.value(t) for t in call.inputs]
        return g.node(op, [g.batch_operand(t, peers, call) for t in call.inputs])
    emit.__name__ = op.lower()
    return emit


def power(g, call):
    x = call.inputs[0]
    return g.node("Pow", [g.value(x), g.scalar(call.params["p"], x.data)])


def clamp(g, call):
    x = call.inputs[0]
    lo, hi = call.params.get("lo"), call.params.get("hi")
    if np.ndim(lo) == 0 and np.ndim(hi) == 0:
        return g.node("Clip", [g.value(x), None if lo is None else g.scalar(lo, x.data),
                               None if hi is None else g.scalar(hi, x.data)])
    y = g.value(x)  # tensor bounds: elementwise max, then min
    if lo is not None:
        y = g.node("Max", [y, g.const(np.asarray(lo, x.dtype))])
    if hi is not None:
        y = g.node("Min", [y, g.const(np.asarray(hi, x.dtype))])
    return y


def where(g, call):
    a, b = call.inputs
    peers = [g.value(a), g.value(b)]
    return g.node("Where", [g.const(np.asarray(call.params["cond"], bool)),
                            g.batch_operand(a, peers, call), g.batch_operand(b, peers, call)])


# ---- linear algebra -----------------------------------------------------------------------
def linear(g, call):
    x, weight, bias = call.inputs
    if x.ndim == 2:
        inputs = [g.value(x), g.value(weight)] + ([g.value(bias)] if bias is not None else [])
        return g.node("Gemm", inputs, transB=1)
    y = g.node("MatMul", [g.value(x), g.node("Transpose", [g.value(weight)], perm=[1, 0])])
    return y if bias is None else g.node("Add", [y, g.value(bias)])


# ---- movement -----------------------------------------------------------------------------
def reshape(g, call):
    x, shape = call.inputs[0], list(call.out.shape)
    name = g.value(x)
    if name in g.batched:
        if not shape or shape[0] != x.shape[0]:
            _refuse_batch(g, call, f"a reshape of {list(x.shape)} to {shape} moves the batch "
                                   "axis")
        shape[0] = 0  # ONNX Reshape: 0 copies the input's size (the run-time batch)
    return g.node("Reshape", [name, g.ints(shape)])


def permute(g, call):
    axes = int_list(call.params["axes"])
    name = g.value(call.inputs[0])
    if name in g.batched and axes and axes[0] != 0:
        _refuse_batch(g, call, f"a permute {tuple(axes)} moves the batch axis")
    return g.node("Transpose", [name], perm=axes)


def expand(g, call):
    name, shape = g.value(call.inputs[0]), list(call.out.shape)
    if name in g.batched:
        shape[0] = 1  # Expand broadcasts both ways: 1 keeps the run-time batch
    return g.node("Expand", [name, g.ints(shape)])


def get_item(g, call):
    """Basic indexing (ints, slices, None, Ellipsis) as one Slice, Gathers and an Unsqueeze;
    one 1-D integer or boolean array index as a Gather."""
    x = call.inputs[0]
    index = call.params["index"]
    parts = list(index) if isinstance(index, tuple) else [index]
    arrays = [i for i, p in enumerate(parts) if isinstance(p, (np.ndarray, list))]
    ints = [p for p in parts if isinstance(p, (int, np.integer)) and not isinstance(p, bool)]
    if len(arrays) > 1 or (arrays and ints) or any(np.ndim(parts[i]) != 1 for i in arrays):
        raise ValueError(f"cannot export the indexing in layer {call.layer}: only ints, slices, "
                         "None, Ellipsis and one 1-D index array are supported")
    real = sum(1 for p in parts if p is not None and p is not Ellipsis)
    at = next((i for i, p in enumerate(parts) if p is Ellipsis), len(parts))
    parts = parts[:at] + [slice(None)] * (x.ndim - real) + parts[at + 1:]
    starts, ends, steps, axes, gathers, news = [], [], [], [], [], []
    axis = position = 0
    for part in parts:
        if part is None:
            news.append(position)
            position += 1
            continue
        size = x.shape[axis]
        if isinstance(part, slice):
            start, stop, step = part.indices(size)
            if (start, stop, step) != (0, size, 1):
                starts.append(start)
                ends.append(INT64_MIN if step < 0 and stop < 0 else stop)
                steps.append(step)
                axes.append(axis)
            position += 1
        elif isinstance(part, (np.ndarray, list)):
            picked = np.asarray(part)
            picked = np.nonzero(picked)[0] if picked.dtype == bool else picked
            gathers.append((axis, picked.astype(np.int64)))
            position += 1
        else:
            gathers.append((axis, np.asarray(int(part) % size, np.int64)))  # drops the axis
        axis += 1
    y = g.value(x)
    moves_batch = y in g.batched and (0 in axes or any(a == 0 for a, _ in gathers) or 0 in news)
    if axes:
        y = g.node("Slice", [y, g.ints(starts), g.ints(ends), g.ints(axes), g.ints(steps)])
    for gather_axis, picked in reversed(gathers):  # last axis first: earlier numbers hold
        y = g.node("Gather", [y, g.const(picked)], axis=gather_axis)
    if news:
        y = g.node("Unsqueeze", [y, g.ints(news)])
    if y == g.value(x):  # x[...] or x[:]: a copy
        y = g.node("Identity", [y])
    if moves_batch:
        g.unbatched.add(y)
    return y


def concat(g, call):
    axis = int(call.params.get("axis", 0)) % call.out.ndim
    names = [g.value(t) for t in call.inputs]
    ref = next((n for n in names if n in g.batched), None)
    if axis != 0:  # a batch constant: one sample, expanded to the run-time batch of `ref`
        for i, t in enumerate(call.inputs):
            if g.is_batch_constant(t, names):
                names[i] = g.node("Expand", [g.sample(t, call), g.batch_shape(ref, t.shape[1:])])
    return g.node("Concat", names, axis=axis)


def stack(g, call):
    axis = int(call.params.get("axis", 0)) % call.out.ndim
    names = [g.node("Unsqueeze", [g.value(t), g.ints([axis])]) for t in call.inputs]
    y = g.node("Concat", names, axis=axis)
    if axis == 0:
        g.unbatched.add(y)
    return y


def constant_pad(g, call):
    """movement.Pad: NumPy-style ((before, after), ...) over every axis, a constant value."""
    x = call.inputs[0]
    pad = [tuple(p) for p in call.params["pad"]]
    pads = [int(b) for b, _ in pad] + [int(a) for _, a in pad]
    return g.node("Pad", [g.value(x), g.ints(pads), g.scalar(call.params.get("value", 0.0),
                                                             x.data)], mode="constant")


_PAD_MODES = {"constant": "constant", "reflect": "reflect", "replicate": "edge",
              "circular": "wrap"}


def border_pad(g, call):
    """resize.Pad: the trailing axes, constant / reflect / replicate (edge) / circular (wrap,
    opset 19); negative amounts crop."""
    x = call.inputs[0]
    mode = call.params.get("mode", "constant")
    if mode == "circular" and g.opset < 19:
        raise ValueError(f"cannot export the circular padding in layer {call.layer} at opset "
                         f"{g.opset}: ONNX Pad has mode 'wrap' from opset 19")
    pairs = [(0, 0)] * (x.ndim - len(call.params["pads"])) + list(call.params["pads"])
    pads = [int(b) for b, _ in pairs] + [int(a) for _, a in pairs]
    inputs = [g.value(x), g.ints(pads)]
    if mode == "constant":
        inputs.append(g.scalar(call.params.get("value", 0.0), x.data))
    return g.node("Pad", inputs, mode=_PAD_MODES[mode])


def nearest_resize(g, call):
    """Gathers of PyTorch's source rows and columns: exactly the cells juanji picks."""
    x = call.inputs[0]
    y = g.value(x)
    index = call.params["index"]
    for axis, picked in zip(range(x.ndim - len(index), x.ndim), index):
        y = g.node("Gather", [y, g.const(np.asarray(picked, np.int64))], axis=axis)
    return y


def linear_resize(g, call):
    """Per axis, last first (juanji's order): x[i0] * w0 + x[i1] * w1 with PyTorch's taps."""
    x = call.inputs[0]
    y = g.value(x)
    taps = call.params["taps"]
    for axis in reversed(range(x.ndim - len(taps), x.ndim)):
        i0, i1, w0, w1 = taps[axis - x.ndim + len(taps)]
        y = _blend(g, y, axis, x, [(i0, w0), (i1, w1)])
    return y


def filter_resize(g, call):
    """Per axis, last first: sum over the K taps of x[index[:, k]] * weight[:, k] (cubic and
    antialiased resizes), the weights juanji computed, so onnxruntime gives the same values."""
    x = call.inputs[0]
    y = g.value(x)
    taps = call.params["taps"]
    for axis in reversed(range(x.ndim - len(taps), x.ndim)):
        tap = taps[axis - x.ndim + len(taps)]
        if tap is not None:
            index, weight = (np.asarray(t) for t in tap)  # (O, K) each
            y = _blend(g, y, axis, x, [(index[:, k], weight[:, k])
                                       for k in range(index.shape[1])])
    return y


def _blend(g, y, axis, x, picks):
    """Sum over (index, weight) picks of Gather(y, index, axis) * weight (broadcast along
    `axis`); x is the op's input, for its rank and dtype."""
    shape = (-1,) + (1,) * (x.ndim - 1 - axis)  # the weights broadcast along `axis`
    terms = [g.node("Mul", [g.node("Gather", [y, g.const(np.asarray(i, np.int64))], axis=axis),
                            g.const(np.asarray(w, x.dtype).reshape(shape))])
             for i, w in picks]
    if len(terms) == 1:
        return terms[0]
    return g.node("Add" if len(terms) == 2 else "Sum", terms)


# ---- reductions ---------------------------------------------------------------------------
def _axes(call):
    return reduce._axes(call.params.get("axis"), call.inputs[0].ndim)


def _reduction(op):
    def emit(g, call):
        if op == "ReduceMax" and not call.params.get("largest", True):
            name = "ReduceMin"
        else:
            name = op
        x, axes = g.value(call.inputs[0]), _axes(call)
        y = g.reduce(name, x, list(axes), call.params.get("keepdims", False))
        if x in g.batched and 0 in axes:
            g.unbatched.add(y)
        return y
    emit.__name__ = op.lower()
    return emit


def var(g, call):
    x, axes = call.inputs[0], _axes(call)
    name = g.value(x)
    if name in g.batched and 0 in axes:
        _refuse_batch(g, call, "a variance over the batch axis")
    count = int(np.prod([x.shape[a] for a in axes]))
    denom = max(count - call.params.get("correction", 1), 0)
    centered = g.node("Sub", [name, g.reduce("ReduceMean", name, list(axes), True)])
    squares = g.reduce("ReduceSum", g.node("Mul", [centered, centered]), list(axes),
                       call.params.get("keepdims", False))
    return g.node("Div", [squares, g.scalar(denom, x.data)])


EMITTERS = {
    **layers.EMITTERS,
    elementwise.Add: _binary("Add"),
    elementwise.Sub: _binary("Sub"),
    elementwise.Mul: _binary("Mul"),
    elementwise.Div: _binary("Div"),
    elementwise.Maximum: _binary("Max"),
    elementwise.Neg: unary("Neg"),
    elementwise.Exp: unary("Exp"),
    elementwise.Log: unary("Log"),
    elementwise.Sqrt: unary("Sqrt"),
    elementwise.Abs: unary("Abs"),
    elementwise.Pow: power,
    elementwise.Clamp: clamp,
    elementwise.Where: where,
    linalg.MatMul: _binary("MatMul"),
    linalg.Linear: linear,
    movement.Reshape: reshape,
    movement.Permute: permute,
    movement.Expand: expand,
    movement.GetItem: get_item,
    movement.Concat: concat,
    movement.Stack: stack,
    movement.Pad: constant_pad,
    resize.Pad: border_pad,
    resize.NearestResize: nearest_resize,
    resize.LinearResize: linear_resize,
    resize.FilterResize: filter_resize,
    reduce.Sum: _reduction("ReduceSum"),
    reduce.Mean: _reduction("ReduceMean"),
    reduce.Max: _reduction("ReduceMax"),
    reduce.Prod: _reduction("ReduceProd"),
    reduce.Var: var,
}

_LOSS = "a loss: export the model without it"
REFUSED = {
    deform.DeformConv2d: "deformable convolution has no ONNX form that runtimes run "
                         "(DeformConv, opset 19, is not implemented by onnxruntime's CPU)",
    dropout.Dropout: "dropout ran in training mode inside an eval-mode forward (a functional "
                     "dropout with training=True); its output is random",
    dropout.AlphaDropout: "alpha dropout ran in training mode inside an eval-mode forward",
    pool.MaxUnpool2d: "max-unpooling needs MaxPool's indices, which export does not keep",
    **{op: _LOSS for op in (loss.CrossEntropy, loss.NLL, loss.MSE, loss.L1, loss.SmoothL1,
                            loss.Huber, loss.BinaryCrossEntropy,
                            loss.BinaryCrossEntropyWithLogits, loss.MarginRanking,
                            loss.CosineEmbedding, loss.Contrastive)},
}
