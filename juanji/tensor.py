"""Tensor: an array with autograd.

`data` is a NumPy (or CuPy) array, float32 unless created otherwise; `grad` is a plain array or
None; `_ctx` is the Function that produced the tensor (None for leaves). Every operator calls
exactly one `ops.X.apply`. The graph's nodes are those Functions and the leaf tensors: a
Function links to the Functions that made its inputs, never to intermediate tensors, so an
intermediate array lives only as long as the caller or an op's saved state needs it.
"""

import math
import numbers

import numpy as np

from juanji.backend import blas_in_ops, xp_of
from juanji.ops import activation, elementwise, linalg, movement, reduce
from juanji.ops.memory import check_fits

_FLOATS = (np.float16, np.float32, np.float64)


def _needs_grad(node):
    """A graph node takes a gradient: any Function, or a leaf tensor that requires grad."""
    return node is not None and (not isinstance(node, Tensor) or node.requires_grad)


def _topological_order(root):
    """Graph nodes reachable from root, inputs before outputs (iterative post-order DFS).

    Raises when a node's Function was released by an earlier backward without retain_graph.
    """
    order, seen, stack = [], set(), [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        if isinstance(node, Tensor):
            continue
        if node.released:
            raise RuntimeError(
                "Trying to backward through the graph a second time: an earlier backward() "
                "freed it; specify retain_graph=True in that first backward() to keep it"
            )
        for parent in node.parents:
            if _needs_grad(parent) and id(parent) not in seen:
                stack.append((parent, False))
    return order


def _dim(dim, ndim, name="dim", extra=0):
    """dim wrapped into [0, rank) for a tensor of rank `ndim` (+ `extra` for a dim being
    inserted); as in PyTorch a 0-d tensor takes -1 and 0. IndexError beyond, naming both."""
    rank = max(ndim + extra, 1)
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
        raise TypeError(f"{name} must be an int; got {dim!r}")
    if not -rank <= dim < rank:
        raise IndexError(f"Dimension out of range: {name}={dim} for a tensor of rank {ndim} "
                         f"(expected to be in range of [{-rank}, {rank - 1}])")
    return int(dim) % rank


def _to_array(data, dtype=None):
    """Array from data: Python floats become float32, NumPy arrays keep their dtype."""
    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
        return xp_of(data).asarray(data, dtype=dtype)
    if isinstance(data, np.ndarray) or type(data).__module__.startswith("cupy"):
        return data
    if isinstance(data, np.generic):  # NumPy scalars (e.g. a reduction's result) keep dtype
        return np.asarray(data)
    array = np.asarray(data)
    if array.dtype.kind not in "biufc":  # strings, objects, dates: torch.tensor refuses them
        raise TypeError(f"a tensor holds numbers; got {type(data).__name__} data of dtype "
                        f"{array.dtype}")
    if array.dtype == np.float64:
        array = array.astype(np.float32)
    return array


class Tensor:
    """An n-dimensional array that records the ops applied to it for reverse-mode autograd."""

    __array_priority__ = 100  # so `ndarray + Tensor` calls Tensor.__radd__

    def __init__(self, data, requires_grad=False, dtype=None):
        self.data = _to_array(data, dtype)
        if requires_grad and self.data.dtype.type not in _FLOATS:
            raise TypeError(
                f"only floating-point tensors can require gradients; got dtype {self.data.dtype}"
            )
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self._ctx = None

    # ---- properties -------------------------------------------------------------------
    @property
    def shape(self):
        return self.data.shape

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def is_leaf(self):
        return self._ctx is None

    @property
    def T(self):
        return self.permute(*reversed(range(self.ndim)))

    def size(self, dim=None):
        return self.data.shape if dim is None else self.data.shape[dim]

    def numel(self):
        return int(self.data.size)

    def dim(self):
        return self.data.ndim

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"tensor({np.array2string(np.asarray(self.data), separator=', ')}{grad})"

    def numpy(self):
        """The data as a NumPy array (shared, not copied); refuses tensors that need grad."""
        if self.requires_grad:
            raise RuntimeError("call .detach().numpy() on a tensor that requires grad")
        return self.data

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element; got shape {self.shape}")
        return self.data.reshape(()).item()

    def tolist(self):
        return self.data.tolist()

    def detach(self):
        """A new leaf sharing this tensor's data, outside the graph."""
        return Tensor(self.data)

    def astype(self, dtype):
        """A copy of the data as `dtype`, outside the graph."""
        return Tensor(self.data.astype(dtype))

    def float(self):
        return self.astype(np.float32)

    def double(self):
        return self.astype(np.float64)

    def requires_grad_(self, flag=True):
        self.requires_grad = bool(flag)
        return self

    def zero_grad(self):
        self.grad = None

    # ---- autograd ---------------------------------------------------------------------
    def backward(self, gradient=None, retain_graph=False):
        """Accumulate d(self)/d(leaf) into every leaf's `.grad` that requires grad.

        The graph is sorted iteratively (no recursion, so deep DenseNets are fine) and freed
        afterwards unless `retain_graph=True`.
        """
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad")
        xp = xp_of(self.data)
        if gradient is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward() without a gradient needs a scalar output; got shape {self.shape}"
                )
            gradient = xp.ones_like(self.data)
        else:
            gradient = xp.asarray(_to_array(gradient), dtype=self.data.dtype)
            if gradient.shape != self.shape:
                raise ValueError(
                    f"gradient shape {gradient.shape} does not match tensor shape {self.shape}"
                )
        with blas_in_ops:  # as in every forward, see juanji.backend
            self._backpropagate(gradient, retain_graph)
        # self keeps its (now released) Function, so a second backward() raises instead of
        # treating self as a leaf and returning a wrong gradient

    def _backpropagate(self, gradient, retain_graph):
        """Run the graph behind self backwards from `gradient` (see `backward`)."""
        xp = xp_of(self.data)
        # graph nodes: the Function that made a computed tensor, or a leaf tensor itself
        root = self if self._ctx is None else self._ctx
        grads = {id(root): gradient}
        for node in reversed(_topological_order(root)):
            g = grads.pop(id(node), None)
            if g is None:
                continue
            if isinstance(node, Tensor):  # a leaf
                g = xp.asarray(g, dtype=node.data.dtype)
                node.grad = g.copy() if node.grad is None else node.grad + g
                continue
            in_grads = node.backward(g)
            if not isinstance(in_grads, tuple):
                in_grads = (in_grads,)
            for parent, pg in zip(node.parents, in_grads):
                if pg is None or not _needs_grad(parent):
                    continue
                key = id(parent)
                # a value read twice (a residual block's input) sums its two gradients: in
                # blocks over the threads when big (ResNet-20's step: 9 of 8 MB)
                grads[key] = pg if key not in grads else elementwise.ufunc_in_blocks(
                    xp.add, "+", grads[key], pg)
            if not retain_graph:
                node.release()

    # ---- arithmetic -------------------------------------------------------------------
    def _other(self, other):
        """Scalars and arrays become Tensors of this tensor's dtype (no silent upcast)."""
        if isinstance(other, Tensor):
            return other
        return Tensor(xp_of(self.data).asarray(other, dtype=self.data.dtype))

    def __add__(self, other):
        return elementwise.Add.apply(self, self._other(other))

    def __radd__(self, other):
        return elementwise.Add.apply(self._other(other), self)

    def __sub__(self, other):
        return elementwise.Sub.apply(self, self._other(other))

    def __rsub__(self, other):
        return elementwise.Sub.apply(self._other(other), self)

    def __mul__(self, other):
        return elementwise.Mul.apply(self, self._other(other))

    def __rmul__(self, other):
        return elementwise.Mul.apply(self._other(other), self)

    def __truediv__(self, other):
        return elementwise.Div.apply(self, self._other(other))

    def __rtruediv__(self, other):
        return elementwise.Div.apply(self._other(other), self)

    def __neg__(self):
        return elementwise.Neg.apply(self)

    def __pow__(self, exponent):
        if isinstance(exponent, Tensor):
            return (exponent * self.log()).exp()
        return elementwise.Pow.apply(self, p=exponent)

    def __rpow__(self, base):
        return (self * float(np.log(base))).exp()

    def __matmul__(self, other):
        return linalg.MatMul.apply(self, self._other(other))

    def __rmatmul__(self, other):
        return linalg.MatMul.apply(self._other(other), self)

    def exp(self):
        return elementwise.Exp.apply(self)

    def log(self):
        return elementwise.Log.apply(self)

    def erf(self):
        return elementwise.Erf.apply(self)

    def sqrt(self):
        return elementwise.Sqrt.apply(self)

    def abs(self):
        return elementwise.Abs.apply(self)

    def clamp(self, min=None, max=None):
        return elementwise.Clamp.apply(self, lo=min, hi=max)

    clip = clamp

    def maximum(self, other):
        return elementwise.Maximum.apply(self, self._other(other))

    def relu(self):
        return activation.Relu.apply(self)

    def sigmoid(self):
        return activation.Sigmoid.apply(self)

    def tanh(self):
        return activation.Tanh.apply(self)

    # ---- comparisons (no gradient; boolean tensors) -----------------------------------
    def _compare(self, other, op):
        other = other.data if isinstance(other, Tensor) else other
        return Tensor(op(self.data, other))

    def __eq__(self, other):
        return self._compare(other, lambda a, b: a == b)

    def __ne__(self, other):
        return self._compare(other, lambda a, b: a != b)

    def __lt__(self, other):
        return self._compare(other, lambda a, b: a < b)

    def __le__(self, other):
        return self._compare(other, lambda a, b: a <= b)

    def __gt__(self, other):
        return self._compare(other, lambda a, b: a > b)

    def __ge__(self, other):
        return self._compare(other, lambda a, b: a >= b)

    __hash__ = object.__hash__

    # ---- reductions -------------------------------------------------------------------
    def sum(self, dim=None, keepdim=False):
        return reduce.Sum.apply(self, axis=dim, keepdims=keepdim)

    def mean(self, dim=None, keepdim=False):
        return reduce.Mean.apply(self, axis=dim, keepdims=keepdim)

    def prod(self, dim=None, keepdim=False):
        return reduce.Prod.apply(self, axis=dim, keepdims=keepdim)

    def max(self, dim=None, keepdim=False):
        return reduce.Max.apply(self, axis=dim, keepdims=keepdim)

    def min(self, dim=None, keepdim=False):
        return reduce.Max.apply(self, axis=dim, keepdims=keepdim, largest=False)

    def var(self, dim=None, correction=1, keepdim=False):
        return reduce.Var.apply(self, axis=dim, correction=correction, keepdims=keepdim)

    def std(self, dim=None, correction=1, keepdim=False):
        return self.var(dim, correction, keepdim).sqrt()

    def argmax(self, dim=None, keepdim=False):
        return Tensor(self.data.argmax(axis=dim, keepdims=keepdim))

    def argmin(self, dim=None, keepdim=False):
        return Tensor(self.data.argmin(axis=dim, keepdims=keepdim))

    # ---- movement ---------------------------------------------------------------------
    def reshape(self, *shape):
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        return movement.Reshape.apply(self, shape=tuple(shape))

    view = reshape

    def flatten(self, start_dim=0, end_dim=-1):
        """Merge dims start_dim..end_dim into one (a 0-d tensor becomes shape (1,))."""
        start = _dim(start_dim, self.ndim, "start_dim")
        end = _dim(end_dim, self.ndim, "end_dim")
        if start > end:
            raise ValueError(f"flatten() start_dim cannot come after end_dim; got "
                             f"start_dim={start_dim}, end_dim={end_dim} for shape {self.shape}")
        merged = math.prod(self.shape[start : end + 1])  # explicit: -1 is ambiguous when N = 0
        return self.reshape(self.shape[:start] + (merged,) + self.shape[end + 1 :])

    def permute(self, *axes):
        axes = axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes
        axes = tuple(_dim(a, self.ndim) for a in axes)
        if sorted(axes) != list(range(self.ndim)):
            raise ValueError(f"permute needs each of the {self.ndim} dims once; got {axes}")
        return movement.Permute.apply(self, axes=axes)

    def transpose(self, dim0, dim1):
        axes = list(range(self.ndim))
        dim0, dim1 = _dim(dim0, self.ndim, "dim0"), _dim(dim1, self.ndim, "dim1")
        axes[dim0], axes[dim1] = axes[dim1], axes[dim0]
        return self.permute(axes)

    def unsqueeze(self, dim):
        dim = _dim(dim, self.ndim, extra=1)
        return self.reshape(self.shape[:dim] + (1,) + self.shape[dim:])

    def squeeze(self, dim=None):
        if dim is None:
            return self.reshape(tuple(n for n in self.shape if n != 1))
        if self.ndim == 0:
            return self
        dim = _dim(dim, self.ndim)
        if self.shape[dim] != 1:
            return self
        return self.reshape(self.shape[:dim] + self.shape[dim + 1 :])

    def expand(self, *shape):
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        if len(shape) < self.ndim:
            raise ValueError(f"expand needs at least as many sizes as the tensor has dims "
                             f"({self.ndim}); got {tuple(shape)}")
        current = (None,) * (len(shape) - self.ndim) + self.shape
        for i, (s, n) in enumerate(zip(shape, current)):
            if s < 0 and (s != -1 or n is None):
                raise ValueError(f"expand sizes must be >= 0, or -1 to keep an existing dim; got "
                                 f"{s} for dim {i} of {tuple(shape)}")
            if s != -1 and n not in (None, 1, s):
                raise ValueError(f"expand cannot make dim {i} of size {n} into {s}: only size-1 "
                                 f"dims grow (-1 keeps a size); got shape {self.shape} -> "
                                 f"{tuple(shape)}")
        shape = tuple(n if s == -1 else s for s, n in zip(shape, current))
        # a view, but what is computed from it (and its gradient) has the full size
        check_fits(shape, self.dtype, f"expand to {shape}")
        return movement.Expand.apply(self, shape=shape)

    def __getitem__(self, index):
        if isinstance(index, Tensor):
            index = index.data
        elif isinstance(index, tuple):
            index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
        return movement.GetItem.apply(self, index=index)


