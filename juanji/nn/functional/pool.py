"""Pooling functions (PyTorch's names, argument order, defaults and checks).

2-D pools take (N, C, H, W) or unbatched (C, H, W); 1-D pools take (N, C, L) or (C, L) and run
the 2-D op with H = 1. Global average / max pooling is the adaptive pool with output size 1
(`adaptive_avg_pool2d(x, 1)` -> (N, C, 1, 1)).
"""

import math

from juanji.arithmetic import unpool_output_size
from juanji.nn.args import check_input, pair, single
from juanji.ops import pool
from juanji.ops.memory import check_fits
from juanji.tensor import Tensor, as_tensor

__all__ = [
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_max_pool1d", "adaptive_max_pool2d",
    "avg_pool1d", "avg_pool2d", "lp_pool1d", "lp_pool2d", "max_pool1d", "max_pool2d",
    "max_unpool2d",
]


def _window_args(kernel_size, stride, padding, dilation):
    """Validate PyTorch pooling geometry; returns (kernel, stride, padding, dilation) pairs."""
    kernel = pair(kernel_size, "kernel_size")
    stride = kernel if stride is None or stride == () or stride == [] else pair(stride, "stride")
    padding = pair(padding, "padding", minimum=0)
    dilation = pair(dilation, "dilation")
    if any(p > k // 2 for p, k in zip(padding, kernel)):
        raise ValueError(
            f"padding should be at most half of kernel_size; got padding={padding}, "
            f"kernel_size={kernel}"
        )
    return kernel, stride, padding, dilation


def _batched(input, name, spatial):
    """(input with a batch axis, whether one was added); checks the rank."""
    input = as_tensor(input)
    if spatial == 2:
        check_input(input, name, (3, 4), "(N, C, H, W) or (C, H, W)")
    else:
        check_input(input, name, (2, 3), "(N, C, L) or (C, L)")
    if input.ndim == spatial + 1:
        return input.unsqueeze(0), True
    return input, False


def _unbatch(out, added):
    if isinstance(out, tuple):
        return tuple(_unbatch(o, added) for o in out)
    return out[0] if added else out


def _as_2d(input):
    """(N, C, L) -> (N, C, 1, L) for the 1-D pools."""
    return input.unsqueeze(2)


def _from_2d(out):
    if isinstance(out, tuple):
        return tuple(_from_2d(o) for o in out)
    return out.squeeze(2)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Max over KH x KW windows; with return_indices also the flat h * W + w argmax indices."""
    input, added = _batched(input, "max_pool2d", 2)
    kernel, stride, padding, dilation = _window_args(kernel_size, stride, padding, dilation)
    fn = pool.MaxPool2d()
    out = fn.run(input, kernel=kernel, stride=stride, padding=padding, dilation=dilation,
                 ceil_mode=bool(ceil_mode), return_indices=bool(return_indices))
    return _unbatch((out, Tensor(fn.indices())) if return_indices else out, added)


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Max over K-wide windows of (N, C, L); indices are positions along L."""
    input, added = _batched(input, "max_pool1d", 1)
    k = single(kernel_size, "kernel_size")
    s = k if stride is None or stride == () else single(stride, "stride")
    out = max_pool2d(_as_2d(input), (1, k), (1, s), (0, single(padding, "padding", 0)),
                     (1, single(dilation, "dilation")), ceil_mode, return_indices)
    return _unbatch(_from_2d(out), added)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """Mean over KH x KW windows (PyTorch's divisor rules, see ops.pool.AvgPool2d)."""
    input, added = _batched(input, "avg_pool2d", 2)
    kernel, stride, padding, _ = _window_args(kernel_size, stride, padding, 1)
    if divisor_override is not None:
        divisor_override = single(divisor_override, "divisor_override")
    out = pool.AvgPool2d.apply(input, kernel=kernel, stride=stride, padding=padding,
                               ceil_mode=bool(ceil_mode),
                               count_include_pad=bool(count_include_pad),
                               divisor_override=divisor_override)
    return _unbatch(out, added)


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True):
    """Mean over K-wide windows of (N, C, L)."""
    input, added = _batched(input, "avg_pool1d", 1)
    k = single(kernel_size, "kernel_size")
    s = k if stride is None or stride == () else single(stride, "stride")
    out = avg_pool2d(_as_2d(input), (1, k), (1, s), (0, single(padding, "padding", 0)),
                     ceil_mode, count_include_pad)
    return _unbatch(_from_2d(out), added)


def lp_pool2d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    """(sum over the window of x ** p) ** (1 / p), computed as PyTorch does (see
    ops.pool.LpPool2d: no abs, so odd p with a negative sum is NaN); p = inf is the max of |x|,
    p = -inf the min of |x|."""
    input, added = _batched(input, "lp_pool2d", 2)
    kernel, stride, _, _ = _window_args(kernel_size, stride, 0, 1)
    p = _norm_type(norm_type)
    if math.isinf(p):
        out = max_pool2d(input.abs() if p > 0 else -input.abs(), kernel, stride, 0, 1,
                         ceil_mode)
        return _unbatch(out if p > 0 else -out, added)
    out = pool.LpPool2d.apply(input, norm_type=p, kernel=kernel, stride=stride,
                              ceil_mode=bool(ceil_mode))
    return _unbatch(out, added)


