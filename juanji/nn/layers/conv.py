"""Convolution layers (PyTorch's names, argument order, defaults and default init)."""

import numpy as np

from juanji.arithmetic import conv_transpose_output_padding, same_padding
from juanji.nn import functional as F
from juanji.nn.args import one_of, pair, single
from juanji.nn.init import default_layer_init_
from juanji.nn.layers.activation import mark_activated
from juanji.nn.module import Module, Parameter
from juanji.ops.memory import check_fits

__all__ = ["Conv1d", "Conv2d", "ConvTranspose1d", "ConvTranspose2d", "DeformConv2d",
           "DepthwiseSeparableConv2d"]

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


class _ConvNd(Module):
    """Shared constructor: checks, weight (and bias) created eagerly, PyTorch's default init.

    `dims` is 1 or 2; tuples are stored with `dims` entries (kernel_size=(3,) for Conv1d).
    """

    floating_input = True
    transposed = False

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                 bias, padding_mode, dtype, dims, output_padding=0):
        super().__init__()
        self.in_channels = single(in_channels, "in_channels")
        self.out_channels = single(out_channels, "out_channels")
        self.groups = single(groups, "groups")
        if in_channels % groups:
            raise ValueError(f"groups must divide in_channels; got in_channels={in_channels}, "
                             f"groups={groups}")
        if out_channels % groups:
            raise ValueError(f"groups must divide out_channels; got out_channels={out_channels}, "
                             f"groups={groups}")
        shape = (lambda v, name, minimum=1: pair(v, name, minimum)) if dims == 2 else \
            (lambda v, name, minimum=1: (single(v, name, minimum),))
        self.kernel_size = shape(kernel_size, "kernel_size")
        self.stride = shape(stride, "stride")
        self.dilation = shape(dilation, "dilation")
        self.padding_mode = one_of(padding_mode, "padding_mode", PADDING_MODES)
        if isinstance(padding, str):
            one_of(padding, "padding", ("same", "valid"))
            if self.transposed:
                raise ValueError(f"padding must be an int or a tuple for "
                                 f"{type(self).__name__}; got {padding!r}")
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError(f"padding='same' needs stride 1; got stride={self.stride}")
            self.padding = padding
        else:
            self.padding = shape(padding, "padding", 0)
        self.output_padding = shape(output_padding, "output_padding", 0)
        if self.transposed:
            if padding_mode != "zeros":
                raise ValueError(f"padding_mode must be 'zeros' for {type(self).__name__}; "
                                 f"got {padding_mode!r}")
            for op, s, d in zip(self.output_padding, self.stride, self.dilation):
                if op >= s and op >= d:
                    raise ValueError(
                        f"output_padding must be smaller than either stride or dilation; got "
                        f"output_padding={self.output_padding}, stride={self.stride}, "
                        f"dilation={self.dilation}"
                    )
            shape_w = (in_channels, out_channels // groups) + self.kernel_size
        else:
            shape_w = (out_channels, in_channels // groups) + self.kernel_size
        check_fits(shape_w, dtype, f"in_channels={in_channels}, out_channels={out_channels}, "
                                   f"kernel_size={kernel_size}", kind="weight")
        self.weight = Parameter(np.empty(shape_w, dtype=dtype))
        self.bias = Parameter(np.empty(out_channels, dtype=dtype)) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        default_layer_init_(self.weight, self.bias)

    def _mode_pad(self, x):
        """For padding_mode != 'zeros': pad x with the mode (PyTorch pads, then convolves with
        zero padding 0). Returns (x, padding to pass on)."""
        if self.padding_mode == "zeros":
            return x, self.padding
        if self.padding == "valid":
            return x, self.padding
        if self.padding == "same":
            sides = [same_padding(k, d) for k, d in zip(self.kernel_size, self.dilation)]
        else:
            sides = [(p, p) for p in self.padding]
        amounts = tuple(v for before_after in reversed(sides) for v in before_after)
        return F.pad(x, amounts, mode=self.padding_mode), 0

    def extra_repr(self):
        text = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}")
        if self.padding not in ((0,) * len(self.kernel_size),):
            text += f", padding={self.padding!r}" if isinstance(self.padding, str) \
                else f", padding={self.padding}"
        if self.dilation != (1,) * len(self.kernel_size):
            text += f", dilation={self.dilation}"
        if self.output_padding != (0,) * len(self.kernel_size):
            text += f", output_padding={self.output_padding}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        if self.padding_mode != "zeros":
            text += f", padding_mode={self.padding_mode}"
        return text


class Conv2d(_ConvNd):
    """2-D convolution. (N, in_channels, H, W) -> (N, out_channels, OH, OW).

    weight: (out_channels, in_channels / groups, KH, KW). padding: int, pair, 'same' or
    'valid'; padding_mode 'zeros' | 'reflect' | 'replicate' | 'circular' (the non-zero modes
    pad the input first, as PyTorch does). groups == in_channels is depthwise.

    fused_activation (None; 'relu' or 'hardswish' when set by nn.utils.fuse_activations, not
    saved in the state dict): forward returns that activation of conv(x), applied to each
    block of the product while in cache; the F.relu or F.hardswish after it passes it through.
    """

    fused_activation = None

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", dtype=np.float32):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, dtype, dims=2)

    def forward(self, x):
        out = self.forward_with(x, self.fused_activation)
        return out if self.fused_activation is None else mark_activated(out,
                                                                        self.fused_activation)

    def forward_with(self, x, activation=None, affine=None):
        """conv(x), then per output channel * scale + shift (affine: an eval-mode batch norm's
        vectors, for inference) and the activation, applied in the conv's own pass (see
        F.conv2d's fused_activation and fused_affine; nn.layers.chain calls this)."""
        x, padding = self._mode_pad(x)
        return F.conv2d(x, self.weight, self.bias, self.stride, padding, self.dilation,
                        self.groups, fused_activation=activation, fused_affine=affine)

    def extra_repr(self):
        fused = self.fused_activation
        return super().extra_repr() + ("" if fused is None else f", fused_activation={fused}")


class Conv1d(_ConvNd):
    """1-D convolution. (N, in_channels, L) -> (N, out_channels, OL); weight (OC, IC/G, K)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", dtype=np.float32):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, dtype, dims=1)

    def forward(self, x):
        x, padding = self._mode_pad(x)
        if isinstance(padding, tuple):
            padding = padding[0]
        return F.conv1d(x, self.weight, self.bias, self.stride[0], padding, self.dilation[0],
                        self.groups)


class ConvTranspose2d(_ConvNd):
    """Transposed 2-D convolution ("deconvolution"), the adjoint of Conv2d.

    (N, in_channels, H, W) -> (N, out_channels, OH, OW), OH = (H - 1) * S - 2P + D(K - 1)
    + output_padding + 1. weight: (in_channels, out_channels / groups, KH, KW).
    forward(x, output_size=None): output_size ((OH, OW) or (N, C, OH, OW)) picks the
    output_padding that reaches it, as in PyTorch.
    """

    transposed = True

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, padding_mode="zeros",
                 dtype=np.float32):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, dtype, dims=2, output_padding=output_padding)

    def _output_padding(self, x, output_size):
        if output_size is None:
            return self.output_padding
        dims = len(self.kernel_size)
        size = [int(v) for v in output_size]
        if len(size) == dims + 2:
            size = size[2:]
        if len(size) != dims:
            raise ValueError(f"output_size must have {dims} or {dims + 2} elements; got "
                             f"{output_size!r}")
        return tuple(
            conv_transpose_output_padding(x.shape[-dims + a], size[a], self.kernel_size[a],
                                          self.stride[a], self.padding[a], self.dilation[a])
            for a in range(dims))

    def forward(self, x, output_size=None):
        return F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding,
                                  self._output_padding(x, output_size), self.groups,
                                  self.dilation)


class ConvTranspose1d(ConvTranspose2d):
    """Transposed 1-D convolution. (N, in_channels, L) -> (N, out_channels, OL)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, padding_mode="zeros",
                 dtype=np.float32):
        _ConvNd.__init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, dtype, dims=1, output_padding=output_padding)

    def forward(self, x, output_size=None):
        return F.conv_transpose1d(x, self.weight, self.bias, self.stride[0], self.padding[0],
                                  self._output_padding(x, output_size)[0], self.groups,
                                  self.dilation[0])


