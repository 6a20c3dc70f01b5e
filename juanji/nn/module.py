"""Module, Parameter and the containers.

Parameters, buffers and sub-modules are found by walking each module's attributes in the order
they were assigned, so names and order match PyTorch's `state_dict` keys
(`layer1.0.conv1.weight`). Each module has its own `training` flag.
"""

from collections import OrderedDict, namedtuple

import numpy as np

from juanji.backend import blas_in_ops
from juanji.function import check_input_dtype
from juanji.nn.args import one_of
from juanji.tensor import Tensor

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


def _laid_out(array, memory_format):
    """A copy of 4-D `array` (N, C, H, W) whose memory is (N, H, W, C) for "channels_last",
    C-contiguous for "contiguous" (the array itself when it already is)."""
    if memory_format == "contiguous":
        return np.ascontiguousarray(array)
    return np.ascontiguousarray(array.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


class Parameter(Tensor):
    """A Tensor that is a module's learnable weight: requires_grad=True by default."""

    def __init__(self, data, requires_grad=True):
        super().__init__(data.data if isinstance(data, Tensor) else data, requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


class _HookHandle:
    """Returned by register_*_hook; `remove()` detaches the hook."""

    def __init__(self, hooks, key):
        self.hooks, self.key = hooks, key

    def remove(self):
        self.hooks.pop(self.key, None)


class Module:
    """Base class of every layer and model: override `forward`, call the module to run it."""

    training = True
    # Layers that compute in floating point set this: calling one on an integer, bool or object
    # input is a TypeError naming the layer (an uint8 image would go in un-rescaled).
    floating_input = False

    def __init__(self):
        self.training = True
        self._buffer_names = []
        self._non_persistent = set()
        self._forward_hooks = OrderedDict()
        self._forward_pre_hooks = OrderedDict()
        self._hook_counter = 0

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args, **kwargs):
        for hook in list(self.__dict__.get("_forward_pre_hooks", {}).values()):
            result = hook(self, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
        if self.floating_input and args and hasattr(args[0], "dtype"):
            check_input_dtype(np.dtype(args[0].dtype), "f", type(self).__name__)
        # one BLAS hold for the whole forward (see backend.blas_in_ops), not one per op:
        # two thread-count switches per op saved
        with blas_in_ops:
            out = self.forward(*args, **kwargs)
        for hook in list(self.__dict__.get("_forward_hooks", {}).values()):
            result = hook(self, args, out)
            if result is not None:
                out = result
        return out

    # ---- hooks ------------------------------------------------------------------------
    def register_forward_hook(self, hook):
        """hook(module, inputs, output) runs after forward; a non-None return replaces output."""
        self._hook_counter += 1
        self._forward_hooks[self._hook_counter] = hook
        return _HookHandle(self._forward_hooks, self._hook_counter)

    def register_forward_pre_hook(self, hook):
        """hook(module, inputs) runs before forward; a non-None return replaces the inputs."""
        self._hook_counter += 1
        self._forward_pre_hooks[self._hook_counter] = hook
        return _HookHandle(self._forward_pre_hooks, self._hook_counter)

    # ---- registration -----------------------------------------------------------------
    def register_buffer(self, name, value, persistent=True):
        """Keep `value` (a Tensor or array, or None) as state that is saved but not trained."""
        if "_buffer_names" not in self.__dict__:
            raise RuntimeError("call super().__init__() before registering buffers")
        if value is not None and not isinstance(value, Tensor):
            value = Tensor(np.asarray(value))
        setattr(self, name, value)
        if name not in self._buffer_names:
            self._buffer_names.append(name)
        if not persistent:
            self._non_persistent.add(name)

    def register_parameter(self, name, param):
        setattr(self, name, param)

    def add_module(self, name, module):
        setattr(self, name, module)

    # ---- traversal --------------------------------------------------------------------
    def named_children(self):
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value

    def children(self):
        for _, module in self.named_children():
            yield module

    def named_modules(self, prefix=""):
        """Pre-order walk of (dotted name, module), each module once."""
        seen = set()
        stack = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            children = list(module.named_children())
            for child_name, child in reversed(children):
                stack.append((f"{name}.{child_name}" if name else child_name, child))

    def modules(self):
        for _, module in self.named_modules():
            yield module

    def _own_parameters(self):
        for name, value in vars(self).items():
            if isinstance(value, Parameter):
                yield name, value

    def named_parameters(self, prefix="", recurse=True):
        """(dotted name, Parameter) pairs; a parameter shared by two modules appears once."""
        seen = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for module_name, module in modules:
            for name, param in module._own_parameters():
                if id(param) in seen:
                    continue
                seen.add(id(param))
                yield (f"{module_name}.{name}" if module_name else name), param

    def parameters(self, recurse=True):
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(self, prefix=""):
        for module_name, module in self.named_modules(prefix):
            for name in module.__dict__.get("_buffer_names", []):
                value = getattr(module, name)
                if value is not None:
                    yield (f"{module_name}.{name}" if module_name else name), value

    def buffers(self):
        for _, buf in self.named_buffers():
            yield buf

    # ---- modes ------------------------------------------------------------------------
    def train(self, mode=True):
        for module in self.modules():
            module.training = bool(mode)
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self, set_to_none=True):
        for param in self.parameters():
            if set_to_none or param.grad is None:
                param.grad = None
            else:
                param.grad[...] = 0

    def requires_grad_(self, requires_grad=True):
        for param in self.parameters():
            param.requires_grad = requires_grad
        return self

    def to(self, dtype=None, memory_format=None):
        """Cast floating parameters and buffers to `dtype` in place (e.g. np.float64), and/or
        lay out every 4-D parameter's memory as `memory_format`, in place.

        memory_format="channels_last" keeps shapes and values but stores conv weights
        (OC, C, KH, KW) in (OC, KH, KW, C) order, as torch.channels_last does: the conv
        kernels then read them as GEMM rows without a copy (ResNet-18 re-lays out 47 MB of
        weights per forward otherwise). "contiguous" goes back. The parameters get new
        arrays: re-read `.data` after the call; in-place updates keep the layout. As in
        NumPy, `.reshape(-1)` of a channels-last array is a copy, not a view.
        """
        if memory_format is not None:
            one_of(memory_format, "memory_format", ("channels_last", "contiguous"))
            for param in self.parameters():
                if param.data.ndim == 4:
                    param.data = _laid_out(param.data, memory_format)
        if dtype is None:
            return self
        for param in self.parameters():
            param.data = param.data.astype(dtype)
            param.grad = None
        for _, buf in self.named_buffers():
            if np.issubdtype(buf.data.dtype, np.floating):
                buf.data = buf.data.astype(dtype)
        return self

    def double(self):
        return self.to(np.float64)

    def float(self):
        return self.to(np.float32)

    def apply(self, fn):
        """Call fn(module) on every sub-module and then self, as PyTorch does."""
        for module in reversed(list(self.modules())):
            fn(module)
        return self

    # ---- state ------------------------------------------------------------------------
    def state_dict(self):
        """Ordered {dotted name: numpy array}: each module's parameters, then its buffers."""
        return OrderedDict((key, t.data) for key, t in self._state_tensors().items())

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays (NumPy arrays, Tensors, or anything with .numpy()) into this module.

        Values are copied into the existing arrays, cast to their dtype. With strict=True,
        missing or unexpected keys raise KeyError; a shape mismatch always raises ValueError.
        """
        own = self._state_tensors()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            raise KeyError(
                f"state_dict does not match the model: missing keys {missing}, "
                f"unexpected keys {unexpected}"
            )
        for key, target in own.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            if isinstance(value, Tensor):
                value = value.data
            elif hasattr(value, "numpy") and not isinstance(value, np.ndarray):
                value = value.detach().numpy() if hasattr(value, "detach") else value.numpy()
            value = np.asarray(value)
            if value.shape != target.data.shape:
                raise ValueError(
                    f"size mismatch for {key}: expected shape {target.data.shape}, "
                    f"got {value.shape}"
                )
            target.data[...] = value.astype(target.data.dtype, copy=False)
        return IncompatibleKeys(missing, unexpected)

    def _state_tensors(self):
        """{key: Tensor} for every entry state_dict() would return."""
        tensors = OrderedDict()
        for module_name, module in self.named_modules():
            prefix = f"{module_name}." if module_name else ""
            for name, param in module._own_parameters():
                tensors[prefix + name] = param
            for name in module.__dict__.get("_buffer_names", []):
                value = getattr(module, name)
                if value is not None and name not in module._non_persistent:
                    tensors[prefix + name] = value
        return tensors

    # ---- printing ---------------------------------------------------------------------
    def extra_repr(self):
        return ""

    def __repr__(self):
        children = list(self.named_children())
        if not children:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"{type(self).__name__}("]
        for name, child in children:
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        lines.append(")")
        return "\n".join(lines)


class Sequential(Module):
    """Modules applied in order; children are named '0', '1', ... (or by an OrderedDict)."""

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, module in modules[0].items():
                self.add_module(name, module)
        else:
            for i, module in enumerate(modules):
                self.add_module(str(i), module)

    def __getitem__(self, index):
        children = list(self.children())
        if isinstance(index, slice):
            return Sequential(*children[index])
        return children[index]

    def __len__(self):
        return len(list(self.children()))

    def __iter__(self):
        return iter(list(self.children()))

    def append(self, module):
        self.add_module(str(len(self)), module)
        return self

    def forward(self, x):
        # a Conv2d -> BatchNorm2d -> ReLU run (or part of one) goes through conv_bn_relu,
        # which calls the layers one by one unless it can run them in fewer passes
        from juanji.nn.layers.chain import chain_at, conv_bn_relu

        layers = list(self.children())
        i = 0
        while i < len(layers):
            conv, bn, relu, n = chain_at(layers, i)
            if n:
                x = conv_bn_relu(conv, bn, relu, x)
                i += n
            else:
                x = layers[i](x)
                i += 1
        return x


class ModuleList(Module):
    """A list of modules, registered as children '0', '1', ...; no forward of its own."""

    def __init__(self, modules=()):
        super().__init__()
        for module in modules:
            self.append(module)

    def append(self, module):
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules):
        for module in modules:
            self.append(module)
        return self

    def __getitem__(self, index):
        children = list(self.children())
        return ModuleList(children[index]) if isinstance(index, slice) else children[index]

    def __len__(self):
        return sum(1 for _ in self.children())

    def __iter__(self):
        return iter(list(self.children()))


class ModuleDict(Module):
    """A dict of named modules, registered as children under their keys."""

    def __init__(self, modules=None):
        super().__init__()
        for name, module in (modules or {}).items():
            self.add_module(name, module)

    def __getitem__(self, key):
        return dict(self.named_children())[key]

    def __setitem__(self, key, module):
        self.add_module(key, module)

    def __contains__(self, key):
        return key in dict(self.named_children())

    def __len__(self):
        return sum(1 for _ in self.children())

    def __iter__(self):
        return iter(dict(self.named_children()))

    def keys(self):
        return dict(self.named_children()).keys()

    def items(self):
        return dict(self.named_children()).items()

    def values(self):
        return dict(self.named_children()).values()
