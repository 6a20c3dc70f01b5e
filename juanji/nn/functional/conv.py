"""Convolution functions: conv1d/2d, their transposes, and torchvision's deform_conv2d.

2-D functions take (N, C, H, W) or unbatched (C, H, W); 1-D ones take (N, C, L) or (C, L) and
run the 2-D op with H = 1. Checks name the argument and the expected range.
"""

from juanji.arithmetic import conv_output_size, effective_kernel, same_padding
from juanji.nn.args import check_input, one_of, pair, single
from juanji.ops import conv, deform
from juanji.ops.memory import check_fits
from juanji.tensor import as_tensor

__all__ = ["conv1d", "conv2d", "conv_padding", "conv_transpose1d", "conv_transpose2d",
           "deform_conv2d"]


def conv_padding(padding, kernel, dilation, stride):
    """Normalise int / pair / 'same' / 'valid' padding to ((top, bottom), (left, right)).

    'same' puts the odd cell of an even total after (bottom/right), as PyTorch does.
    """
    if padding == "valid":
        return (0, 0), (0, 0)
    if padding == "same":
        if tuple(stride) != (1, 1):
            raise ValueError(f"padding='same' needs stride 1; got stride={tuple(stride)}")
        return same_padding(kernel[0], dilation[0]), same_padding(kernel[1], dilation[1])
    if isinstance(padding, str):
        raise ValueError(f"padding must be an int, a pair, 'same' or 'valid'; got {padding!r}")
    ph, pw = pair(padding, "padding", minimum=0)
    return (ph, ph), (pw, pw)


def _batched(input, name):
    input = as_tensor(input)
    check_input(input, name, (3, 4), "(N, C, H, W) or (C, H, W)")
    return (input.unsqueeze(0), True) if input.ndim == 3 else (input, False)


def _check_weight(weight, name, what):
    weight = as_tensor(weight)
    if weight.ndim != 4:
        raise ValueError(f"{name} expects a 4-D weight {what}; got shape {tuple(weight.shape)}")
    if min(weight.shape[2:]) < 1:
        raise ValueError(f"{name} expects a kernel of at least 1x1; got a weight of shape "
                         f"{tuple(weight.shape)}")
    return weight


def _check_bias(bias, channels, name):
    if bias is None:
        return None
    bias = as_tensor(bias)
    if tuple(bias.shape) != (channels,):
        raise ValueError(f"{name} expects a bias of shape ({channels},); got "
                         f"{tuple(bias.shape)}")
    return bias


def _check_fits(input_hw, pads, kernel, dilation):
    for axis, name in ((0, "height"), (1, "width")):
        padded = input_hw[axis] + sum(pads[axis])
        span = effective_kernel(kernel[axis], dilation[axis])
        if span > padded:
            raise ValueError(
                f"kernel {name} {kernel[axis]} (dilated span {span}) is larger than the padded "
                f"input {name} {padded}"
            )


