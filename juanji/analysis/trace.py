"""Trace one real forward pass with hooks: every module call, its shapes, parameters, MACs and
receptive field.

The model runs once under no_grad in eval mode (BatchNorm uses running statistics, Dropout is
the identity, as torchvision's published counts assume); each module's training flag is
restored afterwards. A module called twice gives two calls (`name` and `name#2`); a parameter
shared by two modules is counted at its first use only.

Receptive fields follow tensors: each module output is tagged with its field. An input that
no module produced (the result of `out + identity`, `torch.cat`, `x.flatten(1)` written in a
forward) takes the widest field produced since the enclosing module started whose spatial size
matches, which is the usual max-over-branches rule; one that matches none is 'unknown', and
one with no spatial axes (flattened) is 'global'.
"""

import contextlib
import math
import weakref
from dataclasses import dataclass, field

import numpy as np

from juanji.analysis.counting import layer_macs
from juanji.analysis.receptive_field import ReceptiveField, layer_receptive_field, widest


@dataclass
class Call:
    """One module call. Shapes include the batch axis; `macs` is None where not countable."""

    index: int
    name: str
    key: str
    module: object
    type: str
    depth: int
    parent: int
    is_leaf: bool
    input_shapes: list = field(default_factory=list)
    output_shapes: list = field(default_factory=list)
    params: int = 0
    shared_params: int = 0
    trainable_params: int = 0
    macs: int = 0
    kind: str = "container"
    rf: ReceptiveField = field(default_factory=ReceptiveField.unknown)
    output_bytes: int = 0
    children: list = field(default_factory=list)


@dataclass
class Trace:
    """The calls in the order they started (pre-order), and what the model holds."""

    calls: list
    input_shape: tuple
    output_shapes: list
    params: int
    trainable_params: int
    buffer_elements: int
    param_bytes: int
    buffer_bytes: int
    input_bytes: int
    uncalled: list  # names of modules with parameters that forward never called


def parse_input_size(input_size, name="input_size"):
    """A tuple of positive ints, e.g. (3, 224, 224); raises ValueError naming `name`."""
    try:
        dims = tuple(input_size)
    except TypeError:
        dims = None
    if not dims or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool)
                           and d > 0 for d in dims):
        raise ValueError(f"{name} must be a sequence of positive ints such as (3, 224, 224); "
                         f"got {input_size!r}")
    return tuple(int(d) for d in dims)


def _tensors(value):
    from juanji.tensor import Tensor

    if isinstance(value, Tensor):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (tuple, list)):
        return [t for item in value for t in _tensors(item)]
    return []


def _spatial(tensor):
    return tuple(tensor.shape[-2:]) if tensor is not None and tensor.ndim == 4 else None


class _Tracer:
    """Hook state: the open calls (a stack) and the receptive-field tags of live tensors."""

    def __init__(self, root):
        self.root = root
        self.calls = []
        self.stack = []
        self.seen_params = set()
        self.counts = {}
        self.tags = {}  # id(tensor) -> (rf, spatial shape)
        self.alive = weakref.WeakValueDictionary()  # id -> tensor, so a reused id is detected
        self.log = []  # (rf, spatial shape) in the order they were produced

    def tag(self, tensor, rf):
        self.tags[id(tensor)] = (rf, _spatial(tensor))
        self.alive[id(tensor)] = tensor
        self.log.append((rf, _spatial(tensor)))

    def lookup(self, tensor):
        if tensor is not None and self.alive.get(id(tensor)) is tensor:
            return self.tags[id(tensor)][0]
        return None

    def fallback(self, tensor, since, default):
        """Field of a tensor no module produced (see the module docstring)."""
        if tensor is None:
            return ReceptiveField.unknown()
        shape = _spatial(tensor)
        if shape is None:
            return ReceptiveField.whole()
        candidates = [rf for rf, s in self.log[since:] if s == shape]
        if candidates:
            return widest(candidates)
        if default is not None and default[1] == shape:
            return default[0]
        return ReceptiveField.unknown()

    def pre_hook(self, name):
        def hook(module, inputs):
            tensors = _tensors(inputs)
            x = tensors[0] if tensors else None
            parent = self.stack[-1] if self.stack else None
            # several inputs of one size (DenseNet passes the list of earlier features): the
            # widest field; inputs of another size (U-Net's skip) are joined inside, later
            tagged = [self.lookup(t) for t in tensors if _spatial(t) == _spatial(x)]
            tagged = [f for f in tagged if f is not None]
            rf = widest(tagged) if tagged else None
            if rf is None:
                if parent is None:
                    rf = ReceptiveField.unknown()
                else:
                    rf = self.fallback(x, parent["since"], parent["input"])
            count = self.counts.get(id(module), 0) + 1
            self.counts[id(module)] = count
            call = Call(index=len(self.calls), name=name,
                        key=name if count == 1 else f"{name}#{count}", module=module,
                        type=type(module).__name__, depth=len(self.stack),
                        parent=parent["call"].index if parent else -1,
                        is_leaf=not any(True for _ in module.children()),
                        input_shapes=[tuple(t.shape) for t in tensors])
            if parent:
                parent["call"].children.append(call.index)
            self.calls.append(call)
            self.stack.append({"call": call, "since": len(self.log),
                               "input": (rf, _spatial(x)), "rf_in": rf})
        return hook

    def post_hook(self, module, inputs, output):
        frame = self.stack.pop()
        call = frame["call"]
        outs = _tensors(output)
        call.output_shapes = [tuple(t.shape) for t in outs]
        call.output_bytes = int(sum(t.data.nbytes for t in outs))
        self._count_params(call, module)
        if call.is_leaf:
            call.macs, call.kind = layer_macs(module, inputs, output)
            x = _tensors(inputs)[0] if _tensors(inputs) else None
            y = outs[0] if outs else None
            rf = layer_receptive_field(module, frame["rf_in"], _spatial(x), _spatial(y))
        else:
            call.macs, call.kind = 0, "container"
            if call.params:
                # a container with weights of its own computes with them outside known layers
                call.macs, call.kind = None, "unknown"
            rf = None
        for index, tensor in enumerate(outs):
            tagged = self.lookup(tensor) if rf is None else None
            if rf is None and tagged is None:
                tagged = self.fallback(tensor, frame["since"], frame["input"])
            self.tag(tensor, rf if rf is not None else tagged)
            if index == 0:
                call.rf = rf if rf is not None else tagged

    def _count_params(self, call, module):
        for _, param in module.named_parameters(recurse=False):
            if id(param) in self.seen_params:
                call.shared_params += param.numel()
                continue
            self.seen_params.add(id(param))
            call.params += param.numel()
            if param.requires_grad:
                call.trainable_params += param.numel()


