"""SqueezeNet (Iandola et al., 2016, 'SqueezeNet: AlexNet-level accuracy with 50x fewer
parameters and <0.5MB model size'), versions 1.0 (the paper's Table 1) and 1.1 (fewer
multiply-adds, same accuracy), in torchvision's layout so its checkpoints load with strict=True.

Fire module: squeeze 1x1 (s1x1) -> ReLU -> [expand 1x1 (e1x1) | expand 3x3 (e3x3)] -> ReLU,
concatenated. The classifier is a 1x1 conv to num_classes, ReLU and global average pooling.
Input 3x224x224 (>= 21x21 for 1.0, >= 17x17 for 1.1).

state_dict keys: features.{i}.weight/bias (stem), features.{i}.squeeze / expand1x1 / expand3x3,
classifier.1.weight/bias.
"""

import juanji
from juanji import nn
from juanji.models.validation import check_model_args

# Each entry: ("conv", out, kernel, stride) | ("pool",) | (s1x1, e1x1, e3x3) for a Fire module.
SQUEEZENET_CFGS = {
    "1_0": [("conv", 96, 7, 2), ("pool",), (16, 64, 64), (16, 64, 64), (32, 128, 128),
            ("pool",), (32, 128, 128), (48, 192, 192), (48, 192, 192), (64, 256, 256),
            ("pool",), (64, 256, 256)],
    "1_1": [("conv", 64, 3, 2), ("pool",), (16, 64, 64), (16, 64, 64), ("pool",),
            (32, 128, 128), (32, 128, 128), ("pool",), (48, 192, 192), (48, 192, 192),
            (64, 256, 256), (64, 256, 256)],
}


class Fire(nn.Module):
    """(N, inplanes, H, W) -> (N, expand1x1_planes + expand3x3_planes, H, W)."""

    def __init__(self, inplanes, squeeze_planes, expand1x1_planes, expand3x3_planes):
        super().__init__()
        self.squeeze = nn.Conv2d(inplanes, squeeze_planes, kernel_size=1)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze_planes, expand1x1_planes, kernel_size=1)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(squeeze_planes, expand3x3_planes, kernel_size=3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=True)

    def forward(self, x):
        x = self.squeeze_activation(self.squeeze(x))
        return juanji.cat([self.expand1x1_activation(self.expand1x1(x)),
                           self.expand3x3_activation(self.expand3x3(x))], 1)


def make_features(cfg, in_channels=3):
    """The trunk for one configuration; returns (Sequential, output channels)."""
    layers, channels = [], in_channels
    for item in cfg:
        if item[0] == "conv":
            _, out, kernel, stride = item
            layers += [nn.Conv2d(channels, out, kernel_size=kernel, stride=stride),
                       nn.ReLU(inplace=True)]
            channels = out
        elif item[0] == "pool":
            layers.append(nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True))
        else:
            layers.append(Fire(channels, *item))
            channels = item[1] + item[2]
    return nn.Sequential(*layers), channels


class SqueezeNet(nn.Module):
    """features -> dropout -> 1x1 conv (num_classes) -> ReLU -> global average pool.
    (N, in_channels, H, W) -> (N, num_classes)."""

    def __init__(self, version="1_0", num_classes=1000, in_channels=3, dropout=0.5):
        super().__init__()
        if version not in SQUEEZENET_CFGS:
            raise ValueError(f"version must be one of {list(SQUEEZENET_CFGS)}; got {version!r}")
        self.num_classes = num_classes
        self.features, channels = make_features(SQUEEZENET_CFGS[version], in_channels)
        final_conv = nn.Conv2d(channels, num_classes, kernel_size=1)
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout),
            final_conv,
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d((1, 1)),
        )
        for m in self.modules():  # torchvision's init: He-uniform convs, N(0, 0.01) final conv
            if isinstance(m, nn.Conv2d):
                if m is final_conv:
                    nn.init.normal_(m.weight, 0.0, 0.01)
                else:
                    nn.init.kaiming_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.classifier(self.features(x))  # (N, num_classes, 1, 1)
        return x.flatten(1)  # (N, num_classes)


def squeezenet1_0(num_classes=1000, in_channels=3, dropout=0.5):
    """SqueezeNet 1.0 (1,248,424 parameters at 1000 classes); input (N, C, 224, 224)."""
    check_model_args(num_classes, in_channels)
    return SqueezeNet("1_0", num_classes, in_channels, dropout)


def squeezenet1_1(num_classes=1000, in_channels=3, dropout=0.5):
    """SqueezeNet 1.1 (1,235,496 parameters at 1000 classes); input (N, C, 224, 224)."""
    check_model_args(num_classes, in_channels)
    return SqueezeNet("1_1", num_classes, in_channels, dropout)


FACTORIES = {"squeezenet1_0": squeezenet1_0, "squeezenet1_1": squeezenet1_1}
DEFAULT_INPUT = {name: (3, 224, 224) for name in FACTORIES}
