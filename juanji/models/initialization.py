"""Weight initialisations shared by several model families."""

from juanji import nn


def he_fan_out_init_(model):
    """torchvision's VGG and MobileNet init: He-normal (fan_out) convolutions, N(0, 0.01)
    linear layers, zero biases, BatchNorm at weight 1 / bias 0."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)
