"""DenseNet (Huang, Liu, van der Maaten & Weinberger, 2017, 'Densely Connected Convolutional
Networks'), DenseNet-BC in torchvision's layout so its checkpoints load with strict=True.

Each dense layer is BN-ReLU-1x1 conv (bn_size * growth_rate) - BN-ReLU-3x3 conv (growth_rate)
and reads the concatenation of every earlier feature map of its block; transitions halve the
channels (compression 0.5) and the resolution. `DENSENET_CFGS` is the paper's Table 1.
Input 3x224x224 (>= 29x29 runs).

state_dict keys: features.conv0, features.norm0, features.denseblock{b}.denselayer{l}.norm1 /
conv1 / norm2 / conv2, features.transition{b}.norm / conv, features.norm5, classifier.
"""

from collections import OrderedDict

import juanji
from juanji import nn
from juanji.models.validation import check_model_args
from juanji.nn import functional as F

# name -> (growth_rate, layers per block, channels after the stem)
DENSENET_CFGS = {
    "densenet121": (32, (6, 12, 24, 16), 64),
    "densenet161": (48, (6, 12, 36, 24), 96),
    "densenet169": (32, (6, 12, 32, 32), 64),
    "densenet201": (32, (6, 12, 48, 32), 64),
}


class DenseLayer(nn.Module):
    """list of (N, C_i, H, W) -> (N, growth_rate, H, W) from their concatenation."""

    def __init__(self, num_input_features, growth_rate, bn_size, drop_rate):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(num_input_features)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(num_input_features, bn_size * growth_rate, kernel_size=1,
                               bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, kernel_size=3, padding=1,
                               bias=False)
        self.drop_rate = float(drop_rate)

    def forward(self, features):
        x = features[0] if len(features) == 1 else juanji.cat(features, 1)  # (N, C, H, W)
        x = self.conv1(self.relu1(self.norm1(x)))  # (N, bn_size * growth, H, W)
        x = self.conv2(self.relu2(self.norm2(x)))  # (N, growth, H, W)
        if self.drop_rate > 0:
            x = F.dropout(x, p=self.drop_rate, training=self.training)
        return x


class DenseBlock(nn.Module):
    """`num_layers` dense layers; (N, C, H, W) -> (N, C + num_layers * growth_rate, H, W)."""

    def __init__(self, num_layers, num_input_features, bn_size, growth_rate, drop_rate):
        super().__init__()
        self.layer_names = []
        for i in range(num_layers):
            name = f"denselayer{i + 1}"
            layer = DenseLayer(num_input_features + i * growth_rate, growth_rate, bn_size,
                               drop_rate)
            setattr(self, name, layer)
            self.layer_names.append(name)

    def forward(self, x):
        features = [x]
        for name in self.layer_names:
            features.append(getattr(self, name)(features))
        return juanji.cat(features, 1)


class Transition(nn.Sequential):
    """BN-ReLU-1x1 conv-2x2 avg-pool: (N, C, H, W) -> (N, C_out, H/2, W/2)."""

    def __init__(self, num_input_features, num_output_features):
        super().__init__(OrderedDict([
            ("norm", nn.BatchNorm2d(num_input_features)),
            ("relu", nn.ReLU(inplace=True)),
            ("conv", nn.Conv2d(num_input_features, num_output_features, kernel_size=1,
                               bias=False)),
            ("pool", nn.AvgPool2d(kernel_size=2, stride=2)),
        ]))


class DenseNet(nn.Module):
    """Stem (7x7/2 conv, 3x3/2 max-pool) -> dense blocks and transitions -> BN -> ReLU ->
    global average pool -> linear. (N, in_channels, H, W) -> (N, num_classes)."""

    def __init__(self, growth_rate=32, block_config=(6, 12, 24, 16), num_init_features=64,
                 bn_size=4, drop_rate=0.0, num_classes=1000, in_channels=3):
        super().__init__()
        check_model_args(num_classes, in_channels)
        layers = OrderedDict([
            ("conv0", nn.Conv2d(in_channels, num_init_features, kernel_size=7, stride=2,
                                padding=3, bias=False)),
            ("norm0", nn.BatchNorm2d(num_init_features)),
            ("relu0", nn.ReLU(inplace=True)),
            ("pool0", nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
        ])
        channels = num_init_features
        for i, num_layers in enumerate(block_config):
            layers[f"denseblock{i + 1}"] = DenseBlock(num_layers, channels, bn_size, growth_rate,
                                                      drop_rate)
            channels += num_layers * growth_rate
            if i != len(block_config) - 1:
                layers[f"transition{i + 1}"] = Transition(channels, channels // 2)
                channels //= 2
        layers["norm5"] = nn.BatchNorm2d(channels)
        self.features = nn.Sequential(layers)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Linear(channels, num_classes)
        _init_weights(self)

    def forward(self, x):
        x = F.relu(self.features(x))  # (N, C, H/32, W/32)
        x = self.avgpool(x).flatten(1)  # (N, C)
        return self.classifier(x)  # (N, num_classes)


def _init_weights(model):
    """He-normal (fan_in) convolutions, BN at 1/0, zero linear bias (torchvision's)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.zeros_(m.bias)


def _densenet(name, num_classes, in_channels, drop_rate):
    growth_rate, block_config, num_init_features = DENSENET_CFGS[name]
    return DenseNet(growth_rate, block_config, num_init_features, drop_rate=drop_rate,
                    num_classes=num_classes, in_channels=in_channels)


def densenet121(num_classes=1000, in_channels=3, drop_rate=0.0):
    """DenseNet-121 (k=32; 7,978,856 parameters at 1000 classes); input (N, C, 224, 224)."""
    return _densenet("densenet121", num_classes, in_channels, drop_rate)


def densenet161(num_classes=1000, in_channels=3, drop_rate=0.0):
    """DenseNet-161 (k=48; 28,681,000 parameters); input (N, C, 224, 224)."""
    return _densenet("densenet161", num_classes, in_channels, drop_rate)


def densenet169(num_classes=1000, in_channels=3, drop_rate=0.0):
    """DenseNet-169 (k=32; 14,149,480 parameters); input (N, C, 224, 224)."""
    return _densenet("densenet169", num_classes, in_channels, drop_rate)


def densenet201(num_classes=1000, in_channels=3, drop_rate=0.0):
    """DenseNet-201 (k=32; 20,013,928 parameters); input (N, C, 224, 224)."""
    return _densenet("densenet201", num_classes, in_channels, drop_rate)


FACTORIES = {
    "densenet121": densenet121, "densenet161": densenet161, "densenet169": densenet169,
    "densenet201": densenet201,
}
DEFAULT_INPUT = {name: (3, 224, 224) for name in FACTORIES}
