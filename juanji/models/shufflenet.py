"""ShuffleNets: grouped pointwise convolutions with channel shuffles.

- `shufflenet_v1`: Zhang, Zhou, Lin & Sun, 2018, 'ShuffleNet: An Extremely Efficient
  Convolutional Neural Network for Mobile Devices' (Table 1), g groups (default 3, the paper's
  240-480-960 channel stages), scale factor `width_mult`. Each unit: 1x1 group conv (bottleneck
  = out/4) - BN - ReLU - shuffle - 3x3 depthwise - BN - 1x1 group conv - BN; stride-2 units
  concatenate a 3x3/2 average-pooled shortcut, the rest add. The first 1x1 of stage 2 is not
  grouped (its input has only 24 channels). torchvision has no v1.
- `shufflenet_v2_x0_5 / x1_0 / x1_5 / x2_0`: Ma, Zhang, Zheng & Sun, 2018, 'ShuffleNet V2:
  Practical Guidelines for Efficient CNN Architecture Design' (Table 5), in torchvision's layout
  (keys conv1.{0,1}, stage{2,3,4}.{j}.branch{1,2}.{k}, conv5.{0,1}, fc).

Input 3x224x224; any size >= 1 runs.
"""

import juanji
from juanji import nn
from juanji.models.validation import check_model_args

STAGE_REPEATS = (4, 8, 4)

# ---- ShuffleNet v1 ----------------------------------------------------------------------------

# groups -> output channels of stages 2, 3, 4 at scale 1x (the paper's Table 1).
SHUFFLENET_V1_CHANNELS = {1: (144, 288, 576), 2: (200, 400, 800), 3: (240, 480, 960),
                          4: (272, 544, 1088), 8: (384, 768, 1536)}


