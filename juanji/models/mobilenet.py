"""MobileNets: depthwise-separable networks for small devices.

- `mobilenet_v1`: Howard et al., 2017, 'MobileNets: Efficient Convolutional Neural Networks for
  Mobile Vision Applications' (Table 1): a 3x3/2 conv, then 13 depthwise 3x3 + pointwise 1x1
  pairs, each followed by BN and ReLU. torchvision has no v1; keys are features.{i}.{0,1} for
  the stem and features.{i}.{dw,pw}.{0,1} for the pairs, classifier.
- `mobilenet_v2`: Sandler et al., 2018, 'MobileNetV2: Inverted Residuals and Linear Bottlenecks'
  (Table 2), in torchvision's layout (keys features.{i}.conv.{j}..., classifier.1).
- `mobilenet_v3_large` / `mobilenet_v3_small`: Howard et al., 2019, 'Searching for MobileNetV3'
  (Tables 1 and 2), in torchvision's layout (keys features.{i}.block.{j}..., classifier.{0,3};
  BN eps=0.001, momentum=0.01; SE gates with hard-sigmoid).

All take `width_mult` (channels scaled and rounded to multiples of 8). Input 3x224x224; any
size >= 1 runs (global average pooling before the classifier).
"""

from juanji import nn
from juanji.models.initialization import he_fan_out_init_
from juanji.models.validation import check_model_args


def make_divisible(value, divisor=8, min_value=None):
    """Round `value` to the nearest multiple of `divisor`, never below min_value (default
    divisor) and never more than 10% below `value` (the MobileNet rounding rule)."""
    min_value = divisor if min_value is None else min_value
    new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:
        new_value += divisor
    return new_value


class ConvNormActivation(nn.Sequential):
    """conv (no bias, 'same' padding for odd kernels) -> norm -> activation, as keys 0, 1, 2.

    activation=None leaves it out (the linear bottleneck projections).
    """

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, groups=1,
                 norm_layer=None, activation=nn.ReLU, dilation=1):
        norm_layer = nn.BatchNorm2d if norm_layer is None else norm_layer
        padding = (kernel_size - 1) // 2 * dilation
        layers = [
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation=dilation,
                      groups=groups, bias=False),
            norm_layer(out_channels),
        ]
        if activation is not None:
            layers.append(activation())
        super().__init__(*layers)
        self.out_channels = out_channels


def _check_width(width_mult):
    if not isinstance(width_mult, (int, float)) or width_mult <= 0:
        raise ValueError(f"width_mult must be a positive number; got {width_mult!r}")


# ---- MobileNet v1 -----------------------------------------------------------------------------

# (output channels, stride) of each depthwise-separable pair: the paper's Table 1.
MOBILENET_V1_CFG = [
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1),
]


class DepthwiseSeparable(nn.Module):
    """3x3 depthwise conv-BN-ReLU then 1x1 pointwise conv-BN-ReLU; keys dw.*, pw.*.

    (N, in_channels, H, W) -> (N, out_channels, H / stride, W / stride).
    """

    def __init__(self, in_channels, out_channels, stride):
        super().__init__()
        self.dw = ConvNormActivation(in_channels, in_channels, 3, stride, groups=in_channels)
        self.pw = ConvNormActivation(in_channels, out_channels, 1)

    def forward(self, x):
        return self.pw(self.dw(x))


class MobileNetV1(nn.Module):
    """(N, in_channels, H, W) -> (N, num_classes); 4,231,976 parameters at width 1, 1000
    classes (the paper's 4.2M)."""

    def __init__(self, num_classes=1000, in_channels=3, width_mult=1.0, dropout=0.0):
        super().__init__()
        channels = make_divisible(32 * width_mult)
        layers = [ConvNormActivation(in_channels, channels, 3, stride=2)]
        for out, stride in MOBILENET_V1_CFG:
            out = make_divisible(out * width_mult)
            layers.append(DepthwiseSeparable(channels, out, stride))
            channels = out
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(channels, num_classes))
        he_fan_out_init_(self)

    def forward(self, x):
        x = self.avgpool(self.features(x)).flatten(1)  # (N, 1024 * width_mult)
        return self.classifier(x)


def mobilenet_v1(num_classes=1000, in_channels=3, width_mult=1.0, dropout=0.0):
    """MobileNet v1 with width multiplier alpha = width_mult; input (N, C, 224, 224)."""
    check_model_args(num_classes, in_channels)
    _check_width(width_mult)
    return MobileNetV1(num_classes, in_channels, width_mult, dropout)


