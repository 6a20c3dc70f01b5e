"""VGG (Simonyan & Zisserman, 2015, 'Very Deep Convolutional Networks for Large-Scale Image
Recognition'), in torchvision's layout so its checkpoints load with strict=True.

Configurations A, B, D, E of the paper's Table 1 are VGG-11/13/16/19: 3x3 convolutions (padding 1)
whose widths are listed in `VGG_CFGS`, "M" a 2x2 max-pool. The `_bn` variants put a BatchNorm2d
after every convolution (not in the paper; torchvision's). An AdaptiveAvgPool2d((7, 7)) sits
between the features and the classifier, so any input of at least 32x32 works; the paper's
input is 3x224x224.

state_dict keys: features.{i}.weight/bias (i counts every layer, ReLU and pool included),
classifier.{0,3,6}.weight/bias.
"""

from juanji import nn
from juanji.models.initialization import he_fan_out_init_
from juanji.models.validation import check_model_args

# Table 1 of the paper: output channels of each 3x3 conv, "M" = 2x2 max-pool with stride 2.
VGG_CFGS = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
          512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
          512, 512, 512, 512, "M"],
}

_DEPTH_TO_CFG = {11: "A", 13: "B", 16: "D", 19: "E"}


def make_layers(cfg, in_channels=3, batch_norm=False):
    """The convolutional trunk for one configuration: (N, C, H, W) -> (N, 512, H/32, W/32)."""
    layers = []
    channels = in_channels
    for item in cfg:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        layers.append(nn.Conv2d(channels, item, kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(item))
        layers.append(nn.ReLU(inplace=True))
        channels = item
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """features -> AdaptiveAvgPool2d(7x7) -> classifier (4096-4096-num_classes, dropout).

    (N, in_channels, H, W) with H, W >= 32 -> (N, num_classes).
    """

    def __init__(self, features, num_classes=1000, dropout=0.5, init_weights=True):
        super().__init__()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, num_classes),
        )
        if init_weights:
            he_fan_out_init_(self)

    def forward(self, x):
        x = self.avgpool(self.features(x))  # (N, 512, 7, 7)
        return self.classifier(x.flatten(1))  # (N, num_classes)


def vgg(depth, batch_norm=False, num_classes=1000, in_channels=3, dropout=0.5):
    """VGG-`depth` (11, 13, 16 or 19), optionally with BatchNorm; input (N, C, 224, 224)."""
    check_model_args(num_classes, in_channels)
    if depth not in _DEPTH_TO_CFG:
        raise ValueError(f"depth must be one of {sorted(_DEPTH_TO_CFG)} for VGG; got {depth!r}")
    features = make_layers(VGG_CFGS[_DEPTH_TO_CFG[depth]], in_channels, batch_norm)
    return VGG(features, num_classes, dropout)


def vgg11(num_classes=1000, in_channels=3, dropout=0.5):
    """VGG-11 (configuration A); 132,863,336 parameters at 1000 classes."""
    return vgg(11, False, num_classes, in_channels, dropout)


def vgg11_bn(num_classes=1000, in_channels=3, dropout=0.5):
    """VGG-11 with BatchNorm; 132,868,840 parameters at 1000 classes."""
    return vgg(11, True, num_classes, in_channels, dropout)


def vgg13(num_classes=1000, in_channels=3, dropout=0.5):
    """VGG-13 (configuration B); 133,047,848 parameters at 1000 classes."""
    return vgg(13, False, num_classes, in_channels, dropout)


def vgg13_bn(num_classes=1000, in_channels=3, dropout=0.5):
    """VGG-13 with BatchNorm; 133,053,736 parameters at 1000 classes."""
    return vgg(13, True, num_classes, in_channels, dropout)


def vgg16(num_classes=1000, in_channels=3, dropout=0.5):
    """VGG-16 (configuration D); 138,357,544 parameters at 1000 classes."""
    return vgg(16, False, num_classes, in_channels, dropout)


def vgg16_bn(num_classes=1000, in_channels=3, dropout=0.5):
    """VGG-16 with BatchNorm; 138,365,992 parameters at 1000 classes."""
    return vgg(16, True, num_classes, in_channels, dropout)


def vgg19(num_classes=1000, in_channels=3, dropout=0.5):
    """VGG-19 (configuration E); 143,667,240 parameters at 1000 classes."""
    return vgg(19, False, num_classes, in_channels, dropout)


def vgg19_bn(num_classes=1000, in_channels=3, dropout=0.5):
    """VGG-19 with BatchNorm; 143,678,248 parameters at 1000 classes."""
    return vgg(19, True, num_classes, in_channels, dropout)


FACTORIES = {
    "vgg11": vgg11, "vgg11_bn": vgg11_bn, "vgg13": vgg13, "vgg13_bn": vgg13_bn,
    "vgg16": vgg16, "vgg16_bn": vgg16_bn, "vgg19": vgg19, "vgg19_bn": vgg19_bn,
}
DEFAULT_INPUT = {name: (3, 224, 224) for name in FACTORIES}