class DeformConv2d(_ConvNd):
    """Deformable convolution (torchvision.ops.DeformConv2d): forward(x, offset, mask=None).

    offset: (N, 2*OG*KH*KW, OH, OW) (dy, dx per tap), usually predicted by a plain Conv2d;
    mask: (N, OG*KH*KW, OH, OW) for DCNv2 modulation. weight (OC, IC/groups, KH, KW).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, dtype=np.float32):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, "zeros", dtype, dims=2)
        if isinstance(self.padding, str):
            raise ValueError(f"padding must be an int or a pair; got {padding!r}")

    def forward(self, x, offset, mask=None):
        return F.deform_conv2d(x, offset, self.weight, self.bias, self.stride, self.padding,
                               self.dilation, mask)


class DepthwiseSeparableConv2d(Module):
    """A depthwise KxK conv (groups = in_channels) then a pointwise 1x1 conv (MobileNet).

    (N, in_channels, H, W) -> (N, out_channels, OH, OW). Children: `depthwise`
    (in_channels -> in_channels, kernel_size, stride, padding) and `pointwise`
    (in_channels -> out_channels, 1x1); both get a bias only if `bias`. Costs
    C*K*K + C*OC weights instead of C*OC*K*K. No activation or norm in between: add them
    around the children if the architecture wants them.
    """

    floating_input = True

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=False,
                 dtype=np.float32):
        super().__init__()
        self.depthwise = Conv2d(in_channels, in_channels, kernel_size, stride, padding,
                                groups=in_channels, bias=bias, dtype=dtype)
        self.pointwise = Conv2d(in_channels, out_channels, 1, bias=bias, dtype=dtype)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))