# ---- MobileNet v2 -----------------------------------------------------------------------------

# t (expansion), c (output channels), n (repeats), s (first stride): the paper's Table 2.
MOBILENET_V2_CFG = [
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
    (6, 160, 3, 2), (6, 320, 1, 1),
]


class InvertedResidual(nn.Module):
    """Expand 1x1 (when t > 1) -> depthwise 3x3 -> linear 1x1 projection (+ x when shapes
    match); ReLU6 activations. (N, inp, H, W) -> (N, oup, H / stride, W / stride)."""

    def __init__(self, inp, oup, stride, expand_ratio):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2; got {stride!r}")
        hidden = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers = []
        if expand_ratio != 1:
            layers.append(ConvNormActivation(inp, hidden, 1, activation=nn.ReLU6))
        layers += [
            ConvNormActivation(hidden, hidden, 3, stride, groups=hidden, activation=nn.ReLU6),
            nn.Conv2d(hidden, oup, 1, bias=False),
            nn.BatchNorm2d(oup),
        ]
        self.conv = nn.Sequential(*layers)
        self.out_channels = oup

    def forward(self, x):
        out = self.conv(x)
        return x + out if self.use_res_connect else out


class MobileNetV2(nn.Module):
    """(N, in_channels, H, W) -> (N, num_classes); 3,504,872 parameters at width 1, 1000
    classes. Keys: features.0 (stem), features.1-17 (bottlenecks), features.18, classifier.1."""

    def __init__(self, num_classes=1000, in_channels=3, width_mult=1.0, round_nearest=8,
                 dropout=0.2, settings=None):
        super().__init__()
        settings = MOBILENET_V2_CFG if settings is None else settings
        channels = make_divisible(32 * width_mult, round_nearest)
        self.last_channel = make_divisible(1280 * max(1.0, width_mult), round_nearest)
        layers = [ConvNormActivation(in_channels, channels, 3, stride=2, activation=nn.ReLU6)]
        for t, c, n, s in settings:
            out = make_divisible(c * width_mult, round_nearest)
            for i in range(n):
                layers.append(InvertedResidual(channels, out, s if i == 0 else 1, t))
                channels = out
        layers.append(ConvNormActivation(channels, self.last_channel, 1, activation=nn.ReLU6))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Sequential(nn.Dropout(p=dropout),
                                        nn.Linear(self.last_channel, num_classes))
        he_fan_out_init_(self)

    def forward(self, x):
        x = self.avgpool(self.features(x)).flatten(1)  # (N, last_channel)
        return self.classifier(x)  # (N, num_classes)


def mobilenet_v2(num_classes=1000, in_channels=3, width_mult=1.0, dropout=0.2, settings=None):
    """MobileNetV2; input (N, C, 224, 224). `settings` replaces the (t, c, n, s) table."""
    check_model_args(num_classes, in_channels)
    _check_width(width_mult)
    return MobileNetV2(num_classes, in_channels, width_mult, dropout=dropout, settings=settings)


# ---- MobileNet v3 -----------------------------------------------------------------------------

# kernel, expanded channels, output channels, SE, activation ("RE" ReLU, "HS" hard-swish),
# stride; input channels are the previous row's output (16 after the stem).
MOBILENET_V3_CFGS = {
    "large": ([
        (3, 16, 16, False, "RE", 1), (3, 64, 24, False, "RE", 2), (3, 72, 24, False, "RE", 1),
        (5, 72, 40, True, "RE", 2), (5, 120, 40, True, "RE", 1), (5, 120, 40, True, "RE", 1),
        (3, 240, 80, False, "HS", 2), (3, 200, 80, False, "HS", 1),
        (3, 184, 80, False, "HS", 1), (3, 184, 80, False, "HS", 1),
        (3, 480, 112, True, "HS", 1), (3, 672, 112, True, "HS", 1),
        (5, 672, 160, True, "HS", 2), (5, 960, 160, True, "HS", 1),
        (5, 960, 160, True, "HS", 1),
    ], 1280),
    "small": ([
        (3, 16, 16, True, "RE", 2), (3, 72, 24, False, "RE", 2), (3, 88, 24, False, "RE", 1),
        (5, 96, 40, True, "HS", 2), (5, 240, 40, True, "HS", 1), (5, 240, 40, True, "HS", 1),
        (5, 120, 48, True, "HS", 1), (5, 144, 48, True, "HS", 1),
        (5, 288, 96, True, "HS", 2), (5, 576, 96, True, "HS", 1), (5, 576, 96, True, "HS", 1),
    ], 1024),
}


