"""SE-ResNet (Hu, Shen & Sun, 2018, 'Squeeze-and-Excitation Networks').

The ResNet of resnet.py with a squeeze-and-excitation gate (reduction ratio r = 16) on the
residual branch of every block, just before the addition: global average pool, 1x1 conv to
C/r, ReLU, 1x1 conv back to C, sigmoid, channel-wise rescale. The gate is `nn.SqueezeExcitation`
(keys `layer{i}.{j}.se.fc1.*`, `.se.fc2.*`); everything else keeps ResNet's keys.
Input 3x224x224 (any size >= 1 runs).
"""

from juanji.models.resnet import IMAGENET_LAYERS, ResNet

SE_REDUCTION = 16


def se_resnet(depth, num_classes=1000, in_channels=3, reduction=SE_REDUCTION):
    """SE-ResNet-`depth` (18, 34, 50, 101 or 152) with reduction ratio `reduction`."""
    if depth not in IMAGENET_LAYERS:
        raise ValueError(f"depth must be one of {sorted(IMAGENET_LAYERS)} for SE-ResNet; "
                         f"got {depth!r}")
    if not isinstance(reduction, int) or reduction < 1:
        raise ValueError(f"reduction must be a positive int; got {reduction!r}")
    block, layers = IMAGENET_LAYERS[depth]
    return ResNet(block, layers, num_classes, in_channels, se_reduction=reduction)


def se_resnet18(num_classes=1000, in_channels=3, reduction=SE_REDUCTION):
    """SE-ResNet-18; input (N, C, 224, 224)."""
    return se_resnet(18, num_classes, in_channels, reduction)


def se_resnet50(num_classes=1000, in_channels=3, reduction=SE_REDUCTION):
    """SE-ResNet-50; input (N, C, 224, 224)."""
    return se_resnet(50, num_classes, in_channels, reduction)


FACTORIES = {"se_resnet18": se_resnet18, "se_resnet50": se_resnet50}
DEFAULT_INPUT = {name: (3, 224, 224) for name in FACTORIES}
