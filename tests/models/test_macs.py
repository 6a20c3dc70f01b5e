"""Multiply-adds at torchvision's input size equal torchvision's (torchvision_models.json:
conv / linear MACs, eval mode, batch 1, auxiliary heads excluded).

Parameter counts pin the weights; MACs also pin every spatial size (strides, paddings,
ceil_mode pools), so an off-by-one in the geometry shows up here. MACs are counted by forward
hooks on Conv2d and Linear: output elements per sample times the weights each one reads.
"""

import json

import numpy as np
import pytest

import juanji
from juanji import nn
from juanji.models import MODELS as ALL

TORCHVISION_MACS = {
    "alexnet": 714188480, "vgg11": 7609090048, "vgg11_bn": 7609090048, "vgg13": 11308466176,
    "vgg13_bn": 11308466176, "vgg16": 15470264320, "vgg16_bn": 15470264320,
    "vgg19": 19632062464, "vgg19_bn": 19632062464, "resnet18": 1814073344,
    "resnet34": 3663761408, "resnet50": 4089184256, "resnet101": 7801405440,
    "resnet152": 11513626624, "wide_resnet50_2": 11398021120, "resnext50_32x4d": 4230479872,
    "googlenet": 1498376192, "inception_v3": 5713216096, "densenet121": 2834161664,
    "densenet161": 7727907072, "densenet169": 3359843328, "densenet201": 4291365888,
    "mobilenet_v2": 300774272, "mobilenet_v3_large": 216589760, "mobilenet_v3_small": 56510400,
    "shufflenet_v2_x0_5": 40476448, "shufflenet_v2_x1_0": 144907992,
    "shufflenet_v2_x1_5": 295759392, "shufflenet_v2_x2_0": 583253464,
    "squeezenet1_0": 818924576, "squeezenet1_1": 349151936,
}
# under about 1.5 GMACs: a second or so each; the rest run with the slow tests
LIGHT = {"alexnet", "googlenet", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small",
         "shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "squeezenet1_0", "squeezenet1_1"}


def count_macs(model, input_shape):
    total = []

    def hook(module, inputs, out):
        per_sample = out.numel() // out.shape[0]
        if isinstance(module, nn.Conv2d):
            _, cin_per_group, kh, kw = module.weight.shape
            total.append(per_sample * cin_per_group * kh * kw)
        else:
            total.append(per_sample * module.in_features)

    for m in model.modules():
        if type(m) in (nn.Conv2d, nn.Linear):
            m.register_forward_hook(hook)
    model.eval()
    with juanji.no_grad():
        model(juanji.tensor(np.zeros((1,) + input_shape, np.float32)))
    return sum(total)


@pytest.fixture
def constant_init(monkeypatch):
    """Weights at a constant 0.01: the values do not matter, filling 100M of them randomly
    would."""
    from juanji.nn import init

    def fill(tensor, *args, **kwargs):
        tensor.data[...] = 0.01
        return tensor

    monkeypatch.setattr(init, "uniform_", fill)
    monkeypatch.setattr(init, "normal_", fill)


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=() if n in LIGHT else pytest.mark.slow) for n in TORCHVISION_MACS])
def test_macs_equal_torchvision(name, constant_init):
    kwargs = {"aux_logits": False} if name == "inception_v3" else {}
    shape = (3, 299, 299) if name == "inception_v3" else (3, 224, 224)
    assert count_macs(ALL[name](**kwargs), shape) == TORCHVISION_MACS[name]


def test_reference_table_matches_the_shared_json():
    from test_zoo_structure import REFERENCE_FILE

    reference = json.loads(REFERENCE_FILE.read_text())
    for name, macs in TORCHVISION_MACS.items():
        assert reference[name]["macs"] == macs, name


def test_mac_counter_by_hand():
    """The counter itself on a net small enough to count on paper: conv 3->4 3x3 on 8x8 with
    padding 1 (4*8*8 outputs x 27 weights) + linear 256 -> 10."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Flatten(), nn.Linear(256, 10))
    assert count_macs(model, (3, 8, 8)) == 4 * 64 * 27 + 2560
