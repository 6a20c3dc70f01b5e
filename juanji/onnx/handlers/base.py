"""What every handler shares: the node record, the build context's interface, value helpers.

A handler is `build(node, ctx) -> step`: it reads the node's attributes (and constant inputs
through `ctx.const`) once at load time and returns `step(*inputs) -> output or tuple`, which
runs at call time. Values at call time are juanji Tensors (float data that may carry
gradients) or NumPy arrays (constants, and the integer shape arithmetic that must stay exact
and dynamic); an absent optional input is None. A handler raises `Unsupported` at build time
for what juanji cannot run, and the loader lists every such node in one error.
"""

from dataclasses import dataclass, field

import numpy as np

from juanji.arithmetic import strided_same_padding
from juanji.tensor import Tensor


class Unsupported(ValueError):
    """The node uses something juanji does not run (found at load time where the attributes
    show it, at call time where only the runtime weights do); the message says what."""


@dataclass
class Node:
    """One ONNX node as handlers see it; attrs hold plain Python values (strings decoded)."""

    op_type: str
    name: str
    inputs: list
    outputs: list
    attrs: dict = field(default_factory=dict)
    opset: int = 13

    def attr(self, key, default=None):
        return self.attrs.get(key, default)


def is_array(value):
    """True for a NumPy value (constant or shape arithmetic), False for a Tensor. NumPy
    scalars count: a reduction or a Gather of shape arithmetic can give one (PyTorch's
    export of x.var counts the reduced elements with ReduceProd, then Casts the count)."""
    return isinstance(value, (np.ndarray, np.generic))


def as_float(value, like=None):
    """`value` as a floating Tensor (arrays are wrapped without a copy; dtype of `like`)."""
    if isinstance(value, Tensor):
        return value
    array = np.asarray(value)
    dtype = like.dtype if like is not None else \
        (array.dtype if np.issubdtype(array.dtype, np.floating) else np.float32)
    return Tensor(array.astype(dtype, copy=False))


def data(value):
    """The raw array of a Tensor or array (no gradient)."""
    return value.data if isinstance(value, Tensor) else np.asarray(value)


def ints(value):
    """A 1-D constant or runtime array as a list of Python ints."""
    return [int(v) for v in np.asarray(data(value)).reshape(-1)]


def attr_or_input(node, inputs, index, key, default=None):
    """A value that is an attribute in older opsets and an input in newer ones."""
    if len(inputs) > index and inputs[index] is not None:
        return ints(inputs[index])
    value = node.attr(key, default)
    return None if value is None else list(value)


def spatial_pads(node, sizes, kernel, strides, dilations):
    """ONNX pads as ((begin, end), ...) per spatial axis, resolving auto_pad for `sizes`."""
    dims = len(kernel)
    auto = node.attr("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        return tuple(strided_same_padding(sizes[a], kernel[a], strides[a], dilations[a],
                                          lower=auto == "SAME_LOWER") for a in range(dims))
    if auto == "VALID":
        return ((0, 0),) * dims
    pads = node.attr("pads", [0] * 2 * dims)
    return tuple((pads[a], pads[a + dims]) for a in range(dims))


def window(node, kernel, ranks=(1, 2)):
    """(strides, dilations) of a conv or pool node, checked to be 1-D or 2-D (or of `ranks`:
    AveragePool runs 3-D windows too)."""
    dims = len(kernel)
    if dims not in ranks:
        raise Unsupported(f"{dims}-D kernel {list(kernel)}: juanji runs 1-D and 2-D windows")
    if node.attr("auto_pad", "NOTSET") not in ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"):
        raise Unsupported(f"auto_pad={node.attr('auto_pad')!r}")
    strides = tuple(node.attr("strides", [1] * dims))
    dilations = tuple(node.attr("dilations", [1] * dims))
    return strides, dilations


def check_rank(x, ranks, what):
    if x.ndim not in ranks:
        raise ValueError(f"{what} expects an input of rank {' or '.join(map(str, ranks))}; got "
                         f"shape {tuple(x.shape)}")


def to_2d(x, dims):
    """A 1-D (N, C, L) value as (N, C, 1, L), so the 2-D op runs it."""
    return x if dims == 2 else x.unsqueeze(2)


def from_2d(y, dims):
    return y if dims == 2 else y.squeeze(2)


def torch_pad_amounts(pads):
    """((begin, end), ...) for leading-to-trailing axes -> F.pad's last-axis-first tuple."""
    return tuple(v for begin_end in reversed(pads) for v in begin_end)