class ShuffleUnit(nn.Module):
    """(N, inp, H, W) -> (N, oup, H / stride, W / stride)."""

    def __init__(self, inp, oup, stride, groups, first_groups):
        super().__init__()
        self.stride = stride
        branch_out = oup - inp if stride == 2 else oup  # stride 2 concatenates the shortcut
        mid = oup // 4
        self.conv1 = nn.Conv2d(inp, mid, 1, groups=first_groups, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.shuffle = nn.ChannelShuffle(first_groups)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride, padding=1, groups=mid, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, branch_out, 1, groups=groups, bias=False)
        self.bn3 = nn.BatchNorm2d(branch_out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = nn.AvgPool2d(3, stride=2, padding=1) if stride == 2 else None

    def forward(self, x):
        out = self.shuffle(self.relu(self.bn1(self.conv1(x))))
        out = self.bn3(self.conv3(self.bn2(self.conv2(out))))
        if self.shortcut is not None:
            return self.relu(juanji.cat([self.shortcut(x), out], 1))
        return self.relu(x + out)


class ShuffleNetV1(nn.Module):
    """conv1 3x3/2 (24) -> maxpool 3x3/2 -> stages 2-4 -> global pool -> fc.
    (N, in_channels, H, W) -> (N, num_classes)."""

    def __init__(self, num_classes=1000, in_channels=3, groups=3, width_mult=1.0):
        super().__init__()
        stem = 24
        self.conv1 = nn.Sequential(
            nn.Conv2d(in_channels, stem, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(stem),
            nn.ReLU(inplace=True),
        )
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        channels = stem
        for i, (repeats, width) in enumerate(zip(STAGE_REPEATS, SHUFFLENET_V1_CHANNELS[groups])):
            # widths must split into `groups` groups, and into 4 for the bottleneck
            out = int(width * width_mult) // (4 * groups) * (4 * groups)
            units = []
            for j in range(repeats):
                first_groups = 1 if i == 0 and j == 0 else groups
                units.append(ShuffleUnit(channels, out, 2 if j == 0 else 1, groups,
                                         first_groups))
                channels = out
            setattr(self, f"stage{i + 2}", nn.Sequential(*units))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x):
        x = self.maxpool(self.conv1(x))  # (N, 24, H/4, W/4)
        x = self.stage4(self.stage3(self.stage2(x)))  # (N, C, H/32, W/32)
        return self.fc(self.avgpool(x).flatten(1))  # (N, num_classes)


def shufflenet_v1(num_classes=1000, in_channels=3, groups=3, width_mult=1.0):
    """ShuffleNet v1 (default g=3, 1x); input (N, C, 224, 224)."""
    check_model_args(num_classes, in_channels)
    if groups not in SHUFFLENET_V1_CHANNELS:
        raise ValueError(f"groups must be one of {sorted(SHUFFLENET_V1_CHANNELS)}; "
                         f"got {groups!r}")
    if not isinstance(width_mult, (int, float)) or width_mult <= 0:
        raise ValueError(f"width_mult must be a positive number; got {width_mult!r}")
    return ShuffleNetV1(num_classes, in_channels, groups, width_mult)


# ---- ShuffleNet v2 ----------------------------------------------------------------------------

# name -> channels of conv1, stages 2-4, conv5 (the paper's Table 5).
SHUFFLENET_V2_CHANNELS = {
    "shufflenet_v2_x0_5": (24, 48, 96, 192, 1024),
    "shufflenet_v2_x1_0": (24, 116, 232, 464, 1024),
    "shufflenet_v2_x1_5": (24, 176, 352, 704, 1024),
    "shufflenet_v2_x2_0": (24, 244, 488, 976, 2048),
}


def _depthwise(channels, stride):
    return nn.Conv2d(channels, channels, 3, stride, padding=1, groups=channels, bias=False)


class ShuffleV2Block(nn.Module):
    """stride 1: split channels in half, transform one half, concatenate, shuffle.
    stride 2: both branches see the whole input and each outputs half.
    (N, inp, H, W) -> (N, oup, H / stride, W / stride)."""

    def __init__(self, inp, oup, stride):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2; got {stride!r}")
        if stride == 1 and inp != 2 * (oup // 2):
            raise ValueError(f"a stride-1 block needs inp == oup (even); got inp={inp}, "
                             f"oup={oup}")
        self.stride = stride
        half = oup // 2
        if stride > 1:
            self.branch1 = nn.Sequential(
                _depthwise(inp, stride),
                nn.BatchNorm2d(inp),
                nn.Conv2d(inp, half, 1, bias=False),
                nn.BatchNorm2d(half),
                nn.ReLU(inplace=True),
            )
        else:
            self.branch1 = nn.Sequential()
        self.branch2 = nn.Sequential(
            nn.Conv2d(inp if stride > 1 else half, half, 1, bias=False),
            nn.BatchNorm2d(half),
            nn.ReLU(inplace=True),
            _depthwise(half, stride),
            nn.BatchNorm2d(half),
            nn.Conv2d(half, half, 1, bias=False),
            nn.BatchNorm2d(half),
            nn.ReLU(inplace=True),
        )
        self.shuffle = nn.ChannelShuffle(2)

    def forward(self, x):
        if self.stride == 1:
            half = x.shape[1] // 2
            out = juanji.cat([x[:, :half], self.branch2(x[:, half:])], 1)
        else:
            out = juanji.cat([self.branch1(x), self.branch2(x)], 1)
        return self.shuffle(out)


class ShuffleNetV2(nn.Module):
    """conv1 3x3/2 -> maxpool 3x3/2 -> stages 2-4 -> conv5 1x1 -> global mean -> fc.
    (N, in_channels, H, W) -> (N, num_classes)."""

    def __init__(self, stages_out_channels, num_classes=1000, in_channels=3,
                 stages_repeats=STAGE_REPEATS):
        super().__init__()
        if len(stages_repeats) != 3 or len(stages_out_channels) != 5:
            raise ValueError(f"expected 3 stage repeats and 5 channel counts; got "
                             f"{list(stages_repeats)} and {list(stages_out_channels)}")
        channels = stages_out_channels[0]
        self.conv1 = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        )
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        for i, (repeats, out) in enumerate(zip(stages_repeats, stages_out_channels[1:4])):
            blocks = [ShuffleV2Block(channels, out, 2)]
            blocks += [ShuffleV2Block(out, out, 1) for _ in range(repeats - 1)]
            setattr(self, f"stage{i + 2}", nn.Sequential(*blocks))
            channels = out
        last = stages_out_channels[-1]
        self.conv5 = nn.Sequential(
            nn.Conv2d(channels, last, 1, bias=False),
            nn.BatchNorm2d(last),
            nn.ReLU(inplace=True),
        )
        self.fc = nn.Linear(last, num_classes)

    def forward(self, x):
        x = self.maxpool(self.conv1(x))  # (N, 24, H/4, W/4)
        x = self.conv5(self.stage4(self.stage3(self.stage2(x))))  # (N, C5, H/32, W/32)
        return self.fc(x.mean((2, 3)))  # (N, num_classes)


def _shufflenet_v2(name, num_classes, in_channels):
    check_model_args(num_classes, in_channels)
    return ShuffleNetV2(SHUFFLENET_V2_CHANNELS[name], num_classes, in_channels)


def shufflenet_v2_x0_5(num_classes=1000, in_channels=3):
    """ShuffleNet V2 0.5x (1,366,792 parameters at 1000 classes); input (N, C, 224, 224)."""
    return _shufflenet_v2("shufflenet_v2_x0_5", num_classes, in_channels)


def shufflenet_v2_x1_0(num_classes=1000, in_channels=3):
    """ShuffleNet V2 1.0x (2,278,604 parameters); input (N, C, 224, 224)."""
    return _shufflenet_v2("shufflenet_v2_x1_0", num_classes, in_channels)


def shufflenet_v2_x1_5(num_classes=1000, in_channels=3):
    """ShuffleNet V2 1.5x (3,503,624 parameters); input (N, C, 224, 224)."""
    return _shufflenet_v2("shufflenet_v2_x1_5", num_classes, in_channels)


def shufflenet_v2_x2_0(num_classes=1000, in_channels=3):
    """ShuffleNet V2 2.0x (7,393,996 parameters); input (N, C, 224, 224)."""
    return _shufflenet_v2("shufflenet_v2_x2_0", num_classes, in_channels)


FACTORIES = {
    "shufflenet_v1": shufflenet_v1,
    "shufflenet_v2_x0_5": shufflenet_v2_x0_5, "shufflenet_v2_x1_0": shufflenet_v2_x1_0,
    "shufflenet_v2_x1_5": shufflenet_v2_x1_5, "shufflenet_v2_x2_0": shufflenet_v2_x2_0,
}
DEFAULT_INPUT = {name: (3, 224, 224) for name in FACTORIES}
