"""Pooling functions."""

from juanji.nn.args import check_input, pair
from juanji.ops import pool
from juanji.tensor import Tensor, as_tensor

__all__ = ["avg_pool2d", "max_pool2d"]

def _pool_args(input, kernel_size, stride, padding, dilation):
    check_input(input, "pooling", (4,), "(N, C, H, W)")
    kernel = pair(kernel_size, "kernel_size")
    stride = kernel if stride is None or stride == () else pair(stride, "stride")
    padding = pair(padding, "padding", minimum=0)
    dilation = pair(dilation, "dilation")
    for k, p in zip(kernel, padding):
        if p > k // 2:
            raise ValueError(
                f"padding should be at most half of kernel_size; got padding={padding}, "
                f"kernel_size={kernel}"
            )
    return kernel, stride, padding, dilation


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Max over KH x KW windows; with return_indices also the flat h * W + w argmax indices."""
    input = as_tensor(input)
    if input.ndim == 3:
        out = max_pool2d(input.unsqueeze(0), kernel_size, stride, padding, dilation, ceil_mode,
                         return_indices)
        return (out[0][0], out[1][0]) if return_indices else out[0]
    kernel, stride, padding, dilation = _pool_args(input, kernel_size, stride, padding, dilation)
    fn = pool.MaxPool2d()
    out = fn.run(input, kernel=kernel, stride=stride, padding=padding, dilation=dilation,
                 ceil_mode=ceil_mode)
    return (out, Tensor(fn.indices())) if return_indices else out


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """Mean over KH x KW windows (PyTorch's divisor rules, see ops.pool.AvgPool2d)."""
    input = as_tensor(input)
    if input.ndim == 3:
        return avg_pool2d(input.unsqueeze(0), kernel_size, stride, padding, ceil_mode,
                          count_include_pad, divisor_override)[0]
    kernel, stride, padding, _ = _pool_args(input, kernel_size, stride, padding, 1)
    if divisor_override is not None and divisor_override <= 0:
        raise ValueError(f"divisor_override must be > 0; got {divisor_override}")
    return pool.AvgPool2d.apply(input, kernel=kernel, stride=stride, padding=padding,
                                ceil_mode=ceil_mode, count_include_pad=count_include_pad,
                                divisor_override=divisor_override)
