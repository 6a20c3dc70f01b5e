"""Conv arithmetic as pure functions: output sizes and 'same' padding, used by the layers.

All sizes are per spatial axis. The rules are PyTorch's (and the seeds' formula
`(H + 2P - K) / S + 1` with dilation folded into the effective kernel `D * (K - 1) + 1`).
"""


def effective_kernel(kernel, dilation=1):
    """Span of a dilated kernel: D * (K - 1) + 1."""
    return dilation * (kernel - 1) + 1


def conv_output_size(size, kernel, stride=1, padding=0, dilation=1):
    """floor((size + pad_total - D*(K-1) - 1) / S) + 1.

    `padding` is either one int (both sides) or a (before, after) pair.
    """
    before, after = (padding, padding) if isinstance(padding, int) else padding
    span = size + before + after - effective_kernel(kernel, dilation)
    if span < 0:
        raise ValueError(
            f"kernel size {kernel} (dilation {dilation}, effective "
            f"{effective_kernel(kernel, dilation)}) is larger than the padded input "
            f"{size + before + after}"
        )
    return span // stride + 1


def pool_output_size(size, kernel, stride, padding=0, dilation=1, ceil_mode=False):
    """Pooling output size; with ceil_mode the last window must start inside input or left pad."""
    span = size + 2 * padding - effective_kernel(kernel, dilation)
    if span < 0:
        raise ValueError(
            f"pooling window {effective_kernel(kernel, dilation)} is larger than the padded "
            f"input {size + 2 * padding}"
        )
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def conv_transpose_output_size(size, kernel, stride=1, padding=0, output_padding=0, dilation=1):
    """(size - 1) * S - 2P + D*(K-1) + output_padding + 1."""
    return (size - 1) * stride - 2 * padding + effective_kernel(kernel, dilation) + output_padding


def same_padding(kernel, dilation=1):
    """(before, after) padding that keeps the size at stride 1; the odd cell goes after."""
    total = effective_kernel(kernel, dilation) - 1
    return total // 2, total - total // 2