def check_conv_input(input_shape, weight_shape, groups, pads, dilation):
    """What conv2d checks of a 4-D input against its weight (OC, C/groups, KH, KW): its
    channels, and a kernel (dilated) that fits the padded input, pads ((top, bottom), (left,
    right)). Raises ValueError naming what was expected."""
    if input_shape[1] != weight_shape[1] * groups:
        raise ValueError(
            f"conv2d expects input channels = weight.shape[1] * groups = "
            f"{weight_shape[1]} * {groups}; got input with {input_shape[1]} channels"
        )
    _check_fits(input_shape[2:], pads, weight_shape[2:], dilation)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
           fused_activation=None, fused_affine=None):
    """2-D cross-correlation. input (N, C, H, W) or (C, H, W); weight (OC, C/groups, KH, KW).

    padding: int, pair, 'valid' or 'same' (stride 1 only; an odd total pads one more cell at
    the bottom/right). Output (N, OC, OH, OW), OH = floor((H + 2P - D(K-1) - 1) / S) + 1.
    fused_activation='relu' or 'hardswish' (juanji's own, not PyTorch's) returns that
    activation of conv2d(...), applied to each block of the product while in cache,
    bit-identical to F.relu or F.hardswish after it. fused_affine=(scale, shift) (juanji's
    own, for inference: no gradient flows through it), each (out_channels,), multiplies and
    adds per output channel before the activation, as an eval-mode batch norm after the conv
    does with the vectors `ops.norm.per_channel_affine` gives: the same bits as its pass.
    """
    input, added = _batched(input, "conv2d")
    weight = _check_weight(weight, "conv2d", "(out_channels, in_channels/groups, KH, KW)")
    stride, dilation = pair(stride, "stride"), pair(dilation, "dilation")
    groups = single(groups, "groups")
    kernel = weight.shape[2:]
    pads = conv_padding(padding, kernel, dilation, stride)
    check_conv_input(input.shape, weight.shape, groups, pads, dilation)
    if weight.shape[0] % groups:
        raise ValueError(f"groups must divide out_channels; got out_channels={weight.shape[0]}, "
                         f"groups={groups}")
    bias = _check_bias(bias, weight.shape[0], "conv2d")
    n, c, h, w = input.shape  # the padded input and the output fit, before either exists
    what = f"padding={padding!r}"
    check_fits((n, c, h + sum(pads[0]), w + sum(pads[1])), input.dtype, what)
    check_fits((n, weight.shape[0]) + tuple(
        conv_output_size(size, k, s, p, d)
        for size, k, s, p, d in zip((h, w), kernel, stride, pads, dilation)), input.dtype, what)
    one_of(fused_activation, "fused_activation", (None, "relu", "hardswish"))
    if fused_affine is not None and any(len(v) != weight.shape[0] for v in fused_affine):
        raise ValueError(f"fused_affine must be (scale, shift), each of out_channels = "
                         f"{weight.shape[0]} values; got lengths "
                         f"{[len(v) for v in fused_affine]}")
    out = conv.Conv2d.apply(input, weight, bias, stride=stride, padding=pads,
                            dilation=dilation, groups=groups, activation=fused_activation,
                            affine=fused_affine)
    return out[0] if added else out


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """1-D cross-correlation. input (N, C, L) or (C, L); weight (OC, C/groups, K).

    padding: int, 'valid' or 'same'. Runs conv2d on (N, C, 1, L).
    """
    input, weight = as_tensor(input), as_tensor(weight)
    check_input(input, "conv1d", (2, 3), "(N, C, L) or (C, L)")
    if weight.ndim != 3:
        raise ValueError(f"conv1d expects a 3-D weight (out_channels, in_channels/groups, K); "
                         f"got shape {tuple(weight.shape)}")
    padding = padding if isinstance(padding, str) else (0, single(padding, "padding", 0))
    out = conv2d(input.unsqueeze(-2), weight.unsqueeze(2), bias, (1, single(stride, "stride")),
                 padding, (1, single(dilation, "dilation")), groups)
    return out.squeeze(-2)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """Transposed 2-D convolution (the gradient of conv2d w.r.t. its input).

    input (N, C, H, W) or (C, H, W); weight (C, OC/groups, KH, KW). Output (N, OC, OH, OW),
    OH = (H - 1) * S - 2P + D(K - 1) + output_padding + 1; output_padding must be smaller
    than stride or dilation (per axis).
    """
    input, added = _batched(input, "conv_transpose2d")
    weight = _check_weight(weight, "conv_transpose2d",
                           "(in_channels, out_channels/groups, KH, KW)")
    stride, dilation = pair(stride, "stride"), pair(dilation, "dilation")
    padding = pair(padding, "padding", minimum=0)
    output_padding = pair(output_padding, "output_padding", minimum=0)
    groups = single(groups, "groups")
    c = input.shape[1]
    if weight.shape[0] != c:
        raise ValueError(f"conv_transpose2d expects input channels = weight.shape[0] = "
                         f"{weight.shape[0]}; got input with {c} channels")
    if c % groups:
        raise ValueError(f"groups must divide in_channels; got in_channels={c}, groups={groups}")
    for a in (0, 1):
        if output_padding[a] >= stride[a] and output_padding[a] >= dilation[a]:
            raise ValueError(
                f"output_padding must be smaller than either stride or dilation; got "
                f"output_padding={output_padding}, stride={stride}, dilation={dilation}"
            )
    kernel = weight.shape[2:]
    out_size = []
    for a, name in ((0, "height"), (1, "width")):
        size = ((input.shape[2 + a] - 1) * stride[a] - 2 * padding[a]
                + effective_kernel(kernel[a], dilation[a]) + output_padding[a])
        if size < 0:  # 0 is an empty output, as in PyTorch
            raise ValueError(f"padding={padding} crops the whole output {name} and more (it "
                             f"would be {size})")
        out_size.append(size)
    check_fits((input.shape[0], weight.shape[1] * groups, *out_size), input.dtype,
               f"stride={stride}, dilation={dilation}, output_padding={output_padding}")
    bias = _check_bias(bias, weight.shape[1] * groups, "conv_transpose2d")
    pads = tuple((p, p) for p in padding)
    out = conv.ConvTranspose2d.apply(input, weight, bias, stride=stride, padding=pads,
                                     output_padding=output_padding, dilation=dilation,
                                     groups=groups)
    return out[0] if added else out


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """Transposed 1-D convolution. input (N, C, L) or (C, L); weight (C, OC/groups, K)."""
    input, weight = as_tensor(input), as_tensor(weight)
    check_input(input, "conv_transpose1d", (2, 3), "(N, C, L) or (C, L)")
    if weight.ndim != 3:
        raise ValueError(f"conv_transpose1d expects a 3-D weight (in_channels, "
                         f"out_channels/groups, K); got shape {tuple(weight.shape)}")
    out = conv_transpose2d(input.unsqueeze(-2), weight.unsqueeze(2), bias,
                           (1, single(stride, "stride")), (0, single(padding, "padding", 0)),
                           (0, single(output_padding, "output_padding", 0)), groups,
                           (1, single(dilation, "dilation")))
    return out.squeeze(-2)


