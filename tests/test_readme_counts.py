"""The counts the README states are computed here from the code, so they cannot drift."""

import inspect
import re
from pathlib import Path

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def classes_in(module, base):
    return sorted(name for name, obj in vars(module).items()
                  if inspect.isclass(obj) and obj.__module__ == module.__name__
                  and issubclass(obj, base) and not name.startswith("_"))


def test_loss_count():
    from juanji.nn.layers import loss
    from juanji.nn.module import Module

    count = len(classes_in(loss, Module))
    assert count == 12
    assert f"{count} losses" in README


def test_scheduler_count():
    from juanji.optim import cyclic, lr_scheduler, plateau
    from juanji.optim.scheduler import LRScheduler

    names = set()
    for module in (lr_scheduler, cyclic, plateau):
        names |= set(classes_in(module, LRScheduler))
    assert f"{len(names)} schedulers" in README, sorted(names)


def test_model_count():
    from juanji.models import MODELS

    assert re.search(rf"\({len(MODELS)} models, LeNet to U-Net\)", README)


def test_feature_maps_default_is_described_as_it_is():
    import numpy as np

    from juanji.models import MODELS
    from juanji.nn import Conv2d
    from juanji.viz.features import feature_maps

    model = MODELS["simple_convnet"]()
    maps = feature_maps(model, np.zeros((1, 28, 28), np.float32))
    modules = dict(model.named_modules())
    assert maps and all(isinstance(modules[name], Conv2d) for name in maps)  # convs only
    assert "after every conv layer (or the layers named)" in README


def test_catalogue_counts():
    from collections import Counter

    from reliability.catalogue import CASES

    per_area = Counter(case.area for case in CASES)
    names = {"api": "API", "cli": "command line", "data": "data files", "images": "images",
             "checkpoints": "checkpoints"}
    assert f"{len(CASES)} cases (" in README
    for area, count in per_area.items():
        assert f"{names[area]} {count}" in README, area


def test_onnx_op_count():
    import juanji.onnx

    assert f"{len(juanji.onnx.SUPPORTED_OPS)} ops over opsets 7-21" in README
