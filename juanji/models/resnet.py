"""ResNet (He, Zhang, Ren & Sun, 2016, 'Deep Residual Learning for Image Recognition') and its
widenings: ResNeXt (Xie et al., 2017) and Wide ResNet (Zagoruyko & Komodakis, 2016).

One `ResNet` class covers every variant; the tables below say which:

- ImageNet models (resnet18 ... resnet152, resnext50_32x4d, wide_resnet50_2) follow
  torchvision (stride on the 3x3 conv of the bottleneck, "v1.5"), so its checkpoints load
  with strict=True: keys conv1, bn1, layer{1..4}.{j}.conv{1,2,3}/bn{1,2,3},
  layer{i}.0.downsample.{0,1}, fc. Input 3x224x224 (any size >= 1 runs).
- CIFAR models (resnet20/32/44/56/110, the paper's Section 4.2): `cifar_stem=True` gives a 3x3
  stride-1 stem and no max-pool, three stages of 16, 32, 64 channels with 6n+2 layers, and
  shortcut option A (parameter-free: stride-2 subsampling plus zero channels). Input 3x32x32.
- `se_reduction` adds a squeeze-and-excitation gate to every block (see senet.py).
"""

import juanji
from juanji import nn
from juanji.backend import xp_of
from juanji.models.validation import check_model_args
from juanji.nn.layers.chain import add_relu, conv_bn_relu

# ImageNet depths: block type and blocks per stage (the paper's Table 1).
IMAGENET_LAYERS = {
    18: ("basic", [2, 2, 2, 2]),
    34: ("basic", [3, 4, 6, 3]),
    50: ("bottleneck", [3, 4, 6, 3]),
    101: ("bottleneck", [3, 4, 23, 3]),
    152: ("bottleneck", [3, 8, 36, 3]),
}
IMAGENET_WIDTHS = (64, 128, 256, 512)

# CIFAR depths 6n+2: n basic blocks per stage, three stages of 16, 32, 64 channels.
CIFAR_LAYERS = {20: 3, 32: 5, 44: 7, 56: 9, 110: 18}
CIFAR_WIDTHS = (16, 32, 64)


def conv3x3(in_planes, out_planes, stride=1, groups=1):
    """3x3 convolution with padding 1 and no bias (a BatchNorm follows)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1,
                     groups=groups, bias=False)


def conv1x1(in_planes, out_planes, stride=1):
    """1x1 convolution without bias."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class PadShortcut(nn.Module):
    """The paper's shortcut option A: subsample by `stride`, then append zero channels.

    (N, C, H, W) -> (N, C + extra_channels, ceil(H / stride), ceil(W / stride)); no parameters.
    """

    def __init__(self, extra_channels, stride):
        super().__init__()
        self.extra_channels, self.stride = extra_channels, stride

    def forward(self, x):
        x = x[:, :, :: self.stride, :: self.stride]  # (N, C, OH, OW)
        n, _, h, w = x.shape
        zeros = juanji.Tensor(xp_of(x.data).zeros((n, self.extra_channels, h, w), dtype=x.dtype))
        return juanji.cat([x, zeros], 1)  # (N, C + extra_channels, OH, OW)

    def extra_repr(self):
        return f"extra_channels={self.extra_channels}, stride={self.stride}"


