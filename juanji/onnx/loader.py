"""`load(path_or_bytes) -> OnnxModule`: an ONNX graph as a juanji Module.

Loading reads every tensor (see reader.py), then builds one step per node with the handler
for its op (handlers/), checking the whole graph first: every node whose op (or attribute
combination) juanji cannot run is listed in ONE error with its name and opset, before
anything runs. Weights feeding weight slots become juanji layers with Parameters, registered
as sub-modules named after their nodes, so `state_dict()` sees them and they train.

`forward(*inputs)` runs the steps in graph order; values are juanji Tensors (float data,
differentiable) or NumPy arrays (constants and integer shape arithmetic, recomputed at every
call, so dynamic batch and image sizes work). Each value is dropped after its last use. Runs
of elementwise arithmetic nodes run as one step, in one pass when they can (see chains.py).
"""

import copy
import re
import types

import numpy as np

from juanji import function, grad_mode
from juanji.nn import functional as F
from juanji.nn.module import Module, Parameter
from juanji.onnx.chains import ChainStep, fuse_chains
from juanji.onnx.handlers import HANDLERS
from juanji.onnx.handlers.activation import Overwriting
from juanji.onnx.handlers.base import Node, Unsupported
from juanji.onnx.handlers.conv import ConvStep
from juanji.onnx.handlers.norm import BatchNormStep
from juanji.onnx.reader import OnnxImportError, import_onnx, read_model, to_array
from juanji.tensor import Tensor


def load(source, *, max_tensor_bytes=None):
    """Read an ONNX model (a file path, or its bytes) as an `OnnxModule` in eval mode.

    float16 (and bfloat16) weights load upcast to float32, and float16 graph inputs run in
    float32. External-data files are read from the model's folder only. Raises
    `OnnxImportError` for a file that is not ONNX, is truncated, refers outside its folder,
    or uses ops juanji does not run (all such nodes listed at once). The `onnx` package is an
    optional extra: `pip install 'juanji[onnx]'`.
    """
    model, folder = read_model(source)
    limits = {} if max_tensor_bytes is None else {"max_bytes": int(max_tensor_bytes)}
    return OnnxModule(model, lambda t: to_array(t, folder, **limits)).eval()


def _sanitise(name):
    """A node or value name as a module attribute: [A-Za-z0-9_], not starting with a digit."""
    text = re.sub(r"[^0-9A-Za-z_]+", "_", name).strip("_")
    return f"n_{text}" if not text or text[0].isdigit() else text


def _attributes(node):
    onnx = import_onnx()
    attrs = {}
    for a in node.attribute:
        if a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
            attrs[a.name] = None  # subgraphs (If, Loop) are refused by the op check
            continue
        value = onnx.helper.get_attribute_value(a)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        elif isinstance(value, onnx.TensorProto):
            value = ("tensor", value)
        attrs[a.name] = value
    return attrs


class _Build:
    """What a handler sees at load time: constants, shared Parameters, layer registration."""

    def __init__(self, module, constants):
        self.module, self.constants, self._params = module, constants, {}

    def const(self, name):
        """The constant array named `name` (an initializer or a Constant's output), or None."""
        return self.constants.get(name) if name else None

    def param(self, name, array=None, tag=""):
        """The Parameter for constant `name` (shared by every layer that uses it); `array`
        and `tag` give a derived form of it (a transposed weight, a scaled bias)."""
        key = (name, tag)
        if key not in self._params:
            value = self.constants[name] if array is None else array
            self._params[key] = Parameter(np.array(value, dtype=value.dtype, order="C"))
        return self._params[key]

    def add_layer(self, node, layer):
        """Register `layer` as a sub-module named after `node`; returns a `LayerRef` to it,
        which the node's step uses in place of the layer."""
        base = _sanitise(node.name or f"{node.op_type}_{len(self.module._layers)}")
        name, k = base, 1
        while hasattr(self.module, name):
            k += 1
            name = f"{base}_{k}"
        setattr(self.module, name, layer)
        self.module._layers.append(name)
        self.module._layer_of_node[node.name] = name
        return LayerRef(self.module, name)


