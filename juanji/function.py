"""Function: the base of every differentiable op.

One Function instance per call is the autograd context. `forward` works on raw arrays and keeps
on `self` only what `backward` needs; `backward` returns one raw gradient array per input (None
where the input needs none). There is no double backprop: backward is plain array math.
"""

from juanji import grad_mode
from juanji.backend import blas_in_ops

_KIND_NAMES = {"f": "a floating-point", "fiu": "a numeric (integer or floating-point)"}

Tensor = as_tensor = None  # from juanji.tensor, imported at the first op call

# juanji.onnx.export sets this to a callable(function, input_tensors, params, output) while
# it traces one forward; every op call passes through `run`.
_tracer = None


def check_input_dtype(dtype, kinds, name):
    """Refuse a first input whose NumPy dtype kind is not in `kinds` ("f": floating point;
    "fiu": also integers), naming the op or layer: `Conv2d expects a floating-point input; got
    int64 (...)`. Integer images would otherwise go in un-rescaled or come out float64."""
    if dtype.kind not in kinds:
        hint = "convert with x.float(); divide 8-bit images by 255" if kinds == "f" else \
            "convert with x.float()"
        raise TypeError(f"{name} expects {_KIND_NAMES[kinds]} input; got {dtype} ({hint})")


class Function:
    """Subclass and define `forward(*arrays, **params)` and `backward(grad_out)`.

    `input_kinds` ("f" or "fiu", see `check_input_dtype`) restricts the dtype of the first input
    (the data; weights are float Parameters, targets may be integers); None accepts any.
    """

    needs_grad = ()
    released = False
    input_kinds = None

    @classmethod
    def apply(cls, *inputs, **params):
        """Run the op on Tensors (or arrays/scalars, or None for absent optional inputs)."""
        return cls().run(*inputs, **params)

    def run(self, *inputs, **params):
        """Like `apply`, on an instance the caller keeps (to read extras such as pool indices)."""
        global Tensor, as_tensor
        if Tensor is None:  # juanji.tensor imports the ops, which import this module
            from juanji.tensor import Tensor, as_tensor
        tensors = [None if x is None else as_tensor(x) for x in inputs]
        if self.input_kinds is not None:
            check_input_dtype(tensors[0].dtype, self.input_kinds, type(self).__name__)
        # under no_grad nothing will call backward, so forward may skip what it would keep
        enabled = grad_mode.is_enabled()
        self.needs_grad = tuple(enabled and t is not None and t.requires_grad for t in tensors)
        with blas_in_ops:  # BLAS on one thread: its threads stay off juanji's cores, see backend
            raw = self.forward(*(None if t is None else t.data for t in tensors), **params)
        track = any(self.needs_grad)
        out = Tensor(raw, requires_grad=track)
        if track:
            # The graph links to each computed input through the Function that made it, not
            # the input tensor, so an intermediate result's array is freed as soon as nothing
            # else holds it (the caller, or an op that saved it for its backward). Leaves are
            # kept as tensors: backward sets their .grad.
            self.parents = [t if t is None or t._ctx is None else t._ctx for t in tensors]
            out._ctx = self
        if _tracer is not None:
            _tracer(self, tensors, params, out)
        return out

    def release(self):
        """Drop everything this op kept for backward (after a backward without retain_graph)."""
        self.__dict__.clear()
        self.released = True

    def forward(self, *arrays, **params):
        raise NotImplementedError

    def backward(self, grad_out):
        raise NotImplementedError


def unbroadcast(grad, shape):
    """Sum `grad` down to `shape`, undoing NumPy broadcasting (leading axes, then size-1 axes)."""
    if grad.shape == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)