class BasicBlock(nn.Module):
    """Two 3x3 convs: x -> conv-bn-relu -> conv-bn (-> SE) -> + shortcut(x) -> relu.

    (N, inplanes, H, W) -> (N, planes, H / stride, W / stride).
    """

    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64,
                 se_reduction=None):
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ValueError(f"BasicBlock supports only groups=1 and base_width=64; got "
                             f"groups={groups}, base_width={base_width}")
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.se = _se(planes, se_reduction)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        # relu(bn(conv(x))) in fewer passes, the same bits (see nn.layers.chain)
        out = conv_bn_relu(self.conv1, self.bn1, self.relu, x)
        out = conv_bn_relu(self.conv2, self.bn2, None, out)
        if self.se is not None:
            out = self.se(out)
        return add_relu(out, identity, self.relu)  # relu(out + identity), one op


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided, grouped), 1x1 expand by 4 (-> SE), + shortcut, relu.

    width = planes * base_width / 64 * groups (ResNeXt / Wide ResNet).
    (N, inplanes, H, W) -> (N, 4 * planes, H / stride, W / stride).
    """

    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64,
                 se_reduction=None):
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride, groups)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.se = _se(planes * self.expansion, se_reduction)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = conv_bn_relu(self.conv1, self.bn1, self.relu, x)
        out = conv_bn_relu(self.conv2, self.bn2, self.relu, out)
        out = conv_bn_relu(self.conv3, self.bn3, None, out)
        if self.se is not None:
            out = self.se(out)
        return add_relu(out, identity, self.relu)  # relu(out + identity), one op


def _se(channels, reduction):
    """A squeeze-and-excitation gate with channels // reduction hidden units, or None."""
    if reduction is None:
        return None
    return nn.SqueezeExcitation(channels, max(1, channels // reduction))


BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}


class ResNet(nn.Module):
    """Stem -> stages layer1..layerK -> global average pool -> fc.

    block: "basic" or "bottleneck"; layers: blocks per stage; widths: `planes` per stage (the
    first stage runs at stride 1, the others halve the resolution). cifar_stem: 3x3/1 stem conv
    without max-pool instead of 7x7/2 + 3x3/2 max-pool. shortcut: "projection" (1x1 conv + BN
    where the shape changes, option B) or "pad" (option A, parameter-free).
    (N, in_channels, H, W) -> (N, num_classes).
    """

    def __init__(self, block, layers, num_classes=1000, in_channels=3, widths=IMAGENET_WIDTHS,
                 groups=1, width_per_group=64, cifar_stem=False, shortcut="projection",
                 se_reduction=None, zero_init_residual=False):
        super().__init__()
        check_model_args(num_classes, in_channels)
        if block not in BLOCKS:
            raise ValueError(f"block must be one of {list(BLOCKS)}; got {block!r}")
        if len(layers) != len(widths) or not all(int(n) >= 1 for n in layers):
            raise ValueError(f"layers must give one positive block count per stage width; got "
                             f"layers={list(layers)}, widths={list(widths)}")
        if shortcut not in ("projection", "pad"):
            raise ValueError(f"shortcut must be 'projection' or 'pad'; got {shortcut!r}")
        block_cls = BLOCKS[block]
        self.groups, self.base_width = groups, width_per_group
        self.shortcut, self.se_reduction = shortcut, se_reduction
        self.inplanes = widths[0]
        if cifar_stem:
            self.conv1 = conv3x3(in_channels, self.inplanes)
        else:
            self.conv1 = nn.Conv2d(in_channels, self.inplanes, kernel_size=7, stride=2, padding=3,
                                   bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity() if cifar_stem else nn.MaxPool2d(3, stride=2, padding=1)
        self.stage_names = []
        for i, (planes, blocks) in enumerate(zip(widths, layers)):
            name = f"layer{i + 1}"
            setattr(self, name, self._make_layer(block_cls, planes, blocks, 1 if i == 0 else 2))
            self.stage_names.append(name)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[-1] * block_cls.expansion, num_classes)
        self._init_weights(zero_init_residual)

    def _make_layer(self, block_cls, planes, blocks, stride):
        out_planes = planes * block_cls.expansion
        downsample = None
        if stride != 1 or self.inplanes != out_planes:
            if self.shortcut == "pad":
                downsample = PadShortcut(out_planes - self.inplanes, stride)
            else:
                downsample = nn.Sequential(conv1x1(self.inplanes, out_planes, stride),
                                           nn.BatchNorm2d(out_planes))
        layers = [block_cls(self.inplanes, planes, stride, downsample, self.groups,
                            self.base_width, self.se_reduction)]
        self.inplanes = out_planes
        for _ in range(1, blocks):
            layers.append(block_cls(self.inplanes, planes, groups=self.groups,
                                    base_width=self.base_width, se_reduction=self.se_reduction))
        return nn.Sequential(*layers)

    def _init_weights(self, zero_init_residual):
        """He-normal (fan_out) convolutions, BN at 1/0; optionally zero each block's last BN."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:  # Goyal et al., 2017: each residual branch starts as zero
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.zeros_(m.bn3.weight)
                elif isinstance(m, BasicBlock):
                    nn.init.zeros_(m.bn2.weight)

    def forward(self, x):
        x = self.maxpool(conv_bn_relu(self.conv1, self.bn1, self.relu, x))
        for name in self.stage_names:
            x = getattr(self, name)(x)
        x = self.avgpool(x)  # (N, C, 1, 1)
        return self.fc(x.flatten(1))  # (N, num_classes)


def _imagenet_resnet(depth, num_classes, in_channels, **kwargs):
    block, layers = IMAGENET_LAYERS[depth]
    return ResNet(block, layers, num_classes, in_channels, **kwargs)


def resnet18(num_classes=1000, in_channels=3, zero_init_residual=False):
    """ResNet-18 (11,689,512 parameters at 1000 classes); input (N, C, 224, 224)."""
    return _imagenet_resnet(18, num_classes, in_channels, zero_init_residual=zero_init_residual)


def resnet34(num_classes=1000, in_channels=3, zero_init_residual=False):
    """ResNet-34 (21,797,672 parameters); input (N, C, 224, 224)."""
    return _imagenet_resnet(34, num_classes, in_channels, zero_init_residual=zero_init_residual)


def resnet50(num_classes=1000, in_channels=3, zero_init_residual=False):
    """ResNet-50 (25,557,032 parameters); input (N, C, 224, 224)."""
    return _imagenet_resnet(50, num_classes, in_channels, zero_init_residual=zero_init_residual)


def resnet101(num_classes=1000, in_channels=3, zero_init_residual=False):
    """ResNet-101 (44,549,160 parameters); input (N, C, 224, 224)."""
    return _imagenet_resnet(101, num_classes, in_channels, zero_init_residual=zero_init_residual)


def resnet152(num_classes=1000, in_channels=3, zero_init_residual=False):
    """ResNet-152 (60,192,808 parameters); input (N, C, 224, 224)."""
    return _imagenet_resnet(152, num_classes, in_channels, zero_init_residual=zero_init_residual)


def resnext50_32x4d(num_classes=1000, in_channels=3, zero_init_residual=False):
    """ResNeXt-50 32x4d: 32 groups of width 4 in the 3x3 convs (25,028,904 parameters)."""
    return _imagenet_resnet(50, num_classes, in_channels, groups=32, width_per_group=4,
                            zero_init_residual=zero_init_residual)


def wide_resnet50_2(num_classes=1000, in_channels=3, zero_init_residual=False):
    """Wide ResNet-50-2: bottleneck width doubled (68,883,240 parameters)."""
    return _imagenet_resnet(50, num_classes, in_channels, width_per_group=128,
                            zero_init_residual=zero_init_residual)


def cifar_resnet(depth, num_classes=10, in_channels=3, shortcut="pad"):
    """The paper's CIFAR-10 ResNet of `depth` = 6n+2 layers; input (N, C, 32, 32).

    shortcut="pad" is the paper's option A (0.27M parameters for depth 20); "projection" uses
    1x1 convolutions where the shape changes.
    """
    if depth not in CIFAR_LAYERS:
        raise ValueError(f"depth must be one of {sorted(CIFAR_LAYERS)} for a CIFAR ResNet; "
                         f"got {depth!r}")
    n = CIFAR_LAYERS[depth]
    return ResNet("basic", [n, n, n], num_classes, in_channels, widths=CIFAR_WIDTHS,
                  cifar_stem=True, shortcut=shortcut)


def resnet20(num_classes=10, in_channels=3, shortcut="pad"):
    """CIFAR ResNet-20 (n=3); input (N, C, 32, 32)."""
    return cifar_resnet(20, num_classes, in_channels, shortcut)


def resnet32(num_classes=10, in_channels=3, shortcut="pad"):
    """CIFAR ResNet-32 (n=5); input (N, C, 32, 32)."""
    return cifar_resnet(32, num_classes, in_channels, shortcut)


def resnet44(num_classes=10, in_channels=3, shortcut="pad"):
    """CIFAR ResNet-44 (n=7); input (N, C, 32, 32)."""
    return cifar_resnet(44, num_classes, in_channels, shortcut)


def resnet56(num_classes=10, in_channels=3, shortcut="pad"):
    """CIFAR ResNet-56 (n=9); input (N, C, 32, 32)."""
    return cifar_resnet(56, num_classes, in_channels, shortcut)


def resnet110(num_classes=10, in_channels=3, shortcut="pad"):
    """CIFAR ResNet-110 (n=18); input (N, C, 32, 32)."""
    return cifar_resnet(110, num_classes, in_channels, shortcut)


IMAGENET_FACTORIES = {
    "resnet18": resnet18, "resnet34": resnet34, "resnet50": resnet50, "resnet101": resnet101,
    "resnet152": resnet152, "resnext50_32x4d": resnext50_32x4d,
    "wide_resnet50_2": wide_resnet50_2,
}
CIFAR_FACTORIES = {
    "resnet20": resnet20, "resnet32": resnet32, "resnet44": resnet44, "resnet56": resnet56,
    "resnet110": resnet110,
}
FACTORIES = {**IMAGENET_FACTORIES, **CIFAR_FACTORIES}
DEFAULT_INPUT = {
    **{name: (3, 224, 224) for name in IMAGENET_FACTORIES},
    **{name: (3, 32, 32) for name in CIFAR_FACTORIES},
}
