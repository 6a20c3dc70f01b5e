"""Inception v3 (Szegedy et al., 2016, 'Rethinking the Inception Architecture for Computer
Vision'), in torchvision's layout so its checkpoint loads with strict=True.

Every convolution is a `BasicConv2d` (conv without bias, BatchNorm eps=0.001, ReLU). Modules:
InceptionA (35x35 grid, factorised 5x5), InceptionB (35 -> 17 grid reduction), InceptionC
(17x17 grid, factorised 7x7 as 1x7 + 7x1), InceptionD (17 -> 8 reduction), InceptionE (8x8,
expanded 1x3 / 3x1 filter banks). Input 3x299x299 (>= 75x75 runs in eval mode; the auxiliary
head needs the 17x17 grid of a 299 input). In training mode with `aux_logits=True` the forward
returns `InceptionOutputs(logits, aux_logits)`.
Parameters at 1000 classes: 27,161,264 with the auxiliary head (torchvision's checkpoint keeps
it), 23,834,568 without.
"""

from collections import namedtuple

import juanji
from juanji import nn
from juanji.models.googlenet import BasicConv2d
from juanji.models.validation import check_model_args
from juanji.nn import functional as F

InceptionOutputs = namedtuple("InceptionOutputs", ["logits", "aux_logits"])


class InceptionA(nn.Module):
    """1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool-1x1: (N, C, H, W) -> (N, 224 + pool_features, H, W)."""

    def __init__(self, in_channels, pool_features):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, kernel_size=1)

    def forward(self, x):
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(F.avg_pool2d(x, kernel_size=3, stride=1, padding=1))
        return juanji.cat([b1, b5, b3, bp], 1)


class InceptionB(nn.Module):
    """Grid reduction: 3x3/2 | 1x1-3x3-3x3/2 | maxpool/2: (N, C, H, W) -> (N, 480 + C, H', W')."""

    def __init__(self, in_channels):
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x):
        b3 = self.branch3x3(x)
        bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return juanji.cat([b3, bd, bp], 1)


def _conv_1x7(cin, cout):
    return BasicConv2d(cin, cout, kernel_size=(1, 7), padding=(0, 3))


def _conv_7x1(cin, cout):
    return BasicConv2d(cin, cout, kernel_size=(7, 1), padding=(3, 0))


class InceptionC(nn.Module):
    """Factorised 7x7 on the 17x17 grid: (N, C, H, W) -> (N, 768, H, W)."""

    def __init__(self, in_channels, channels_7x7):
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7_2 = _conv_1x7(c7, c7)
        self.branch7x7_3 = _conv_7x1(c7, 192)
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7dbl_2 = _conv_7x1(c7, c7)
        self.branch7x7dbl_3 = _conv_1x7(c7, c7)
        self.branch7x7dbl_4 = _conv_7x1(c7, c7)
        self.branch7x7dbl_5 = _conv_1x7(c7, 192)
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x):
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = x
        for i in range(1, 6):
            bd = getattr(self, f"branch7x7dbl_{i}")(bd)
        bp = self.branch_pool(F.avg_pool2d(x, kernel_size=3, stride=1, padding=1))
        return juanji.cat([b1, b7, bd, bp], 1)


class InceptionD(nn.Module):
    """Grid reduction 17 -> 8: (N, C, H, W) -> (N, 512 + C, H', W')."""

    def __init__(self, in_channels):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7x3_2 = _conv_1x7(192, 192)
        self.branch7x7x3_3 = _conv_7x1(192, 192)
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x):
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = x
        for i in range(1, 5):
            b7 = getattr(self, f"branch7x7x3_{i}")(b7)
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return juanji.cat([b3, b7, bp], 1)


class InceptionE(nn.Module):
    """Expanded filter banks on the 8x8 grid: (N, C, H, W) -> (N, 2048, H, W)."""

    def __init__(self, in_channels):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x):
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = juanji.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = juanji.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        bp = self.branch_pool(F.avg_pool2d(x, kernel_size=3, stride=1, padding=1))
        return juanji.cat([b1, b3, bd, bp], 1)


class InceptionAux(nn.Module):
    """Auxiliary head on the 17x17 grid: avgpool 5/3, 1x1 conv 128, 5x5 conv 768, FC."""

    def __init__(self, in_channels, num_classes):
        super().__init__()
        self.conv0 = BasicConv2d(in_channels, 128, kernel_size=1)
        self.conv1 = BasicConv2d(128, 768, kernel_size=5)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(768, num_classes)

    def forward(self, x):
        x = F.avg_pool2d(x, kernel_size=5, stride=3)  # (N, 768, 5, 5) at 17x17
        x = self.conv1(self.conv0(x))  # (N, 768, 1, 1)
        return self.fc(self.avgpool(x).flatten(1))  # (N, num_classes)


class Inception3(nn.Module):
    """Inception v3; (N, C, 299, 299) -> (N, num_classes)."""

    def __init__(self, num_classes=1000, in_channels=3, aux_logits=True, dropout=0.5,
                 init_weights=True):
        super().__init__()
        self.aux_logits = aux_logits
        self.Conv2d_1a_3x3 = BasicConv2d(in_channels, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.maxpool1 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.maxpool2 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.AuxLogits = InceptionAux(768, num_classes) if aux_logits else None
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280)
        self.Mixed_7c = InceptionE(2048)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(2048, num_classes)
        if init_weights:
            _init_weights(self)

    def forward(self, x):
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))  # (N, 64, 147, 147)
        x = self.maxpool1(x)  # (N, 64, 73, 73)
        x = self.maxpool2(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x)))  # (N, 192, 35, 35)
        x = self.Mixed_5d(self.Mixed_5c(self.Mixed_5b(x)))  # (N, 288, 35, 35)
        x = self.Mixed_6a(x)  # (N, 768, 17, 17)
        x = self.Mixed_6e(self.Mixed_6d(self.Mixed_6c(self.Mixed_6b(x))))  # (N, 768, 17, 17)
        with_aux = self.training and self.AuxLogits is not None
        aux = self.AuxLogits(x) if with_aux else None
        x = self.Mixed_7c(self.Mixed_7b(self.Mixed_7a(x)))  # (N, 2048, 8, 8)
        x = self.avgpool(x).flatten(1)  # (N, 2048)
        logits = self.fc(self.dropout(x))  # (N, num_classes)
        return InceptionOutputs(logits, aux) if with_aux else logits


def _init_weights(model):
    """N(0, 0.1) convolutions and FC, with the aux head's 0.01 / 0.001 (torchvision's stddevs,
    untruncated); BN at 1/0."""
    aux = model.AuxLogits
    special = {} if aux is None else {id(aux.conv1.conv.weight): 0.01, id(aux.fc.weight): 0.001}
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, special.get(id(m.weight), 0.1))
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def inception_v3(num_classes=1000, in_channels=3, aux_logits=True, dropout=0.5):
    """Inception v3; input (N, C, 299, 299). The default keeps the auxiliary head, as
    torchvision's checkpoint does (27,161,264 parameters at 1000 classes)."""
    check_model_args(num_classes, in_channels)
    return Inception3(num_classes, in_channels, aux_logits, dropout)


FACTORIES = {"inception_v3": inception_v3}
DEFAULT_INPUT = {"inception_v3": (3, 299, 299)}
