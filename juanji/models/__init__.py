"""The model zoo: one family per module, each listing FACTORIES and DEFAULT_INPUT.

MODELS maps a name to a factory `f(num_classes=..., in_channels=..., ...)`; DEFAULT_INPUTS maps
it to the (C, H, W) input the model is documented for. Both are built explicitly below.
RECIPES maps some names to the training settings that model is known to do well with.
"""

from juanji.models import (
    alexnet,
    densenet,
    fashion_cnn,
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

FAMILIES = [simple, lenet, fashion_cnn, alexnet, vgg, resnet, senet, googlenet, inception, densenet,
             mobilenet, shufflenet, squeezenet, fcn, unet, metric]

MODELS = {name: f for family in FAMILIES for name, f in family.FACTORIES.items()}
DEFAULT_INPUTS = {name: s for family in FAMILIES for name, s in family.DEFAULT_INPUT.items()}


# Training defaults per model: `juanji train --model NAME` with no other flags uses these
# (keys are `juanji train` options; "augment" is a build_augmentation spec, "none" for none).
# lenet5's are the README's 3-epoch defaults (about 89% on Fashion-MNIST); fashion_cnn's reach
# 93.4% on the Fashion-MNIST test set (measurements in juanji/models/fashion_cnn.py).
RECIPES = {
    "lenet5": {"epochs": 3, "optimizer": "adam", "lr": 2e-3, "weight_decay": 0.0,
               "scheduler": "cosine", "batch_size": 64, "augment": "none"},
    "fashion_cnn": {"epochs": 10, "optimizer": "adam", "lr": 3e-3, "weight_decay": 0.0,
                    "scheduler": "onecycle", "batch_size": 128, "augment": "flip"},
}


def recipe(name):
    """A copy of the training recipe of model ``name``; {} when it has none."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(sorted(MODELS))}")
    return dict(RECIPES.get(name, {}))


def create_model(name, **kwargs):
    """Build a registered model by name; unknown names list what exists."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(sorted(MODELS))}")
    return MODELS[name](**kwargs)


__all__ = ["DEFAULT_INPUTS", "FAMILIES", "MODELS", "RECIPES", "create_model", "lenet5", "recipe",
           "simple_convnet"]
