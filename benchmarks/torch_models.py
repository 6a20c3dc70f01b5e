"""PyTorch reference models with torchvision's state_dict key names, for the benchmarks and the
parity tests (tests/models/test_torch_parity.py imports them).

ResNet-18 and MobileNetV2 (width 1.0) follow torchvision; ResNet-20 is the CIFAR network of He
et al. (2016, Section 4.2) with shortcut option A (stride-2 subsampling plus zero channels), the
same structure and keys as `juanji.models.resnet20`.
"""

import torch

tnn = torch.nn
tF = torch.nn.functional


class TorchBasicBlock(tnn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = tnn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(cout)
        self.conv2 = tnn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = tnn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = tnn.Sequential(tnn.Conv2d(cin, cout, 1, stride, bias=False),
                                             tnn.BatchNorm2d(cout))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = tF.relu(self.bn1(self.conv1(x)))
        return tF.relu(self.bn2(self.conv2(out)) + identity)


class TorchResNet18(tnn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.conv1 = tnn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = tnn.BatchNorm2d(64)
        self.maxpool = tnn.MaxPool2d(3, 2, 1)
        cin = 64
        for i, width in enumerate((64, 128, 256, 512)):
            stride = 1 if i == 0 else 2
            setattr(self, f"layer{i + 1}", tnn.Sequential(TorchBasicBlock(cin, width, stride),
                                                          TorchBasicBlock(width, width, 1)))
            cin = width
        self.fc = tnn.Linear(512, num_classes)

    def forward(self, x):
        x = self.maxpool(tF.relu(self.bn1(self.conv1(x))))
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
        return self.fc(x.mean((2, 3)))


def torch_conv_bn_relu6(cin, cout, kernel, stride, groups=1):
    return tnn.Sequential(tnn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2,
                                     groups=groups, bias=False),
                          tnn.BatchNorm2d(cout), tnn.ReLU6())


class TorchInvertedResidual(tnn.Module):
    def __init__(self, cin, cout, stride, t):
        super().__init__()
        hidden = cin * t
        self.use_res = stride == 1 and cin == cout
        layers = [] if t == 1 else [torch_conv_bn_relu6(cin, hidden, 1, 1)]
        layers += [torch_conv_bn_relu6(hidden, hidden, 3, stride, hidden),
                   tnn.Conv2d(hidden, cout, 1, bias=False), tnn.BatchNorm2d(cout)]
        self.conv = tnn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res else self.conv(x)


class TorchMobileNetV2(tnn.Module):
    """width 1.0, torchvision's table; dropout 0 by default (so train mode is deterministic)."""

    def __init__(self, num_classes, dropout=0.0):
        super().__init__()
        table = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                 (6, 160, 3, 2), (6, 320, 1, 1)]
        layers, cin = [torch_conv_bn_relu6(3, 32, 3, 2)], 32
        for t, c, n, s in table:
            for i in range(n):
                layers.append(TorchInvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers.append(torch_conv_bn_relu6(cin, 1280, 1, 1))
        self.features = tnn.Sequential(*layers)
        self.classifier = tnn.Sequential(tnn.Dropout(dropout), tnn.Linear(1280, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x).mean((2, 3)))


class TorchPadShortcut(tnn.Module):
    """Option A shortcut: subsample by `stride`, append `extra` zero channels."""

    def __init__(self, extra, stride):
        super().__init__()
        self.extra, self.stride = extra, stride

    def forward(self, x):
        x = x[:, :, :: self.stride, :: self.stride]
        return tF.pad(x, (0, 0, 0, 0, 0, self.extra))


class TorchCifarBlock(tnn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = tnn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(cout)
        self.conv2 = tnn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = tnn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = TorchPadShortcut(cout - cin, stride)

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = tF.relu(self.bn1(self.conv1(x)))
        return tF.relu(self.bn2(self.conv2(out)) + identity)


class TorchResNet20(tnn.Module):
    def __init__(self, num_classes=10, blocks=3):
        super().__init__()
        self.conv1 = tnn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(16)
        cin = 16
        for i, width in enumerate((16, 32, 64)):
            stride = 1 if i == 0 else 2
            layers = [TorchCifarBlock(cin if j == 0 else width, width, stride if j == 0 else 1)
                      for j in range(blocks)]
            setattr(self, f"layer{i + 1}", tnn.Sequential(*layers))
            cin = width
        self.fc = tnn.Linear(64, num_classes)

    def forward(self, x):
        x = tF.relu(self.bn1(self.conv1(x)))
        for i in range(1, 4):
            x = getattr(self, f"layer{i}")(x)
        return self.fc(x.mean((2, 3)))