def lp_pool1d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    """Power-average pooling over K-wide windows of (N, C, L) (see lp_pool2d)."""
    input, added = _batched(input, "lp_pool1d", 1)
    k = single(kernel_size, "kernel_size")
    s = k if stride is None or stride == () else single(stride, "stride")
    return _unbatch(_from_2d(lp_pool2d(_as_2d(input), norm_type, (1, k), (1, s), ceil_mode)),
                    added)


def _norm_type(norm_type):
    if isinstance(norm_type, bool) or not isinstance(norm_type, (int, float)):
        raise ValueError(f"norm_type must be a number; got {norm_type!r}")
    if norm_type == 0 or math.isnan(norm_type):
        raise ValueError(f"norm_type must be non-zero (p of the p-norm); got {norm_type!r}")
    return float(norm_type)


def _adaptive_size(output_size, shape):
    """PyTorch's output_size: an int, or a pair whose None entries keep the input size."""
    items = (output_size, output_size) if not isinstance(output_size, (tuple, list)) \
        else tuple(output_size)
    if len(items) != 2:
        raise ValueError(f"output_size must be an int or a pair; got {output_size!r}")
    return tuple(shape[i] if v is None else single(v, "output_size") for i, v in enumerate(items))


def adaptive_avg_pool2d(input, output_size):
    """Mean over PyTorch's adaptive windows -> (N, C, *output_size); output_size 1 is global
    average pooling. None in output_size keeps that input dimension."""
    input, added = _batched(input, "adaptive_avg_pool2d", 2)
    size = _adaptive_size(output_size, input.shape[2:])
    check_fits(input.shape[:2] + size, input.dtype, f"output_size={output_size!r}")
    return _unbatch(pool.AdaptiveAvgPool2d.apply(input, output_size=size), added)


def adaptive_max_pool2d(input, output_size, return_indices=False):
    """Max over PyTorch's adaptive windows -> (N, C, *output_size); output_size 1 is global max
    pooling. With return_indices also the flat h * W + w positions."""
    input, added = _batched(input, "adaptive_max_pool2d", 2)
    size = _adaptive_size(output_size, input.shape[2:])
    check_fits(input.shape[:2] + size, input.dtype, f"output_size={output_size!r}")
    fn = pool.AdaptiveMaxPool2d()
    out = fn.run(input, output_size=size)
    return _unbatch((out, Tensor(fn.indices())) if return_indices else out, added)


def adaptive_avg_pool1d(input, output_size):
    """Adaptive mean pooling of (N, C, L) to (N, C, output_size)."""
    input, added = _batched(input, "adaptive_avg_pool1d", 1)
    out = adaptive_avg_pool2d(_as_2d(input), (1, single(output_size, "output_size")))
    return _unbatch(_from_2d(out), added)


def adaptive_max_pool1d(input, output_size, return_indices=False):
    """Adaptive max pooling of (N, C, L) to (N, C, output_size); indices are along L."""
    input, added = _batched(input, "adaptive_max_pool1d", 1)
    out = adaptive_max_pool2d(_as_2d(input), (1, single(output_size, "output_size")),
                              return_indices)
    return _unbatch(_from_2d(out), added)


def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """Scatter each value to its flat h * W + w position in a zero map (inverse of max_pool2d
    with return_indices). Output (N, C, OH, OW): by default (H - 1) * S - 2P + K; output_size
    ((OH, OW) or (N, C, OH, OW)) may pick a size within S - 1 of it, as in PyTorch."""
    input, added = _batched(input, "max_unpool2d", 2)
    indices = as_tensor(indices)
    if added:
        indices = indices.unsqueeze(0)
    if tuple(indices.shape) != tuple(input.shape):
        raise ValueError(f"max_unpool2d expects indices of the input's shape {tuple(input.shape)}"
                         f"; got {tuple(indices.shape)}")
    kernel = pair(kernel_size, "kernel_size")
    stride = kernel if stride is None else pair(stride, "stride")
    padding = pair(padding, "padding", minimum=0)
    default = [unpool_output_size(input.shape[2 + a], kernel[a], stride[a], padding[a])
               for a in (0, 1)]
    if output_size is None:
        size = default
    else:
        size = [int(v) for v in output_size]
        if len(size) == 4:
            size = size[2:]
        if len(size) != 2:
            raise ValueError(f"output_size must have 2 or 4 elements; got {output_size!r}")
        for a in (0, 1):
            if not default[a] - stride[a] < size[a] < default[a] + stride[a]:
                raise ValueError(
                    f"output_size {tuple(size)} is invalid: dim {a} must be between "
                    f"{default[a] - stride[a] + 1} and {default[a] + stride[a] - 1}"
                )
    if min(size) < 1:
        raise ValueError(f"max_unpool2d output size {tuple(size)} must be positive")
    check_fits(input.shape[:2] + tuple(size), input.dtype,
               f"output_size={output_size!r}" if output_size is not None else
               f"kernel_size={kernel}, stride={stride}")
    out = pool.MaxUnpool2d.apply(input, indices, output_size=tuple(size))
    return _unbatch(out, added)