def as_tensor(x):
    """x as a Tensor: Tensors pass through, arrays and scalars are wrapped (no copy)."""
    return x if isinstance(x, Tensor) else Tensor(x)


def tensor(data, requires_grad=False, dtype=None):
    """A new leaf Tensor holding a copy of `data` (Python floats become float32)."""
    array = _to_array(data, dtype)
    return Tensor(array.copy() if array is data else array, requires_grad=requires_grad)


def _join_args(name, tensors, dim, extra):
    """Validate a non-empty sequence of tensors and a dim in range for rank + extra."""
    if isinstance(tensors, Tensor) or not isinstance(tensors, (list, tuple)) or not tensors:
        raise ValueError(f"{name} expects a non-empty list or tuple of tensors; got {tensors!r}")
    tensors = [as_tensor(t) for t in tensors]
    ndim = tensors[0].ndim + extra
    if not -ndim <= dim < ndim:
        raise ValueError(f"{name} dim must be in [{-ndim}, {ndim - 1}]; got {dim}")
    return tensors, dim % ndim


def cat(tensors, dim=0):
    """Join tensors along an existing dim (skip connections: DenseNet, U-Net, Inception)."""
    tensors, dim = _join_args("cat", tensors, dim, 0)
    def others(shape):
        return shape[:dim] + shape[dim + 1 :]

    first = tensors[0].shape
    for t in tensors[1:]:
        if t.ndim != len(first) or others(t.shape) != others(first):
            raise ValueError(f"cat expects tensors that match in every dim but {dim}; got shapes "
                             f"{[tuple(x.shape) for x in tensors]}")
    return movement.Concat.apply(*tensors, axis=dim)


def stack(tensors, dim=0):
    """Join same-shaped tensors along a new dim."""
    tensors, dim = _join_args("stack", tensors, dim, 1)
    if any(t.shape != tensors[0].shape for t in tensors):
        raise ValueError(f"stack expects tensors of one shape; got shapes "
                         f"{[tuple(x.shape) for x in tensors]}")
    return movement.Stack.apply(*tensors, axis=dim)


def add(input, other, alpha=1):
    """input + alpha * other with broadcasting (residual connections)."""
    input = as_tensor(input)
    return input + (other if alpha == 1 else input._other(other) * alpha)
