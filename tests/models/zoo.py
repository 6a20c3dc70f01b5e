"""Every model-zoo family and factory by name, for the tests (juanji.models.MODELS is the
lead's registry; this list lets the zoo tests run before and independently of it)."""

from juanji.models import (
    alexnet,
    densenet,
    fcn,
    googlenet,
    inception,
    metric,
    mobilenet,
    resnet,
    senet,
    shufflenet,
    squeezenet,
    unet,
    vgg,
)

FAMILIES = [alexnet, vgg, resnet, senet, googlenet, inception, densenet, mobilenet, shufflenet,
            squeezenet, fcn, unet, metric]
ALL = {name: f for family in FAMILIES for name, f in family.FACTORIES.items()}