class LayerRef:
    """A layer of an OnnxModule, looked up by its attribute name at each use: calling it
    calls the sub-module, its attributes are the sub-module's. Steps hold these rather than
    the layers, so replacing a sub-module (`setattr(model, name, new)`, as fold_batch_norms
    does) replaces it in the graph, and a deep copy's steps use the copy's layers."""

    __slots__ = ("module", "name")

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __call__(self, *args, **kwargs):
        return getattr(self.module, self.name)(*args, **kwargs)

    def current(self):
        """The sub-module the name refers to now."""
        return getattr(self.module, self.name)

    def __getattr__(self, attr):
        if attr.startswith("__") or attr in LayerRef.__slots__:  # probed before __init__
            raise AttributeError(attr)
        return getattr(getattr(self.module, self.name), attr)

    def __deepcopy__(self, memo):
        return LayerRef(copy.deepcopy(self.module, memo), self.name)


class OnnxModule(Module):
    """An imported ONNX graph. forward(*inputs) takes the graph inputs in order (Tensors or
    arrays) and returns one Tensor, or a tuple for several outputs.

    Attributes: input_names, output_names, opset, producer; layers are sub-modules.
    """

    def __init__(self, model, tensor_to_array):
        super().__init__()
        self._layers = []
        self._layer_of_node = {}  # node name -> name of the sub-module it runs
        graph = model.graph
        self.opset = max([o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
                         or [1])
        self.producer = f"{model.producer_name} {model.producer_version}".strip()
        constants = {t.name: tensor_to_array(t) for t in graph.initializer}
        for v in graph.input:
            if v.name not in constants and v.type.WhichOneof("value") != "tensor_type":
                raise OnnxImportError(f"graph input {v.name!r} is a "
                                      f"{v.type.WhichOneof('value')}; juanji takes tensors")
        self._inputs = [value_spec(v) for v in graph.input if v.name not in constants]
        self.input_names = [spec[0] for spec in self._inputs]
        self.output_names = [v.name for v in graph.output]
        self._steps = fuse_chains(self._build(graph, constants, tensor_to_array), constants,
                                  self.output_names)
        self._constants = constants
        self._conv_chains = _conv_chains(self._steps, self.output_names)
        # the same for every call: the last step that reads each value, and the values no
        # step may free (graph outputs and constants)
        self._last_use = {name: i for i, (node, _) in enumerate(self._steps)
                          for name in node.inputs}
        self._keep = set(self.output_names) | set(constants)
        self._frees = [[name for name in dict.fromkeys(node.inputs)
                        if self._last_use[name] == i and name not in self._keep]
                       for i, (node, _) in enumerate(self._steps)]  # dropped after step i
        self._constant_roots = _memory_roots(constants.values())

    def _build(self, graph, constants, tensor_to_array):
        ctx, steps, problems = _Build(self, constants), [], []
        known = set(constants) | set(self.input_names) | {""}
        for index, proto in enumerate(graph.node):
            domain = proto.domain if proto.domain not in ("", "ai.onnx") else ""
            node = Node(proto.op_type, proto.name or f"{proto.op_type}_{index}",
                        list(proto.input), list(proto.output), _attributes(proto), self.opset)
            where = f"node {node.name!r} ({proto.op_type}, opset {self.opset})"
            missing = [name for name in node.inputs if name not in known]
            known.update(node.outputs)
            if domain:
                problems.append(f"{where}: domain {domain!r} is not supported")
                continue
            if missing:
                problems.append(f"{where}: input(s) {missing} are not produced before it "
                                f"(the graph is not in topological order)")
                continue
            if node.op_type == "Constant":
                try:
                    constants[node.outputs[0]] = _constant_value(node, tensor_to_array)
                except Unsupported as why:
                    problems.append(f"{where}: {why}")
                continue
            handler = HANDLERS.get(node.op_type)
            if handler is None:
                problems.append(f"{where}: unsupported op")
                continue
            try:
                steps.append((node, handler(node, ctx)))
            except Unsupported as why:
                problems.append(f"{where}: {why}")
        for name in self.output_names:
            if name not in known:
                problems.append(f"graph output {name!r} is produced by no node")
        if problems:
            raise OnnxImportError(f"the ONNX model has {len(problems)} node(s) juanji cannot "
                                  "run:\n  " + "\n  ".join(problems), problems)
        return steps

    def forward(self, *inputs):
        if len(inputs) != len(self._inputs):
            raise ValueError(f"the model takes {len(self._inputs)} input(s) "
                             f"{self.input_names}; got {len(inputs)}")
        values = dict(self._constants)
        given = [*inputs]  # what the caller passed, and the checked Tensors
        for spec, value in zip(self._inputs, inputs):
            values[spec[0]] = _check_input(spec, value)
            given.append(values[spec[0]])
        last_use, keep, frees = self._last_use, self._keep, self._frees
        made = {}  # the values computed so far and still alive (no constants, no inputs)
        protected = None  # ids of memory no node may write, found when first needed
        skip = set()  # steps a fused conv has done
        for i, (node, step) in enumerate(self._steps):
            if i in skip:
                continue
            args = [values[name] if name else None for name in node.inputs]
            done = node  # the node whose outputs `out` holds
            fused = None
            if i in self._conv_chains:
                try:
                    fused = self._fused_conv(i, args[0])
                except (ValueError, TypeError, IndexError) as error:
                    raise _named(node, error) from error
            if fused is not None:
                done, out = fused  # the chain's last node and its output
                skip.update(index for index in self._conv_chains[i][:2] if index is not None)
            else:
                # an activation may write over its input (see _may_overwrite); not while a
                # tracer (export, fuse_activations) records the tensors
                overwrite = (getattr(step, "in_place", None) is not None
                             and function._tracer is None and node.inputs[0] in made)
                if overwrite and protected is None:
                    protected = self._constant_roots | _memory_roots(given)
                overwrite = overwrite and _may_overwrite(node.inputs[0], i, last_use, keep,
                                                         made, protected)
                try:
                    out = step.in_place(*args) if overwrite else step(*args)
                except (ValueError, TypeError, IndexError) as error:
                    if isinstance(step, ChainStep):
                        raise  # it names the node of the group that failed
                    raise _named(node, error) from error
            outs = out if isinstance(out, tuple) else (out,)
            for name, value in zip(done.outputs, outs):
                if name:
                    values[name] = made[name] = value
            for name in frees[i]:
                values.pop(name, None)
                made.pop(name, None)
        results = tuple(_as_output(values[name]) for name in self.output_names)
        return results[0] if len(results) == 1 else results

    def _fused_conv(self, i, x):
        """(last node, output) of conv step i and what follows it run as one conv pass
        (`ConvStep.with_batch_norm`, the same bits as the steps): a batch norm, then an
        activation or not, or an activation alone (a graph exported with its batch norms
        folded, as PyTorch's exporter does, or one folded by fold_batch_norms). Only when
        nothing can tell the difference: no gradients, no tracer (export,
        fuse_activations), the layers still an eval-mode conv and batch norm (or the Identity
        fold_batch_norms leaves) without hooks or fused activations of their own; else None
        (the steps run one by one)."""
        if grad_mode.is_enabled() or function._tracer is not None or not isinstance(x, Tensor):
            return None
        j, k, activation = self._conv_chains[i]
        conv = self._steps[i][1]
        if not conv.fusable(activation):
            return None
        affine = None
        if j is not None:
            norm = self._steps[j][1]
            affine = norm.eval_affine(np.promote_types(x.dtype, conv.layer.weight.dtype))
            if affine is None and not (activation is not None and norm.folded()):
                return None
            if affine is not None and conv.layer.fused_activation is not None:
                return None  # the conv's own activation comes before the batch norm
        return self._steps[j if k is None else k][0], conv.with_batch_norm(x, affine, activation)

    def readers(self, layer):
        """What reads the outputs of the node that runs sub-module `layer`: for each reading
        node its sub-module's name (or its node name when it has none), and 'output NAME'
        for each graph output it is, in graph order."""
        node = next((n for n, _ in self._steps if self._layer_of_node.get(n.name) == layer),
                    None)
        if node is None:
            raise ValueError(f"layer must name a sub-module a node runs, one of "
                             f"{sorted(self._layer_of_node.values())}; got {layer!r}")
        made = set(filter(None, node.outputs))
        found = [self._layer_of_node.get(n.name, n.name) for n, _ in self._steps
                 if made.intersection(n.inputs)]
        return found + [f"output {name}" for name in self.output_names if name in made]

    def __deepcopy__(self, memo):
        # The steps are closures; copy.deepcopy would share them (and through them the
        # original's layers), so their captured values are copied with the same memo.
        copied = object.__new__(type(self))
        memo[id(self)] = copied
        state = {key: value for key, value in self.__dict__.items()
                 if key not in ("_steps", "_constant_roots")}
        copied.__dict__.update(copy.deepcopy(state, memo))
        copied._constant_roots = _memory_roots(copied._constants.values())  # the copies'
        copied._steps = [(copy.deepcopy(node, memo), _copy_step(step, memo))
                         for node, step in self._steps]
        return copied

    def extra_repr(self):
        return f"inputs={self.input_names}, outputs={self.output_names}, opset={self.opset}"


def _conv_chains(steps, output_names):
    """{index of a Conv step: (index of the BatchNormalization step after it or None, index
    of the Relu or HardSwish step after that or None, 'relu' / 'hardswish' / None)} for each
    Conv -> BatchNormalization (-> activation) and Conv -> activation run of steps in which
    each value passed on is read by the next step alone and is no graph output: what
    `OnnxModule._fused_conv` may run as one pass."""
    kinds = {F.relu: "relu", F.hardswish: "hardswish"}
    readers = {}
    for node, _ in steps:
        for name in node.inputs:
            readers[name] = readers.get(name, 0) + 1

    def passes_on(index, to):  # step index's output read by step `to` alone
        name = steps[index][0].outputs[0]
        return (to < len(steps) and readers.get(name) == 1 and name not in output_names
                and steps[to][0].inputs[:1] == [name])

    def activation(index):  # the kind of step `index` when it is a Relu or HardSwish
        step = steps[index][1] if index < len(steps) else None
        return kinds.get(step.fn) if isinstance(step, Overwriting) else None

    chains = {}
    for i, (_, step) in enumerate(steps):
        if not (isinstance(step, ConvStep) and passes_on(i, i + 1)):
            continue
        if isinstance(steps[i + 1][1], BatchNormStep):
            kind = activation(i + 2) if passes_on(i + 1, i + 2) else None
            chains[i] = (i + 1, i + 2 if kind else None, kind)
        elif (kind := activation(i + 1)) is not None:
            chains[i] = (None, i + 1, kind)
    return chains


def _named(node, error):
    """`error` again, its message led by the node it came from."""
    return type(error)(f"node {node.name!r} ({node.op_type}): {error}")


def _may_overwrite(name, i, last_use, keep, made, protected):
    """Whether node i may write over value `name` (an activation run in place): a value the
    graph computed, not a graph output, read by no later node, whose memory is neither a
    constant's or an input's (`protected`, ids of memory roots) nor shared with another live
    value (a Reshape or Identity of it, say)."""
    data = _array_of(made.get(name))
    if data is None or last_use.get(name) != i or name in keep:
        return False
    root = _memory_root(data)
    if id(root) in protected:
        return False
    return not any(_memory_root(other) is root for other in
                   (_array_of(value) for key, value in made.items() if key != name)
                   if other is not None)


def _array_of(value):
    """The NumPy array of a graph value (a Tensor or an array), else None."""
    data = value.data if isinstance(value, Tensor) else value
    return data if isinstance(data, np.ndarray) else None


def _memory_root(array):
    """The array that owns `array`'s memory (the end of its chain of views)."""
    while isinstance(array.base, np.ndarray):
        array = array.base
    return array


def _memory_roots(values):
    """ids of the memory roots of `values` (Tensors or arrays; the graph's constants and
    inputs, which no node may write)."""
    arrays = (_array_of(value) for value in values)
    return {id(_memory_root(a)) for a in arrays if a is not None}


def _copy_step(step, memo):
    """A deep copy of a step: a closure is rebuilt over deep copies of its captured values."""
    if not isinstance(step, types.FunctionType) or not step.__closure__:
        return copy.deepcopy(step, memo)
    if id(step) not in memo:
        cells = tuple(types.CellType(_copy_step(cell.cell_contents, memo))
                      for cell in step.__closure__)
        copied = types.FunctionType(step.__code__, step.__globals__, step.__name__,
                                    step.__defaults__, cells)
        copied.__kwdefaults__ = step.__kwdefaults__
        memo[id(step)] = copied
    return memo[id(step)]


def _constant_value(node, convert):
    """The array a Constant node holds (value, value_float(s), value_int(s))."""
    for key, dtype in (("value_float", np.float32), ("value_floats", np.float32),
                       ("value_int", np.int64), ("value_ints", np.int64)):
        if key in node.attrs:
            return np.array(node.attrs[key], dtype=dtype)
    value = node.attrs.get("value")
    if isinstance(value, tuple) and value[0] == "tensor":
        return convert(value[1])
    raise Unsupported(f"Constant with attribute(s) {sorted(node.attrs)}: juanji reads value, "
                      f"value_float(s) and value_int(s)")


def value_spec(value_info):
    """A graph input's or output's (name, NumPy dtype or None, dims or None if unknown): each
    dim a size, a symbolic name (dynamic) or None. float16 and bfloat16 show as float32."""
    onnx = import_onnx()
    kind = value_info.type.tensor_type
    dtype = None
    if kind.elem_type:
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(kind.elem_type))
        if dtype == np.float16 or dtype.name == "bfloat16":
            dtype = np.dtype(np.float32)
    dims = None
    if kind.HasField("shape"):
        dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                for d in kind.shape.dim]
    return value_info.name, dtype, dims


def _check_input(spec, value):
    """A graph input as a Tensor (floating) or array (other types), checked against the
    graph's declared rank and fixed sizes."""
    name, dtype, dims = spec
    array = value.data if isinstance(value, Tensor) else np.asarray(value)
    if dims is not None:
        if array.ndim != len(dims):
            shown = ["?" if d is None else d for d in dims]
            raise ValueError(f"input {name!r} must have rank {len(dims)} (shape {shown}); got "
                             f"shape {tuple(array.shape)}")
        for axis, (want, got) in enumerate(zip(dims, array.shape)):
            if isinstance(want, int) and want > 0 and want != got:
                raise ValueError(f"input {name!r} must have size {want} in dim {axis}; got "
                                 f"shape {tuple(array.shape)}")
    if dtype is not None and not np.issubdtype(dtype, np.floating):
        return array.astype(dtype, copy=False)
    if isinstance(value, Tensor) and (dtype is None or value.dtype == dtype):
        return value
    return Tensor(array.astype(dtype or np.float32, copy=False))


def _as_output(value):
    return value if isinstance(value, Tensor) else Tensor(np.asarray(value))
