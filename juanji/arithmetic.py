"""Conv arithmetic as pure functions: output sizes and padding, used by the layers.

All sizes are per spatial axis. The rules are PyTorch's (and the seeds' formula
`(H + 2P - K) / S + 1` with dilation folded into the effective kernel `D * (K - 1) + 1`).
`padding` is one int (both sides) or a (before, after) pair wherever a function takes it.
"""


def effective_kernel(kernel, dilation=1):
    """Span of a dilated kernel: D * (K - 1) + 1."""
    return dilation * (kernel - 1) + 1


def _sides(padding):
    return (padding, padding) if isinstance(padding, int) else tuple(padding)


def conv_output_size(size, kernel, stride=1, padding=0, dilation=1):
    """floor((size + pad_total - D*(K-1) - 1) / S) + 1; raises if the kernel overhangs."""
    before, after = _sides(padding)
    span = size + before + after - effective_kernel(kernel, dilation)
    if span < 0:
        raise ValueError(
            f"kernel size {kernel} (dilation {dilation}, effective "
            f"{effective_kernel(kernel, dilation)}) is larger than the padded input "
            f"{size + before + after}"
        )
    return span // stride + 1


def pool_output_size(size, kernel, stride, padding=0, dilation=1, ceil_mode=False):
    """Pooling output size by PyTorch's rule.

    floor (or, with ceil_mode, ceil) of (size + pads - D*(K-1) - 1) / S, plus one. With
    ceil_mode the last window must start inside the input or the left padding, so a window
    that would start in the right padding is dropped; ceil_mode also lets the one window run
    past a too-small input (PyTorch does). Raises when no window fits.
    """
    before, after = _sides(padding)
    span = size + before + after - effective_kernel(kernel, dilation)
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1  # floor division, as div_rtn
    if ceil_mode and (out - 1) * stride >= size + before:
        out -= 1
    if out < 1:
        raise ValueError(
            f"pooling window {effective_kernel(kernel, dilation)} (kernel_size={kernel}, "
            f"dilation={dilation}) is larger than the padded input {size + before + after}"
        )
    return out


def conv_transpose_output_size(size, kernel, stride=1, padding=0, output_padding=0, dilation=1):
    """(size - 1) * S - 2P + D*(K-1) + output_padding + 1 (may be < 1; callers check)."""
    before, after = _sides(padding)
    return (size - 1) * stride - before - after + effective_kernel(kernel, dilation) + \
        output_padding


def conv_transpose_output_padding(size, target, kernel, stride=1, padding=0, dilation=1):
    """The output_padding that makes a transposed conv produce `target` cells (PyTorch's
    `output_size` argument): target minus the smallest size, which must be in [0, S - 1]."""
    smallest = conv_transpose_output_size(size, kernel, stride, padding, 0, dilation)
    if not smallest <= target <= smallest + stride - 1:
        raise ValueError(
            f"output_size {target} is not reachable; it must be between {smallest} and "
            f"{smallest + stride - 1} for input size {size}"
        )
    return target - smallest


def same_padding(kernel, dilation=1):
    """(before, after) padding that keeps the size at stride 1; the odd cell goes after."""
    total = effective_kernel(kernel, dilation) - 1
    return total // 2, total - total // 2


def strided_same_padding(size, kernel, stride=1, dilation=1, lower=False):
    """(before, after) padding for output ceil(size / S), as ONNX/TF auto_pad SAME_UPPER
    (odd cell after) or SAME_LOWER (odd cell before, `lower=True`)."""
    out = -(-size // stride)
    total = max(0, (out - 1) * stride + effective_kernel(kernel, dilation) - size)
    small, large = total // 2, total - total // 2
    return (large, small) if lower else (small, large)


def adaptive_pool_bounds(size, out_size):
    """PyTorch's adaptive-pool windows: [(floor(i*size/out), ceil((i+1)*size/out)), ...]."""
    return [((i * size) // out_size, -(-((i + 1) * size) // out_size)) for i in range(out_size)]


def unpool_output_size(size, kernel, stride, padding=0):
    """Default MaxUnpool output size: (size - 1) * S - 2P + K."""
    return (size - 1) * stride - 2 * padding + kernel