def _bn_v3(channels):
    """MobileNetV3's BatchNorm: eps 0.001, momentum 0.01."""
    return nn.BatchNorm2d(channels, eps=0.001, momentum=0.01)


class InvertedResidualV3(nn.Module):
    """Expand 1x1 (when widened) -> depthwise kxk -> SE (optional) -> linear 1x1 (+ x).

    (N, inp, H, W) -> (N, out, H / stride, W / stride); keys block.{j}.
    """

    def __init__(self, inp, kernel, expanded, out, use_se, activation, stride):
        super().__init__()
        act = nn.Hardswish if activation == "HS" else nn.ReLU
        self.use_res_connect = stride == 1 and inp == out
        layers = []
        if expanded != inp:
            layers.append(ConvNormActivation(inp, expanded, 1, norm_layer=_bn_v3, activation=act))
        layers.append(ConvNormActivation(expanded, expanded, kernel, stride, groups=expanded,
                                         norm_layer=_bn_v3, activation=act))
        if use_se:
            layers.append(nn.SqueezeExcitation(expanded, make_divisible(expanded // 4, 8),
                                               scale_activation=nn.Hardsigmoid))
        layers.append(ConvNormActivation(expanded, out, 1, norm_layer=_bn_v3, activation=None))
        self.block = nn.Sequential(*layers)
        self.out_channels = out

    def forward(self, x):
        out = self.block(x)
        return x + out if self.use_res_connect else out


class MobileNetV3(nn.Module):
    """(N, in_channels, H, W) -> (N, num_classes). Keys: features.{i}, classifier.{0,3}."""

    def __init__(self, mode="large", num_classes=1000, in_channels=3, width_mult=1.0,
                 dropout=0.2):
        super().__init__()
        if mode not in MOBILENET_V3_CFGS:
            raise ValueError(f"mode must be one of {list(MOBILENET_V3_CFGS)}; got {mode!r}")
        cfg, last_channel = MOBILENET_V3_CFGS[mode]
        channels = make_divisible(16 * width_mult)
        layers = [ConvNormActivation(in_channels, channels, 3, stride=2, norm_layer=_bn_v3,
                                     activation=nn.Hardswish)]
        for kernel, expanded, out, use_se, activation, stride in cfg:
            expanded = make_divisible(expanded * width_mult)
            out = make_divisible(out * width_mult)
            layers.append(InvertedResidualV3(channels, kernel, expanded, out, use_se, activation,
                                             stride))
            channels = out
        last_conv = 6 * channels
        layers.append(ConvNormActivation(channels, last_conv, 1, norm_layer=_bn_v3,
                                         activation=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        last_channel = make_divisible(last_channel * width_mult)
        self.classifier = nn.Sequential(
            nn.Linear(last_conv, last_channel),
            nn.Hardswish(),
            nn.Dropout(p=dropout),
            nn.Linear(last_channel, num_classes),
        )
        he_fan_out_init_(self)

    def forward(self, x):
        x = self.avgpool(self.features(x)).flatten(1)  # (N, 6 * last block channels)
        return self.classifier(x)  # (N, num_classes)


def mobilenet_v3_large(num_classes=1000, in_channels=3, width_mult=1.0, dropout=0.2):
    """MobileNetV3-Large (5,483,032 parameters at 1000 classes); input (N, C, 224, 224)."""
    check_model_args(num_classes, in_channels)
    _check_width(width_mult)
    return MobileNetV3("large", num_classes, in_channels, width_mult, dropout)


def mobilenet_v3_small(num_classes=1000, in_channels=3, width_mult=1.0, dropout=0.2):
    """MobileNetV3-Small (2,542,856 parameters at 1000 classes); input (N, C, 224, 224)."""
    check_model_args(num_classes, in_channels)
    _check_width(width_mult)
    return MobileNetV3("small", num_classes, in_channels, width_mult, dropout)


FACTORIES = {
    "mobilenet_v1": mobilenet_v1, "mobilenet_v2": mobilenet_v2,
    "mobilenet_v3_large": mobilenet_v3_large, "mobilenet_v3_small": mobilenet_v3_small,
}
DEFAULT_INPUT = {name: (3, 224, 224) for name in FACTORIES}
