"""Convolution functions."""

from juanji.arithmetic import same_padding
from juanji.nn.args import check_input, pair
from juanji.ops import conv
from juanji.tensor import as_tensor

__all__ = ["conv2d", "conv_padding"]

def conv_padding(padding, kernel, dilation, stride):
    """Normalise int / pair / 'same' / 'valid' padding to ((top, bottom), (left, right))."""
    if padding == "valid":
        return (0, 0), (0, 0)
    if padding == "same":
        if stride != (1, 1):
            raise ValueError(f"padding='same' needs stride 1; got stride={stride}")
        return same_padding(kernel[0], dilation[0]), same_padding(kernel[1], dilation[1])
    if isinstance(padding, str):
        raise ValueError(f"padding must be an int, a pair, 'same' or 'valid'; got {padding!r}")
    ph, pw = pair(padding, "padding", minimum=0)
    return (ph, ph), (pw, pw)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D cross-correlation. input (N, C, H, W) or (C, H, W); weight (OC, C/groups, KH, KW)."""
    input, weight = as_tensor(input), as_tensor(weight)
    check_input(input, "conv2d", (3, 4), "(N, C, H, W) or (C, H, W)")
    if input.ndim == 3:
        return conv2d(input.unsqueeze(0), weight, bias, stride, padding, dilation, groups)[0]
    stride, dilation = pair(stride, "stride"), pair(dilation, "dilation")
    kernel = weight.shape[2:]
    pads = conv_padding(padding, kernel, dilation, stride)
    if groups < 1 or input.shape[1] != weight.shape[1] * groups:
        raise ValueError(
            f"conv2d expects input channels = weight.shape[1] * groups = "
            f"{weight.shape[1]} * {groups}; got input with {input.shape[1]} channels"
        )
    if weight.shape[0] % groups:
        raise ValueError(f"groups must divide out_channels; got out_channels={weight.shape[0]}, "
                         f"groups={groups}")
    for axis, name in ((0, "height"), (1, "width")):
        padded = input.shape[2 + axis] + sum(pads[axis])
        span = dilation[axis] * (kernel[axis] - 1) + 1
        if span > padded:
            raise ValueError(
                f"kernel {name} {kernel[axis]} (dilated span {span}) is larger than the padded "
                f"input {name} {padded}"
            )
    return conv.Conv2d.apply(input, weight, bias, stride=stride, padding=pads,
                             dilation=dilation, groups=groups)
