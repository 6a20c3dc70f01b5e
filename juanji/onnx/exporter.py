"""ONNX export: `juanji.onnx.export(model, example_input, path)` writes the ops one forward runs.

Tracing: every juanji op is a Function and every call goes through `Function.run`, which calls
`juanji.function._tracer` when it is set. Export sets it for one eval-mode, no-grad forward of
the example input and records each call (the Function, its input tensors, its keyword
parameters, its output) with the module it ran in (forward pre/post hooks keep a stack of
module names). The calls then become ONNX nodes, one emitter per op class (export_ops.py
and export_layers.py). The recorded calls hold every intermediate of the example's forward
until the graph is built, so a small example input is best.

A value is named by what it is: the graph input, a node's output, a weight (an initializer
named by its `state_dict` key, found by the identity of the Parameter, the buffer or its
array), or a constant the forward made (an initializer `const_K`). Only what the outputs need
is kept.

The batch axis: with `dynamic_batch`, axis 0 of each input is `N`, and a value computed from
an input keeps axis 0 as `N` while its size stays the example's batch size. Sizes a forward
reads from a tensor in Python (`x.view(x.size(0), -1)`) become constants, except axis 0 of a
Reshape of a batched value (written as 0, "copy"); a constant that fills the batch axis next
to batched values (zeros concatenated as extra channels) must hold one sample repeated, and is
broadcast to the run-time batch. Trace with a batch of 2 or more: a batch of 1 cannot tell
the batch axis from a size-1 axis a forward squeezes away.
"""

import collections

import numpy as np

from juanji import function
from juanji.onnx.reader import import_onnx
from juanji.tensor import Tensor

MIN_OPSET = 13  # Softmax on one axis, Squeeze/Unsqueeze/ReduceSum axes as inputs


class Graph:
    """The graph being built: nodes, initializers and the name of every value met so far."""

    def __init__(self, onnx, opset, batch, weights):
        self.onnx, self.opset = onnx, opset
        self.batch = batch  # the example's batch size, or None when the batch is static
        self.weights = weights  # id(Parameter, buffer or its array) -> state_dict key
        self.weight_keys = set(weights.values())
        self.nodes = []
        self.initializers = {}  # name -> array
        self.names = {}  # id(tensor or array) -> value name
        self.batched = set()  # value names whose axis 0 is the run-time batch N
        self.unbatched = set()  # outputs an emitter marked as no longer batched
        self.scope = ""  # the module running the op being emitted: "/layer1/0/conv1"
        self.counts = collections.Counter()

    # ---- values -----------------------------------------------------------------------
    def value(self, x):
        """The value name of a tensor or array: traced, a weight, or a constant. Names are
        kept by identity, which stays unique while the recorded calls hold the tensors."""
        for key in (id(x), id(getattr(x, "data", x))):
            if key in self.names:
                return self.names[key]
        array = x.data if isinstance(x, Tensor) else np.asarray(x)
        name = self.weights.get(id(x), self.weights.get(id(array)))
        if name is not None:
            self.initializers[name] = array
        else:
            name = self.const(array)
        if isinstance(x, Tensor) or name in self.weight_keys:
            self.names[id(x)] = name
        return name

    def is_constant(self, x):
        """True for a tensor the forward made outside any op (not traced, not a weight)."""
        name = self.value(x)
        return name in self.initializers and name not in self.weight_keys

    def const(self, array, dtype=None):
        """A new initializer holding `array` (cast to `dtype` when given)."""
        name = f"const_{len(self.initializers)}"
        while name in self.initializers:
            name += "_"
        self.initializers[name] = np.array(array, dtype=dtype, order="C")  # keeps 0-d
        return name

    def ints(self, values):
        """An int64 1-D initializer (shapes, axes, slice bounds)."""
        return self.const(np.asarray(values, dtype=np.int64).reshape(-1))

    def scalar(self, value, like):
        """A 0-d initializer of `value` in the dtype of the array `like`."""
        return self.const(np.asarray(value, dtype=np.asarray(like).dtype))

    def sample(self, x, call):
        """One sample of a constant whose axis 0 is the example's batch size, as a (1, ...)
        constant that broadcasts over the run-time batch. Refused unless every sample is the
        same (a constant per sample cannot follow another batch size)."""
        array = x.data
        if not (array == array[:1]).all():
            raise ValueError(
                f"cannot keep the batch dynamic: {type(call.fn).__name__} in layer "
                f"{call.layer} takes a constant of shape {list(array.shape)} whose samples "
                "differ, made in Python from the example's batch size; export with "
                "dynamic_batch=False")
        return self.const(array[:1])

    def is_batch_constant(self, x, peers):
        """True for a constant sized by the example's batch next to batched `peers`."""
        return (self.batch is not None and any(p in self.batched for p in peers)
                and x.ndim >= 1 and x.shape[0] == self.batch and self.is_constant(x))

    def batch_operand(self, x, peers, call):
        """The value of operand `x`: a batch constant (see `is_batch_constant`) becomes its
        single sample, which broadcasts (see `sample`)."""
        return self.sample(x, call) if self.is_batch_constant(x, peers) else self.value(x)

    def batch_shape(self, ref, rest):
        """An int64 shape [N, *rest] with N read at run time from axis 0 of value `ref`."""
        shape = self.node("Shape", [ref])
        n = self.node("Slice", [shape, self.ints([0]), self.ints([1])])
        return self.node("Concat", [n, self.ints(rest)], axis=0)

    # ---- nodes ------------------------------------------------------------------------
    def node(self, op, inputs, outputs=1, **attrs):
        """Append a node named after the current module; returns its output name(s).
        A None input is an absent optional input (an empty name)."""
        base = f"{self.scope}/{op}"
        self.counts[base] += 1
        name = base if self.counts[base] == 1 else f"{base}_{self.counts[base] - 1}"
        names = [f"{name}_output_{i}" for i in range(outputs)]
        inputs = ["" if i is None else i for i in inputs]
        attrs = {k: v for k, v in attrs.items() if v is not None}
        self.nodes.append(self.onnx.helper.make_node(op, inputs, names, name=name, **attrs))
        return names[0] if outputs == 1 else names

    def reduce(self, op, x, axes, keepdims):
        """ReduceSum/Mean/Max/Min over `axes` (None: all); axes are an input from opset 18
        (13 for ReduceSum), an attribute before."""
        keepdims = int(bool(keepdims))
        if axes is None:
            return self.node(op, [x], keepdims=keepdims)
        axes = [int(a) for a in (axes if isinstance(axes, (tuple, list)) else [axes])]
        if op == "ReduceSum" or self.opset >= 18:
            return self.node(op, [x, self.ints(axes)], keepdims=keepdims)
        return self.node(op, [x], axes=axes, keepdims=keepdims)


