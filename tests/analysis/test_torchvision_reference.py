"""Zoo models against torchvision's published parameter counts and multiply-adds.

The reference (data/torchvision_models.json, a copy of the project's reference file) gives,
per model, torchvision's parameter count and its "GFLOPS", which are GMACs: multiply-adds of
conv / linear layers only, eval mode, batch 1, at the listed input. juanji's summary counts
under the same convention, so both totals must agree exactly (tolerance 0): a difference
means an architecture differs, not a rounding. Every model in juanji.models.MODELS that the
reference lists is tested; the ones that take long to trace on two CPU cores are marked slow.
"""

import json
from pathlib import Path

import pytest

from juanji.analysis import summary
from juanji.models import MODELS

REFERENCE = json.loads((Path(__file__).parent / "data" / "torchvision_models.json").read_text())
NAMES = sorted(set(MODELS) & set(REFERENCE))
# building and tracing is a real forward in NumPy (ResNet-152 takes ~7 s on two cores, VGG
# holds 550 MB of weights): the default run keeps the models under 3 GMACs and 50 M weights
HEAVY = {name for name in NAMES
         if REFERENCE[name]["macs"] > 3e9 or REFERENCE[name]["num_params"] > 5e7}


def params_expected(name, model):
    """torchvision's count for the same set of heads (auxiliary classifiers or not)."""
    ref = REFERENCE[name]
    has_aux = any("aux" in n.lower() for n, _ in model.named_modules())
    if "aux_heads_in_num_params" not in ref:
        return ref["num_params"]
    if has_aux == ref["aux_heads_in_num_params"]:
        return ref["num_params"]
    return ref["num_params_with_aux"] if has_aux else ref["num_params_without_aux"]


def cases():
    return [pytest.param(name, marks=[pytest.mark.slow] if name in HEAVY else [])
            for name in NAMES]


def test_reference_covers_the_required_models():
    assert {"resnet18", "vgg16", "mobilenet_v2", "alexnet"} <= set(REFERENCE)


@pytest.mark.parametrize("name", cases())
def test_parameter_totals_equal_torchvision(name, build_fast):
    model = build_fast(name, num_classes=1000, in_channels=3)
    total = sum(p.numel() for p in model.parameters())
    assert total == params_expected(name, model)


@pytest.mark.parametrize("name", cases())
def test_macs_equal_torchvision(name, build_fast):
    ref = REFERENCE[name]
    model = build_fast(name, num_classes=1000, in_channels=3)
    s = summary(model, tuple(ref["input"]))
    assert s.uncounted == [], f"{name}: layers not counted: {s.uncounted}"
    assert s.totals["macs"] == ref["macs"]
