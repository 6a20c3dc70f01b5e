"""GoogLeNet / Inception v1 (Szegedy et al., 2015, 'Going Deeper with Convolutions'), in
torchvision's layout so its checkpoint loads with strict=True.

torchvision's reading differs from the paper in two ways, kept here for weight compatibility:
every convolution is a `BasicConv2d` (conv without bias, BatchNorm with eps=0.001, ReLU), and
the "5x5" branch of each Inception module uses a 3x3 kernel. Pools use ceil_mode as in Caffe.

Input 3x224x224 (>= 15x15 runs). In training mode with `aux_logits=True` the forward returns
`GoogLeNetOutputs(logits, aux_logits2, aux_logits1)` from the two auxiliary heads (after
inception4a and inception4d); otherwise the logits alone.
Parameters at 1000 classes: 6,624,904 without the auxiliary heads, 13,004,888 with them.
"""

from collections import namedtuple

import juanji
from juanji import nn
from juanji.models.validation import check_model_args
from juanji.nn import functional as F

GoogLeNetOutputs = namedtuple("GoogLeNetOutputs", ["logits", "aux_logits2", "aux_logits1"])

# name -> (in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj): the paper's Table 1.
INCEPTION_CFGS = {
    "inception3a": (192, 64, 96, 128, 16, 32, 32),
    "inception3b": (256, 128, 128, 192, 32, 96, 64),
    "inception4a": (480, 192, 96, 208, 16, 48, 64),
    "inception4b": (512, 160, 112, 224, 24, 64, 64),
    "inception4c": (512, 128, 128, 256, 24, 64, 64),
    "inception4d": (512, 112, 144, 288, 32, 64, 64),
    "inception4e": (528, 256, 160, 320, 32, 128, 128),
    "inception5a": (832, 256, 160, 320, 32, 128, 128),
    "inception5b": (832, 384, 192, 384, 48, 128, 128),
}


class BasicConv2d(nn.Module):
    """conv (no bias) -> BatchNorm2d(eps=0.001) -> ReLU; keys conv.weight, bn.*."""

    def __init__(self, in_channels, out_channels, **conv_kwargs):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **conv_kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class Inception(nn.Module):
    """Four parallel branches concatenated on channels; spatial size unchanged.

    (N, in_channels, H, W) -> (N, ch1x1 + ch3x3 + ch5x5 + pool_proj, H, W).
    """

    def __init__(self, in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj):
        super().__init__()
        self.branch1 = BasicConv2d(in_channels, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(
            BasicConv2d(in_channels, ch3x3red, kernel_size=1),
            BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1),
        )
        self.branch3 = nn.Sequential(
            BasicConv2d(in_channels, ch5x5red, kernel_size=1),
            # 3x3, not the paper's 5x5: torchvision's checkpoint was trained this way
            BasicConv2d(ch5x5red, ch5x5, kernel_size=3, padding=1),
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
            BasicConv2d(in_channels, pool_proj, kernel_size=1),
        )

    def forward(self, x):
        branches = [self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)]
        return juanji.cat(branches, 1)


class InceptionAux(nn.Module):
    """Auxiliary classifier: adaptive avg-pool 4x4, 1x1 conv 128, FC 1024, dropout 0.7, FC.

    (N, in_channels, H, W) -> (N, num_classes).
    """

    def __init__(self, in_channels, num_classes, dropout=0.7):
        super().__init__()
        self.conv = BasicConv2d(in_channels, 128, kernel_size=1)
        self.pool = nn.AdaptiveAvgPool2d((4, 4))
        self.fc1 = nn.Linear(2048, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(p=dropout)

    def forward(self, x):
        x = self.conv(self.pool(x))  # (N, 128, 4, 4)
        x = F.relu(self.fc1(x.flatten(1)))  # (N, 1024)
        return self.fc2(self.dropout(x))  # (N, num_classes)


class GoogLeNet(nn.Module):
    """The 22-layer network of the paper's Table 1; (N, C, H, W) -> (N, num_classes)."""

    def __init__(self, num_classes=1000, in_channels=3, aux_logits=True, dropout=0.2,
                 dropout_aux=0.7, init_weights=True):
        super().__init__()
        self.aux_logits = aux_logits
        self.conv1 = BasicConv2d(in_channels, 64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, kernel_size=1)
        self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception3a = Inception(*INCEPTION_CFGS["inception3a"])
        self.inception3b = Inception(*INCEPTION_CFGS["inception3b"])
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        for name in ("inception4a", "inception4b", "inception4c", "inception4d", "inception4e"):
            setattr(self, name, Inception(*INCEPTION_CFGS[name]))
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.inception5a = Inception(*INCEPTION_CFGS["inception5a"])
        self.inception5b = Inception(*INCEPTION_CFGS["inception5b"])
        if aux_logits:
            self.aux1 = InceptionAux(512, num_classes, dropout_aux)
            self.aux2 = InceptionAux(528, num_classes, dropout_aux)
        else:
            self.aux1 = self.aux2 = None
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(1024, num_classes)
        if init_weights:
            _init_weights(self)

    def forward(self, x):
        x = self.maxpool1(self.conv1(x))  # (N, 64, 56, 56) at 224
        x = self.maxpool2(self.conv3(self.conv2(x)))  # (N, 192, 28, 28)
        x = self.inception3b(self.inception3a(x))  # (N, 480, 28, 28)
        x = self.inception4a(self.maxpool3(x))  # (N, 512, 14, 14)
        with_aux = self.training and self.aux1 is not None
        aux1 = self.aux1(x) if with_aux else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))  # (N, 528, 14, 14)
        aux2 = self.aux2(x) if with_aux else None
        x = self.maxpool4(self.inception4e(x))  # (N, 832, 7, 7)
        x = self.inception5b(self.inception5a(x))  # (N, 1024, 7, 7)
        x = self.avgpool(x).flatten(1)  # (N, 1024)
        logits = self.fc(self.dropout(x))  # (N, num_classes)
        return GoogLeNetOutputs(logits, aux2, aux1) if with_aux else logits


def _init_weights(model):
    """N(0, 0.01) convolutions and linear layers (zero linear biases), BN at 1/0."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def googlenet(num_classes=1000, in_channels=3, aux_logits=False, dropout=0.2, dropout_aux=0.7):
    """GoogLeNet; input (N, C, 224, 224). `aux_logits=True` adds the two training-time heads.

    The default (no auxiliary heads) has the state_dict of torchvision's pretrained model; the
    checkpoint file itself also carries the (untrained) heads, so load it into
    `googlenet(aux_logits=True)` with strict=True. torchvision's `transform_input` (re-normalising
    ImageNet-normalised input) is not reproduced: normalise the input as the weights expect.
    """
    check_model_args(num_classes, in_channels)
    return GoogLeNet(num_classes, in_channels, aux_logits, dropout, dropout_aux)


FACTORIES = {"googlenet": googlenet}
DEFAULT_INPUT = {"googlenet": (3, 224, 224)}