class _Call:
    """One recorded op call and the module it ran in."""

    __slots__ = ("fn", "inputs", "params", "out", "scope", "layer")

    def __init__(self, fn, inputs, params, out, scope, layer):
        self.fn, self.inputs, self.params, self.out = fn, inputs, params, out
        self.scope, self.layer = scope, layer


class _Recorder:
    """The tracer hook: records op calls, and the stack of modules they run in."""

    def __init__(self):
        self.calls = []
        self.stack = []  # (name, module) of the modules being called

    def __call__(self, fn, inputs, params, out):
        name, module = self.stack[-1] if self.stack else ("", None)
        layer = f"'{name}' ({type(module).__name__})" if name else "the model's own forward"
        scope = "".join(f"/{part}" for part in name.split(".")) if name else ""
        self.calls.append(_Call(fn, list(inputs), dict(params), out, scope, layer))

    def pre_hook(self, name):
        def hook(module, inputs):
            self.stack.append((name, module))
        return hook

    def post_hook(self, module, inputs, output):
        self.stack.pop()


def _as_tensors(example_input):
    items = example_input if isinstance(example_input, (tuple, list)) else (example_input,)
    tensors = []
    for i, item in enumerate(items):
        if not isinstance(item, (Tensor, np.ndarray)):
            raise TypeError(f"example_input must be a Tensor or array, or a tuple of them; got "
                            f"{type(item).__name__} at position {i}")
        tensors.append(item if isinstance(item, Tensor) else Tensor(item))
    if not tensors:
        raise ValueError("example_input must hold at least one tensor; got an empty sequence")
    return tensors


def _outputs(out):
    if isinstance(out, Tensor):
        return [out]
    if isinstance(out, (tuple, list)) and out and all(isinstance(t, Tensor) for t in out):
        return list(out)
    raise TypeError(f"export needs a forward that returns a Tensor or a tuple of Tensors; got "
                    f"{type(out).__name__}")


def _trace(model, inputs):
    """Run one eval-mode, no-grad forward with the tracer on; returns (outputs, calls)."""
    from juanji.analysis.trace import hooked_eval_forward

    recorder = _Recorder()
    with hooked_eval_forward(model, recorder.pre_hook, recorder.post_hook):
        function._tracer = recorder
        try:
            out = model(*inputs)
        finally:
            function._tracer = None
    return _outputs(out), recorder.calls


def _weights(model):
    """id(Parameter or buffer) and id(its array) -> its state_dict key (the first, if shared)."""
    weights = {}
    for key, tensor in model._state_tensors().items():
        weights.setdefault(id(tensor), key)
        weights.setdefault(id(tensor.data), key)
    return weights


