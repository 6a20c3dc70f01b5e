"""AlexNet and ZFNet, three readings of the 2012-2013 ImageNet winners.

- `alexnet`: torchvision's layout (the "one weird trick" variant of Krizhevsky, 2014: 64-192-
  384-256-256 channels, no LRN), so its checkpoint loads with strict=True. Input 3x224x224
  (any size >= 63 works thanks to the AdaptiveAvgPool2d((6, 6))).
- `alexnet_lrn`: the paper (Krizhevsky, Sutskever & Hinton, 2012, 'ImageNet Classification with
  Deep Convolutional Neural Networks'): 96-256-384-384-256 channels, LocalResponseNorm
  (size 5, alpha 1e-4, beta 0.75, k 2) after conv1 and conv2, overlapping 3x3/2 pooling, and
  the two-GPU split as grouped convolutions (groups=2 on conv2, conv4, conv5). Input 3x227x227.
- `zfnet`: Zeiler & Fergus, 2014, 'Visualizing and Understanding Convolutional Networks': a 7x7/2
  first layer and a 5x5/2 second layer in place of AlexNet's 11x11/4 and 5x5/1, one tower
  (no groups), LRN after the first two pooled layers. Input 3x224x224.

All three: features -> AdaptiveAvgPool2d((6, 6)) -> classifier (dropout, 4096, dropout, 4096,
num_classes). The pool is the identity at the documented input sizes.
"""

from juanji import nn
from juanji.models.validation import check_model_args


def _classifier(num_classes, dropout):
    """torchvision's head: Dropout, FC 9216->4096, ReLU, Dropout, FC, ReLU, FC (keys 1, 4, 6)."""
    return nn.Sequential(
        nn.Dropout(p=dropout),
        nn.Linear(256 * 6 * 6, 4096),
        nn.ReLU(inplace=True),
        nn.Dropout(p=dropout),
        nn.Linear(4096, 4096),
        nn.ReLU(inplace=True),
        nn.Linear(4096, num_classes),
    )


def _lrn():
    """The paper's response normalisation: k=2, n=5, alpha=1e-4, beta=0.75."""
    return nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0)


class AlexNet(nn.Module):
    """features -> AdaptiveAvgPool2d((6, 6)) -> classifier; (N, C, H, W) -> (N, num_classes).

    `features` is any trunk ending in 256 channels; the factories below build the three variants.
    """

    def __init__(self, features, num_classes=1000, dropout=0.5):
        super().__init__()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = _classifier(num_classes, dropout)

    def forward(self, x):
        x = self.avgpool(self.features(x))  # (N, 256, 6, 6)
        return self.classifier(x.flatten(1))  # (N, num_classes)


def alexnet(num_classes=1000, in_channels=3, dropout=0.5):
    """torchvision's AlexNet (61,100,840 parameters at 1000 classes); input (N, C, 224, 224).

    Keys: features.{0,3,6,8,10}, classifier.{1,4,6}.
    """
    check_model_args(num_classes, in_channels)
    features = nn.Sequential(
        nn.Conv2d(in_channels, 64, kernel_size=11, stride=4, padding=2),  # (N, 64, 55, 55)
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),  # (N, 64, 27, 27)
        nn.Conv2d(64, 192, kernel_size=5, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),  # (N, 192, 13, 13)
        nn.Conv2d(192, 384, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),  # (N, 256, 6, 6)
    )
    return AlexNet(features, num_classes, dropout)


def alexnet_lrn(num_classes=1000, in_channels=3, dropout=0.5, groups=2):
    """The 2012 paper's AlexNet with LRN; input (N, C, 227, 227).

    `groups=2` reproduces the two-GPU split (60,965,224 parameters at 1000 classes);
    `groups=1` gives the single-tower network with the same widths.
    """
    check_model_args(num_classes, in_channels)
    if groups not in (1, 2):
        raise ValueError(f"groups must be 1 (one tower) or 2 (the paper's two GPUs); "
                         f"got {groups!r}")
    features = nn.Sequential(
        nn.Conv2d(in_channels, 96, kernel_size=11, stride=4),  # (N, 96, 55, 55)
        nn.ReLU(inplace=True),
        _lrn(),
        nn.MaxPool2d(kernel_size=3, stride=2),  # (N, 96, 27, 27)
        nn.Conv2d(96, 256, kernel_size=5, padding=2, groups=groups),
        nn.ReLU(inplace=True),
        _lrn(),
        nn.MaxPool2d(kernel_size=3, stride=2),  # (N, 256, 13, 13)
        nn.Conv2d(256, 384, kernel_size=3, padding=1),  # the layer that crosses GPUs
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 384, kernel_size=3, padding=1, groups=groups),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, kernel_size=3, padding=1, groups=groups),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),  # (N, 256, 6, 6)
    )
    return AlexNet(features, num_classes, dropout)


def zfnet(num_classes=1000, in_channels=3, dropout=0.5):
    """ZFNet (Zeiler & Fergus's Figure 3 architecture); input (N, C, 224, 224).

    224 -> conv 7x7/2 (pad 1) 110 -> pool 3x3/2 (pad 1) 55 -> conv 5x5/2 26 -> pool 13 ->
    three 3x3 convs (384, 384, 256) -> pool 6.
    """
    check_model_args(num_classes, in_channels)
    features = nn.Sequential(
        nn.Conv2d(in_channels, 96, kernel_size=7, stride=2, padding=1),  # (N, 96, 110, 110)
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),  # (N, 96, 55, 55)
        _lrn(),
        nn.Conv2d(96, 256, kernel_size=5, stride=2),  # (N, 256, 26, 26)
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),  # (N, 256, 13, 13)
        _lrn(),
        nn.Conv2d(256, 384, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 384, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),  # (N, 256, 6, 6)
    )
    return AlexNet(features, num_classes, dropout)


FACTORIES = {"alexnet": alexnet, "alexnet_lrn": alexnet_lrn, "zfnet": zfnet}
DEFAULT_INPUT = {
    "alexnet": (3, 224, 224),
    "alexnet_lrn": (3, 227, 227),
    "zfnet": (3, 224, 224),
}