def deform_conv2d(input, offset, weight, bias=None, stride=1, padding=0, dilation=1, mask=None):
    """Deformable convolution with torchvision.ops.deform_conv2d's semantics (DCNv2 with mask).

    input (N, C, H, W); offset (N, 2*OG*KH*KW, OH, OW) as (dy, dx) per tap, OG offset groups
    (OG divides C); weight (OC, C/G, KH, KW), G = C / weight.shape[1]; mask (N, OG*KH*KW,
    OH, OW) or None. Samples are bilinear with zeros outside the input.
    """
    input, offset = as_tensor(input), as_tensor(offset)
    check_input(input, "deform_conv2d", (4,), "(N, C, H, W)")
    check_input(offset, "deform_conv2d offset", (4,), "(N, 2*offset_groups*KH*KW, OH, OW)")
    weight = _check_weight(weight, "deform_conv2d", "(out_channels, in_channels/groups, KH, KW)")
    stride, dilation = pair(stride, "stride"), pair(dilation, "dilation")
    padding = pair(padding, "padding", minimum=0)
    n, c, h, w = input.shape
    oc, cg, kh, kw = weight.shape
    if c % cg:
        raise ValueError(f"deform_conv2d: weight.shape[1]={cg} must divide the input channels "
                         f"{c}")
    if oc % (c // cg):
        raise ValueError(f"groups must divide out_channels; got out_channels={oc}, "
                         f"groups={c // cg}")
    taps = kh * kw
    if offset.shape[1] == 0 or offset.shape[1] % (2 * taps):
        raise ValueError(f"offset.shape[1] must be a positive multiple of 2*KH*KW = {2 * taps}; "
                         f"got {offset.shape[1]}")
    og = offset.shape[1] // (2 * taps)
    if c % og:
        raise ValueError(f"offset groups ({og}) must divide the input channels ({c})")
    _check_fits((h, w), ((padding[0],) * 2, (padding[1],) * 2), (kh, kw), dilation)
    oh = (h + 2 * padding[0] - effective_kernel(kh, dilation[0])) // stride[0] + 1
    ow = (w + 2 * padding[1] - effective_kernel(kw, dilation[1])) // stride[1] + 1
    if tuple(offset.shape) != (n, 2 * og * taps, oh, ow):
        raise ValueError(f"offset must have shape {(n, 2 * og * taps, oh, ow)}; got "
                         f"{tuple(offset.shape)}")
    if mask is not None:
        mask = as_tensor(mask)
        if tuple(mask.shape) != (n, og * taps, oh, ow):
            raise ValueError(f"mask must have shape {(n, og * taps, oh, ow)}; got "
                             f"{tuple(mask.shape)}")
    bias = _check_bias(bias, oc, "deform_conv2d")
    return deform.DeformConv2d.apply(input, offset, weight, bias, mask, stride=stride,
                                     padding=padding, dilation=dilation)