def _emit(graph, calls):
    """Turn the recorded calls into nodes; refuse every op that has no ONNX form at once."""
    from juanji.onnx.export_ops import EMITTERS, REFUSED

    problems = []
    for call in calls:
        kind = type(call.fn)
        if kind not in EMITTERS:
            reason = REFUSED.get(kind, "juanji has no ONNX export for it")
            problems.append(f"{kind.__name__} in layer {call.layer}: {reason}")
    if problems:
        raise ValueError("cannot export to ONNX: " + "; ".join(problems))
    for call in calls:
        graph.scope = call.scope
        name = EMITTERS[type(call.fn)](graph, call)
        inputs = [graph.names.get(id(t)) for t in call.inputs if t is not None]
        out = call.out
        if (graph.batch is not None and any(i in graph.batched for i in inputs)
                and out.ndim >= 1 and out.shape[0] == graph.batch
                and name not in graph.unbatched):
            graph.batched.add(name)
        graph.names[id(out)] = name
        graph.names[id(out.data)] = name  # a tensor made from it outside ops (detach())


def _prune(nodes, outputs):
    """The nodes the outputs depend on, in order, and the value names they read."""
    needed, kept = set(outputs), []
    for node in reversed(nodes):
        if any(o in needed for o in node.output):
            kept.append(node)
            needed.update(node.input)
    return kept[::-1], needed


def _value_info(onnx, name, tensor, batched):
    shape = list(tensor.shape)
    if batched:
        shape[0] = "N"
    elem = onnx.helper.np_dtype_to_tensor_dtype(tensor.data.dtype)
    return onnx.helper.make_tensor_value_info(name, elem, shape)


def export(model, example_input, path, *, opset=17, dynamic_batch=True):
    """Trace one forward of `model` on `example_input` and write it to `path` as ONNX.

    model: a juanji Module. It is traced in eval mode (batch norm uses its running statistics
    and stays BatchNormalization; dropout is the identity); its train/eval flags are restored.
    example_input: a Tensor or array (N, C, H, W), or a tuple of them for a forward with
    several inputs (graph inputs `input`, or `input_0`, `input_1`, ...; outputs `output`, or
    `output_0`, ... for a tuple). Use a batch of 2 or more (see the module docstring).
    opset: the ONNX opset, at least 13. dynamic_batch: axis 0 of every input and output is the
    symbolic `N`; False keeps the example's sizes.

    Weights become initializers named by their `state_dict` keys. The model is checked with
    `onnx.checker.check_model` before writing; nothing is returned. Raises ValueError naming
    the layer for an op with no ONNX form (DeformConv2d, losses, training-mode dropout) or a
    forward whose batch size cannot stay dynamic, TypeError for bad arguments, ImportError
    without `onnx`.
    """
    onnx = import_onnx()
    from juanji.nn import Module

    if not isinstance(model, Module):
        raise TypeError(f"model must be a juanji.nn.Module; got {type(model).__name__}")
    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= newest:
        raise ValueError(f"opset must be an int in [{MIN_OPSET}, {newest}]; got {opset!r}")
    inputs = _as_tensors(example_input)
    if dynamic_batch and any(t.ndim == 0 for t in inputs):
        raise ValueError("dynamic_batch needs inputs with a batch axis; got a 0-d input")
    batch = inputs[0].shape[0] if dynamic_batch else None
    if batch is not None and any(t.shape[0] != batch for t in inputs):
        raise ValueError(f"every input needs the same batch size; got shapes "
                         f"{[list(t.shape) for t in inputs]}")

    outputs, calls = _trace(model, inputs)
    graph = Graph(onnx, opset, batch, _weights(model))
    in_names = ["input"] if len(inputs) == 1 else [f"input_{i}" for i in range(len(inputs))]
    for name, t in zip(in_names, inputs):
        graph.names[id(t)] = name
        if batch is not None:
            graph.batched.add(name)
    _emit(graph, calls)

    out_names = ["output"] if len(outputs) == 1 else [f"output_{i}" for i in range(len(outputs))]
    graph.scope = ""
    renames, out_batched = {}, []
    for name, t in zip(out_names, outputs):
        value = graph.value(t)
        out_batched.append(value in graph.batched)
        produced = any(value in node.output for node in graph.nodes)
        if produced and value not in renames and value not in graph.initializers:
            renames[value] = name
        else:  # an input, a weight, or a value already returned: copy it
            graph.nodes.append(onnx.helper.make_node("Identity", [value], [name],
                                                     name=f"/{name}/Identity"))
    for node in graph.nodes:
        node.input[:] = [renames.get(i, i) for i in node.input]
        node.output[:] = [renames.get(o, o) for o in node.output]
    nodes, used = _prune(graph.nodes, out_names)

    initializers = [onnx.numpy_helper.from_array(array, name)
                    for name, array in graph.initializers.items() if name in used]
    proto_graph = onnx.helper.make_graph(
        nodes, type(model).__name__,
        [_value_info(onnx, n, t, batch is not None) for n, t in zip(in_names, inputs)],
        [_value_info(onnx, n, t, b) for n, t, b in zip(out_names, outputs, out_batched)],
        initializers)
    opsets = [onnx.helper.make_opsetid("", opset)]
    proto = onnx.helper.make_model(proto_graph, opset_imports=opsets, producer_name="juanji",
                                   ir_version=onnx.helper.find_min_ir_version_for(opsets))
    onnx.checker.check_model(proto)
    onnx.save(proto, path)
