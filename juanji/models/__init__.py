"""The model zoo: one family per module, each listing FACTORIES and DEFAULT_INPUT.

MODELS maps a name to a factory `f(num_classes=..., in_channels=..., ...)`; DEFAULT_INPUTS maps
it to the (C, H, W) input the model is documented for. Both are built explicitly below.
"""

from juanji.models import (
    alexnet,
    densenet,
    fcn,
    googlenet,
    inception,
    lenet,
    metric,
    mobilenet,
    resnet,
    senet,
    shufflenet,
    simple,
    squeezenet,
    unet,
    vgg,
)
from juanji.models.lenet import lenet5
from juanji.models.simple import simple_convnet

FAMILIES = [simple, lenet, alexnet, vgg, resnet, senet, googlenet, inception, densenet,
             mobilenet, shufflenet, squeezenet, fcn, unet, metric]

MODELS = {name: f for family in FAMILIES for name, f in family.FACTORIES.items()}
DEFAULT_INPUTS = {name: s for family in FAMILIES for name, s in family.DEFAULT_INPUT.items()}


def create_model(name, **kwargs):
    """Build a registered model by name; unknown names list what exists."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(sorted(MODELS))}")
    return MODELS[name](**kwargs)


__all__ = ["DEFAULT_INPUTS", "FAMILIES", "MODELS", "create_model", "lenet5", "simple_convnet"]
