"""Parameters and multiply-adds (MACs) per layer, as pure functions a student can check by hand.

Conventions (the ones torchvision publishes its "GFLOPS" numbers under):

- one MAC is one multiply-add, one FLOP is one multiply or one add, so FLOPs = 2 x MACs;
- only the layers that multiply activations by weights count: convolutions (grouped and
  depthwise ones divide by `groups`), transposed convolutions and fully connected layers;
- the bias add is not counted (it is one add per output, not a multiply-add);
- pooling, normalization (BatchNorm folds into the previous conv at inference), activations,
  dropout, reshapes, padding and resampling are counted as 0 MACs by convention;
- a layer type the counter does not know is never counted as 0: it is reported by name.

Layer types are matched with `isinstance` on `juanji.nn` classes looked up by their PyTorch
names at call time, so a class that does not exist yet simply matches nothing.
"""

from math import prod

# ---- pure formulas -------------------------------------------------------------------------


def _pair(value):
    return (value, value) if isinstance(value, int) else tuple(value)


def conv2d_params(in_channels, out_channels, kernel_size, groups=1, bias=True):
    """OC * (C / G) * KH * KW weights, plus OC biases.

    The seeds' `(C_in * K * K + 1) * C_out` is the groups=1, bias=True case:
    conv2d_params(1, 1, 5) == 26.
    """
    kh, kw = _pair(kernel_size)
    return out_channels * (in_channels // groups) * kh * kw + (out_channels if bias else 0)


def conv2d_macs(in_channels, out_channels, kernel_size, output_size, groups=1, batch_size=1):
    """N * OC * OH * OW * (C / G) * KH * KW: every output value is one dot product.

    output_size is (OH, OW). Depthwise (groups == C) gives N * C * OH * OW * KH * KW.
    """
    kh, kw = _pair(kernel_size)
    oh, ow = _pair(output_size)
    return batch_size * out_channels * oh * ow * (in_channels // groups) * kh * kw


def conv_transpose2d_params(in_channels, out_channels, kernel_size, groups=1, bias=True):
    """C * (OC / G) * KH * KW weights (weight shape (C, OC/G, KH, KW)), plus OC biases."""
    kh, kw = _pair(kernel_size)
    return in_channels * (out_channels // groups) * kh * kw + (out_channels if bias else 0)


def conv_transpose2d_macs(in_channels, out_channels, kernel_size, input_size, groups=1,
                          batch_size=1):
    """N * C * H * W * (OC / G) * KH * KW: every input value is scattered through the kernel.

    input_size is (H, W) of the layer's input. Multiply-adds that land in the cropped
    `padding` border are counted too: they are computed (the convention of torchvision's and
    fvcore's counters).
    """
    kh, kw = _pair(kernel_size)
    h, w = _pair(input_size)
    return batch_size * in_channels * h * w * (out_channels // groups) * kh * kw


def conv1d_macs(in_channels, out_channels, kernel_size, output_length, groups=1, batch_size=1):
    """N * OC * OL * (C / G) * K."""
    return batch_size * out_channels * output_length * (in_channels // groups) * kernel_size


def linear_params(in_features, out_features, bias=True):
    """in * out weights plus out biases: linear_params(4320, 100) == 432100."""
    return in_features * out_features + (out_features if bias else 0)


def linear_macs(in_features, out_features, rows=1):
    """rows * in * out, where rows = batch (times any extra leading dims)."""
    return rows * in_features * out_features


def batch_norm_params(num_features, affine=True):
    """gamma and beta per channel: 2 * C (the running mean/var are buffers, not parameters)."""
    return 2 * num_features if affine else 0


def flops_from_macs(macs):
    """FLOPs = 2 x MACs (one multiply plus one add)."""
    return 2 * macs


# ---- layer types ---------------------------------------------------------------------------

# PyTorch names of the layer types counted as 0 MACs, by family (see the module docstring).
ZERO_MAC_FAMILIES = {
    "pooling": ("MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d", "AdaptiveAvgPool1d",
                "AdaptiveAvgPool2d", "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "LPPool1d",
                "LPPool2d", "MaxUnpool2d", "FractionalMaxPool2d"),
    "normalization": ("BatchNorm1d", "BatchNorm2d", "SyncBatchNorm", "LayerNorm", "GroupNorm",
                      "InstanceNorm1d", "InstanceNorm2d", "LocalResponseNorm"),
    "activation": ("ReLU", "ReLU6", "LeakyReLU", "PReLU", "RReLU", "ELU", "SELU", "CELU",
                   "GELU", "SiLU", "Mish", "Sigmoid", "Tanh", "Hardtanh", "Hardswish",
                   "Hardsigmoid", "Softplus", "Softsign", "Softmax", "Softmax2d", "LogSoftmax",
                   "Softmin", "Threshold", "Tanhshrink", "Hardshrink", "Softshrink",
                   "LogSigmoid", "GLU"),
    "dropout": ("Dropout", "Dropout1d", "Dropout2d", "AlphaDropout", "FeatureAlphaDropout"),
    "reshape": ("Flatten", "Unflatten", "Identity", "ZeroPad2d", "ConstantPad2d",
                "ReflectionPad2d", "ReplicationPad2d", "PixelShuffle", "PixelUnshuffle",
                "ChannelShuffle"),
    "resampling": ("Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d"),
}

MAC_LAYERS = ("Conv1d", "Conv2d", "ConvTranspose2d", "Linear")


def nn_classes(names):
    """The juanji.nn classes among `names` that exist right now (missing ones are skipped)."""
    import juanji.nn as nn

    found = (getattr(nn, name, None) for name in names)
    return tuple(cls for cls in found if isinstance(cls, type))


def nn_class(name):
    """juanji.nn.<name> if it exists, else None."""
    classes = nn_classes((name,))
    return classes[0] if classes else None


def zero_mac_family(module):
    """The family name ('pooling', 'activation', ...) if `module` is counted as 0 MACs."""
    for family, names in ZERO_MAC_FAMILIES.items():
        classes = nn_classes(names)
        if classes and isinstance(module, classes):
            return family
    return None


def _first_tensor(value):
    """The first Tensor in a layer's input or output (a Tensor, tuple, list or dict)."""
    from juanji.tensor import Tensor

    if isinstance(value, Tensor):
        return value
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (tuple, list)):
        for item in value:
            found = _first_tensor(item)
            if found is not None:
                return found
    return None


def layer_macs(module, inputs, output):
    """(macs, kind) for one call of a layer, from its attributes and the traced shapes.

    kind is 'mac' (counted), a zero-MAC family name ('pooling', 'activation', ...) with
    macs == 0, or 'unknown' with macs None (a type this counter does not know). Containers
    are not handled here; the caller sums their children.
    """
    x, y = _first_tensor(inputs), _first_tensor(output)
    conv2d, convt = nn_class("Conv2d"), nn_class("ConvTranspose2d")
    linear, conv1d = nn_class("Linear"), nn_class("Conv1d")
    if conv2d is not None and isinstance(module, conv2d) and y is not None:
        batch = y.shape[0] if y.ndim == 4 else 1
        return conv2d_macs(module.in_channels, module.out_channels, module.kernel_size,
                           y.shape[-2:], module.groups, batch), "mac"
    if convt is not None and isinstance(module, convt) and x is not None:
        batch = x.shape[0] if x.ndim == 4 else 1
        return conv_transpose2d_macs(module.in_channels, module.out_channels,
                                     module.kernel_size, x.shape[-2:], module.groups,
                                     batch), "mac"
    if linear is not None and isinstance(module, linear) and y is not None:
        rows = prod(y.shape[:-1]) if y.ndim > 1 else 1
        return linear_macs(module.in_features, module.out_features, rows), "mac"
    if conv1d is not None and isinstance(module, conv1d) and y is not None:
        batch = y.shape[0] if y.ndim == 3 else 1
        kernel = module.kernel_size[0] if isinstance(module.kernel_size, tuple) else \
            module.kernel_size
        return conv1d_macs(module.in_channels, module.out_channels, kernel, y.shape[-1],
                           module.groups, batch), "mac"
    family = zero_mac_family(module)
    if family is not None:
        return 0, family
    return None, "unknown"
