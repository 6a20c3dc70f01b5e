"""Fully convolutional networks for semantic segmentation (Long, Shelhamer & Darrell, 2015,
'Fully Convolutional Networks for Semantic Segmentation'): FCN-32s, FCN-16s and FCN-8s on a
VGG-16 trunk.

The trunk is VGG-16's `features` with the same keys (`features.{i}.weight`), so the
convolutional part of a vgg16 checkpoint loads into it. VGG's fully connected layers become
convolutions: fc6 (7x7, 4096) and fc7 (1x1, 4096), each with ReLU and dropout, then score_fr
(1x1, num_classes). Upsampling is learned ConvTranspose2d initialised to bilinear
interpolation (the paper's choice); the scoring layers start at zero, as in the paper.

- FCN-32s: score_fr upsampled x32 (`upscore`).
- FCN-16s: score_fr x2 (`upscore2`) + score_pool4 (1x1 on pool4), then x16 (`upscore`).
- FCN-8s: as 16s, then x2 (`upscore_pool4`) + score_pool3 (1x1 on pool3), then x8 (`upscore`).

Where the paper pads the input by 100 and crops, this version pads fc6 by 3 and uses
ConvTranspose2d(kernel 2f, stride f, padding f/2), which scales by exactly f: the output is
(N, num_classes, H, W) for any H, W divisible by 32. Input 3x224x224 (>= 32x32).
"""

import numpy as np

from juanji import nn
from juanji.models.validation import check_model_args
from juanji.models.vgg import VGG_CFGS, make_layers

STRIDES = {"fcn32s": 32, "fcn16s": 16, "fcn8s": 8}


def bilinear_kernel(channels, kernel_size):
    """ConvTranspose2d weight (channels, channels, K, K) that upsamples each channel bilinearly
    on its own (zero between channels)."""
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    ramp = 1 - np.abs(np.arange(kernel_size) - center) / factor  # (K,)
    weight = np.zeros((channels, channels, kernel_size, kernel_size), dtype=np.float32)
    weight[np.arange(channels), np.arange(channels)] = np.outer(ramp, ramp)
    return weight


def _upsample(channels, factor):
    """Learned x`factor` upsampling: (N, C, H, W) -> (N, C, factor * H, factor * W)."""
    up = nn.ConvTranspose2d(channels, channels, kernel_size=2 * factor, stride=factor,
                            padding=factor // 2, bias=False)
    up.weight.data[...] = bilinear_kernel(channels, 2 * factor)
    return up


class FCN(nn.Module):
    """(N, in_channels, H, W), H and W divisible by 32 -> (N, num_classes, H, W)."""

    def __init__(self, variant="fcn8s", num_classes=21, in_channels=3, fc_channels=4096,
                 dropout=0.5):
        super().__init__()
        if variant not in STRIDES:
            raise ValueError(f"variant must be one of {list(STRIDES)}; got {variant!r}")
        self.variant = variant
        self.features = make_layers(VGG_CFGS["D"], in_channels)
        pools = [i for i, m in enumerate(self.features) if isinstance(m, nn.MaxPool2d)]
        self.pool3_index, self.pool4_index = pools[2], pools[3]
        self.fc6 = nn.Conv2d(512, fc_channels, kernel_size=7, padding=3)
        self.relu6 = nn.ReLU(inplace=True)
        self.drop6 = nn.Dropout(p=dropout)
        self.fc7 = nn.Conv2d(fc_channels, fc_channels, kernel_size=1)
        self.relu7 = nn.ReLU(inplace=True)
        self.drop7 = nn.Dropout(p=dropout)
        self.score_fr = nn.Conv2d(fc_channels, num_classes, kernel_size=1)
        scores = [self.score_fr]
        if variant in ("fcn16s", "fcn8s"):
            self.score_pool4 = nn.Conv2d(512, num_classes, kernel_size=1)
            self.upscore2 = _upsample(num_classes, 2)
            scores.append(self.score_pool4)
        if variant == "fcn8s":
            self.score_pool3 = nn.Conv2d(256, num_classes, kernel_size=1)
            self.upscore_pool4 = _upsample(num_classes, 2)
            scores.append(self.score_pool3)
        self.upscore = _upsample(num_classes, STRIDES[variant])
        for m in self.features:
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
        for m in scores:
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, x):
        h, w = x.shape[2:]
        if h % 32 or w % 32:
            raise ValueError(f"{self.variant} needs input height and width divisible by 32; "
                             f"got {h}x{w}")
        pool3 = pool4 = None
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i == self.pool3_index:
                pool3 = x  # (N, 256, H/8, W/8)
            elif i == self.pool4_index:
                pool4 = x  # (N, 512, H/16, W/16)
        x = self.drop6(self.relu6(self.fc6(x)))  # (N, fc_channels, H/32, W/32)
        x = self.drop7(self.relu7(self.fc7(x)))
        score = self.score_fr(x)  # (N, num_classes, H/32, W/32)
        if self.variant in ("fcn16s", "fcn8s"):
            score = self.upscore2(score) + self.score_pool4(pool4)  # (N, K, H/16, W/16)
        if self.variant == "fcn8s":
            score = self.upscore_pool4(score) + self.score_pool3(pool3)  # (N, K, H/8, W/8)
        return self.upscore(score)  # (N, num_classes, H, W)


def _fcn(variant, num_classes, in_channels, fc_channels, dropout):
    check_model_args(num_classes, in_channels)
    if not isinstance(fc_channels, int) or fc_channels < 1:
        raise ValueError(f"fc_channels must be a positive int; got {fc_channels!r}")
    return FCN(variant, num_classes, in_channels, fc_channels, dropout)


def fcn32s(num_classes=21, in_channels=3, fc_channels=4096, dropout=0.5):
    """FCN-32s on VGG-16; (N, C, H, W) -> (N, num_classes, H, W), H, W divisible by 32."""
    return _fcn("fcn32s", num_classes, in_channels, fc_channels, dropout)


def fcn16s(num_classes=21, in_channels=3, fc_channels=4096, dropout=0.5):
    """FCN-16s on VGG-16 (adds the pool4 skip); H, W divisible by 32."""
    return _fcn("fcn16s", num_classes, in_channels, fc_channels, dropout)


def fcn8s(num_classes=21, in_channels=3, fc_channels=4096, dropout=0.5):
    """FCN-8s on VGG-16 (adds the pool4 and pool3 skips); H, W divisible by 32."""
    return _fcn("fcn8s", num_classes, in_channels, fc_channels, dropout)


FACTORIES = {"fcn32s": fcn32s, "fcn16s": fcn16s, "fcn8s": fcn8s}
DEFAULT_INPUT = {name: (3, 224, 224) for name in FACTORIES}