def forward_bytes(tr):
    """Bytes of a trace's input and of every leaf layer's output: what a training forward keeps
    for backward, an upper bound for an inference forward (which frees outputs as it goes)."""
    return tr.input_bytes + sum(call.output_bytes for call in tr.calls if call.is_leaf)


def _check_fits(model, input_size, batch_size, dtype):
    """ValueError before a forward that would not fit in memory. batch_size > 1: the input and
    activations of a batch-1 trace (cheap), which grow linearly with the batch; otherwise, or
    when the batch-1 trace fails, the random input alone (drawn in float64, then cast)."""
    from juanji.memory import check_bytes, human_bytes

    count = math.prod(input_size)
    if batch_size > 1:
        try:
            per_sample = forward_bytes(trace(model, input_size, 1, dtype)) + 8 * count
        except ValueError:
            per_sample = None  # the real trace reports a failing forward with its own shape
        if per_sample is not None:
            check_bytes(per_sample * batch_size,
                       f"tracing {type(model).__name__} on a batch of {batch_size} x "
                       f"{list(input_size)} ({human_bytes(per_sample)} of input and activations "
                       "per sample)", "use a smaller batch size")
            return
    check_bytes((8 + np.dtype(dtype).itemsize) * count * batch_size,
               f"a random input of shape {[batch_size, *input_size]}",
               "use a smaller batch or input size")


@contextlib.contextmanager
def hooked_eval_forward(model, pre_hook_for, post_hook):
    """Within it: `model` in eval mode under no_grad, every module (named `name`) with the
    forward pre-hook `pre_hook_for(name)` and the forward hook `post_hook`. On leaving, the
    hooks are removed and every module's train/eval flag is what it was."""
    import juanji

    modes = [(module, module.training) for module in model.modules()]
    handles = []
    try:
        model.eval()
        for name, module in model.named_modules():
            handles.append(module.register_forward_pre_hook(pre_hook_for(name)))
            handles.append(module.register_forward_hook(post_hook))
        with juanji.no_grad():
            yield
    finally:
        for handle in handles:
            handle.remove()
        for module, mode in modes:
            module.training = mode


def trace(model, input_size, batch_size=1, dtype=np.float32, seed=0):
    """Run `model` once on a (batch_size, *input_size) random input and record every call.

    The memory the input and (batch_size > 1) the forward need is estimated first, the
    forward's from a batch-1 trace.

    Raises TypeError for a non-Module, ValueError for a bad size, a forward that fails, or a
    batch whose input and activations would not fit in the available memory.
    """
    import juanji
    from juanji.nn import Module

    if not isinstance(model, Module):
        raise TypeError(f"model must be a juanji.nn.Module; got {type(model).__name__}")
    input_size = parse_input_size(input_size)
    if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) \
            or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int; got {batch_size!r}")
    shape = (int(batch_size),) + input_size
    _check_fits(model, input_size, int(batch_size), dtype)
    x = juanji.Tensor(np.random.default_rng(seed).standard_normal(shape).astype(dtype))

    tracer = _Tracer(model)
    tracer.tag(x, ReceptiveField.input())
    tracer.log.clear()
    with hooked_eval_forward(model, tracer.pre_hook, tracer.post_hook):
        try:
            out = model(x)
        except Exception as exc:  # any failure of the user's forward: say on what input
            raise ValueError(f"{type(model).__name__} cannot run on an input of shape "
                             f"{list(shape)}: {exc}") from exc

    params = list(model.parameters())
    buffers = list(model.buffers())
    called = {id(call.module) for call in tracer.calls}
    uncalled = [name for name, module in model.named_modules()
                if id(module) not in called
                and any(True for _ in module.named_parameters(recurse=False))]
    return Trace(
        calls=tracer.calls,
        input_shape=shape,
        output_shapes=[tuple(t.shape) for t in _tensors(out)],
        params=sum(p.numel() for p in params),
        trainable_params=sum(p.numel() for p in params if p.requires_grad),
        buffer_elements=sum(b.numel() for b in buffers),
        param_bytes=sum(p.data.nbytes for p in params),
        buffer_bytes=sum(b.data.nbytes for b in buffers),
        input_bytes=int(x.data.nbytes),
        uncalled=uncalled,
    )
