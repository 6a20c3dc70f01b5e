"""The zoo's structure: parameter counts equal torchvision's (and the papers'), state_dict keys
equal torchvision's hand-derived key lists, factories validate their arguments.

Only shapes matter here, so the `skip_init` fixture leaves weights unfilled: building all of
VGG takes milliseconds instead of a minute.
"""

import json
import re
from pathlib import Path

import pytest
import torchvision_keys

from juanji.models import (
    FAMILIES,
    alexnet,
    fcn,
    googlenet,
    inception,
    metric,
    mobilenet,
    resnet,
    senet,
    shufflenet,
    unet,
    vgg,
)
from juanji.models import MODELS as ALL

# the shared reference table, copied into the repository
REFERENCE_FILE = Path(__file__).parents[1] / "analysis" / "data" / "torchvision_models.json"

# the parameter counts of torchvision_models.json, written out so each test reads as a number
TORCHVISION_PARAMS = {
    "alexnet": 61100840, "vgg11": 132863336, "vgg11_bn": 132868840, "vgg13": 133047848,
    "vgg13_bn": 133053736, "vgg16": 138357544, "vgg16_bn": 138365992, "vgg19": 143667240,
    "vgg19_bn": 143678248, "resnet18": 11689512, "resnet34": 21797672, "resnet50": 25557032,
    "resnet101": 44549160, "resnet152": 60192808, "wide_resnet50_2": 68883240,
    "resnext50_32x4d": 25028904, "googlenet": 6624904, "inception_v3": 27161264,
    "densenet121": 7978856, "densenet161": 28681000, "densenet169": 14149480,
    "densenet201": 20013928, "mobilenet_v2": 3504872, "mobilenet_v3_large": 5483032,
    "mobilenet_v3_small": 2542856, "shufflenet_v2_x0_5": 1366792, "shufflenet_v2_x1_0": 2278604,
    "shufflenet_v2_x1_5": 3503624, "shufflenet_v2_x2_0": 7393996, "squeezenet1_0": 1248424,
    "squeezenet1_1": 1235496,
}


def count(model):
    return sum(p.numel() for p in model.parameters())


def test_reference_table_matches_the_shared_json():
    reference = json.loads(REFERENCE_FILE.read_text())
    for name, n in TORCHVISION_PARAMS.items():
        assert reference[name]["num_params"] == n, name


@pytest.mark.parametrize("name", sorted(TORCHVISION_PARAMS))
def test_parameter_count_equals_torchvision(name, skip_init):
    assert count(ALL[name]()) == TORCHVISION_PARAMS[name]


@pytest.mark.parametrize("name", sorted(torchvision_keys.EXPECTED_KEYS))
def test_state_dict_keys_equal_torchvision(name, skip_init):
    expected = torchvision_keys.EXPECTED_KEYS[name]()
    assert len(expected) == len(set(expected)), "the hand-derived key list repeats a key"
    got = list(ALL[name]().state_dict())
    assert len(got) == len(set(got))
    assert set(got) == set(expected), (
        f"missing {sorted(set(expected) - set(got))[:5]}, "
        f"unexpected {sorted(set(got) - set(expected))[:5]}"
    )


def test_resnet18_keys_and_shapes_by_hand(skip_init):
    """One block spelled out: torchvision's layer2.0 (64 -> 128, stride 2, projection)."""
    sd = resnet.resnet18().state_dict()
    bn = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    block = (["layer2.0.conv1.weight"] + [f"layer2.0.bn1.{k}" for k in bn]
             + ["layer2.0.conv2.weight"] + [f"layer2.0.bn2.{k}" for k in bn]
             + ["layer2.0.downsample.0.weight"] + [f"layer2.0.downsample.1.{k}" for k in bn])
    assert [k for k in sd if k.startswith("layer2.0.")] == block
    assert sd["conv1.weight"].shape == (64, 3, 7, 7)
    assert sd["layer2.0.conv1.weight"].shape == (128, 64, 3, 3)
    assert sd["layer2.0.downsample.0.weight"].shape == (128, 64, 1, 1)
    assert sd["fc.weight"].shape == (1000, 512)
    assert not any(k.startswith("layer1.0.downsample") for k in sd)


def test_googlenet_aux_heads_count(skip_init):
    # torchvision_models.json: 13,004,888 with the two auxiliary heads
    model = googlenet.googlenet(aux_logits=True)
    assert count(model) == 13004888
    assert set(model.state_dict()) == set(torchvision_keys.googlenet(aux_logits=True))


def test_inception_v3_without_aux_count(skip_init):
    # torchvision_models.json: 23,834,568 without the auxiliary head
    model = inception.inception_v3(aux_logits=False)
    assert count(model) == 23834568
    assert set(model.state_dict()) == set(torchvision_keys.inception_v3(aux_logits=False))


def test_key_naming_patterns(skip_init):
    """Spot checks of torchvision's naming, one per family."""
    checks = {
        "alexnet": ["features.0.weight", "classifier.1.weight", "classifier.6.bias"],
        "vgg16_bn": ["features.1.running_var", "classifier.6.weight"],
        "resnet50": ["layer1.0.downsample.0.weight", "layer4.2.bn3.num_batches_tracked"],
        "densenet121": ["features.denseblock4.denselayer16.conv2.weight",
                        "features.transition3.conv.weight", "features.norm5.bias"],
        "mobilenet_v2": ["features.1.conv.0.0.weight", "features.2.conv.3.running_mean"],
        "mobilenet_v3_small": ["features.1.block.1.fc1.weight", "classifier.3.weight"],
        "shufflenet_v2_x1_0": ["stage2.0.branch1.2.weight", "stage4.3.branch2.5.weight"],
        "squeezenet1_1": ["features.12.expand3x3.bias", "classifier.1.weight"],
        "googlenet": ["inception5b.branch4.1.bn.running_mean", "conv1.conv.weight"],
        "inception_v3": ["Mixed_7c.branch3x3dbl_3b.conv.weight", "AuxLogits.fc.weight"],
    }
    for name, keys in checks.items():
        sd = ALL[name]().state_dict()
        for key in keys:
            assert key in sd, f"{name} lacks {key}"


# Counts of the models torchvision does not have, derived by hand from the papers' tables.
def _cifar_resnet_params(n, classes=10):
    """3x3 stem 16, three stages of n basic blocks (16, 32, 64), option-A shortcuts, fc."""
    total = 3 * 16 * 9 + 2 * 16  # stem conv + BN
    cin = 16
    for width in (16, 32, 64):
        for _ in range(n):
            total += cin * width * 9 + 2 * width + width * width * 9 + 2 * width
            cin = width
    return total + 64 * classes + classes


def _alexnet_paper_params(groups):
    convs = [(3, 96, 11, 1), (96, 256, 5, groups), (256, 384, 3, 1), (384, 384, 3, groups),
             (384, 256, 3, groups)]
    total = sum(cin // g * cout * k * k + cout for cin, cout, k, g in convs)
    return total + 9216 * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 1000 + 1000


def _mobilenet_v1_params():
    widths = [32, 64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024]
    total = 3 * 32 * 9 + 2 * 32
    for cin, cout in zip(widths, widths[1:]):
        total += cin * 9 + 2 * cin + cin * cout + 2 * cout  # depthwise + BN, pointwise + BN
    return total + 1024 * 1000 + 1000


PAPER_PARAMS = {
    "resnet20": _cifar_resnet_params(3),  # the paper's "0.27M"
    "resnet32": _cifar_resnet_params(5),  # 0.46M
    "resnet44": _cifar_resnet_params(7),  # 0.66M
    "resnet56": _cifar_resnet_params(9),  # 0.85M
    "resnet110": _cifar_resnet_params(18),  # 1.7M
    "alexnet_lrn": _alexnet_paper_params(2),  # "60 million parameters"
    "mobilenet_v1": _mobilenet_v1_params(),  # Table 1: 4.2M
}
PAPER_MILLIONS = {"resnet20": 0.27, "resnet32": 0.46, "resnet44": 0.66, "resnet56": 0.85,
                  "resnet110": 1.7, "alexnet_lrn": 60.0, "mobilenet_v1": 4.2}


@pytest.mark.parametrize("name", sorted(PAPER_PARAMS))
def test_parameter_count_equals_the_paper(name, skip_init):
    n = count(ALL[name]())
    assert n == PAPER_PARAMS[name]
    assert abs(n / 1e6 - PAPER_MILLIONS[name]) < 0.02 * PAPER_MILLIONS[name]


def test_other_counts(skip_init):
    # SE-ResNet-50: the SE paper's Table 1 gives 28.09M (ours: conv gates with biases, r=16)
    assert round(count(senet.se_resnet50()) / 1e6, 2) == 28.09
    # SE adds 2 C^2 / r + C + C/r per block over resnet50
    assert count(senet.se_resnet18()) - count(resnet.resnet18()) == sum(
        2 * c * (c // 16) + c + c // 16 for c in [64] * 2 + [128] * 2 + [256] * 2 + [512] * 2)
    # ShuffleNet v1 1x (g=3): the authors' release reports 1.9M
    assert round(count(shufflenet.shufflenet_v1()) / 1e6, 1) == 1.9
    # U-Net (width 64, depth 4, 2 classes): ~31M, as in the paper's network
    assert round(count(unet.unet(batch_norm=False)) / 1e6) == 31
    # ZFNet: AlexNet's classifier, 7x7/2 first layer, one tower
    convs = [(3, 96, 7), (96, 256, 5), (256, 384, 3), (384, 384, 3), (384, 256, 3)]
    zf = sum(i * o * k * k + o for i, o, k in convs) + 9216 * 4096 + 4096 + 4096 * 4096 + 4096
    assert count(alexnet.zfnet()) == zf + 4096 * 1000 + 1000


def test_fcn_keys_extend_vgg16_features(skip_init):
    trunk = {k for k in vgg.vgg16().state_dict() if k.startswith("features.")}
    heads = {
        "fcn32s": {"fc6", "fc7", "score_fr", "upscore"},
        "fcn16s": {"fc6", "fc7", "score_fr", "score_pool4", "upscore2", "upscore"},
        "fcn8s": {"fc6", "fc7", "score_fr", "score_pool4", "score_pool3", "upscore2",
                  "upscore_pool4", "upscore"},
    }
    for name, modules in heads.items():
        keys = set(fcn.FACTORIES[name]().state_dict())
        assert {k for k in keys if k.startswith("features.")} == trunk
        assert {k.split(".")[0] for k in keys} - {"features"} == modules


# ---- registry and argument checks ------------------------------------------------------------

def test_factories_and_default_inputs_agree():
    for family in FAMILIES:
        assert set(family.FACTORIES) == set(family.DEFAULT_INPUT), family.__name__
        for name, shape in family.DEFAULT_INPUT.items():
            assert len(shape) == 3 and all(isinstance(s, int) and s > 0 for s in shape), name
    names = [n for family in FAMILIES for n in family.FACTORIES]
    assert len(names) == len(set(names)), "a model name is registered twice"


@pytest.mark.parametrize("name", sorted(ALL))
def test_factories_validate_num_classes_and_in_channels(name, skip_init):
    for bad in (0, -3, 2.5, "10", True):
        with pytest.raises(ValueError, match=r"num_classes must be a positive int"):
            ALL[name](num_classes=bad)
    with pytest.raises(ValueError, match=re.escape("in_channels must be a positive int; got 0")):
        ALL[name](in_channels=0)


@pytest.mark.parametrize("name", sorted(ALL))
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # unfilled weights
def test_factories_honour_num_classes_and_in_channels(name, skip_init):
    model = ALL[name](num_classes=7, in_channels=2)
    params = list(model.named_parameters())
    first = next(p for k, p in params if p.ndim == 4)
    assert first.shape[1] == 2, f"{name}: the first conv should read 2 channels"
    last = [p for k, p in params if p.ndim >= 2 and not k.startswith(("aux", "AuxLogits"))][-1]
    # the classifier / embedding head / score layer or transposed conv ends in 7 outputs
    assert 7 in last.shape[:2], f"{name}: last weight {last.shape} has no 7-wide axis"


def test_knob_errors_name_the_parameter(skip_init):
    cases = [
        (lambda: vgg.vgg(12), "depth must be one of [11, 13, 16, 19]"),
        (lambda: resnet.cifar_resnet(21), "depth must be one of [20, 32, 44, 56, 110]"),
        (lambda: resnet.ResNet("basic", [2, 2], widths=(64, 128, 256)), "layers must give"),
        (lambda: resnet.ResNet("bottle", [1]), "block must be one of"),
        (lambda: resnet.ResNet("basic", [1], widths=(8,), shortcut="C"), "shortcut must be"),
        (lambda: mobilenet.mobilenet_v2(width_mult=0), "width_mult must be a positive"),
        (lambda: shufflenet.shufflenet_v1(groups=5), "groups must be one of [1, 2, 3, 4, 8]"),
        (lambda: unet.unet(depth=0), "depth must be a positive int"),
        (lambda: unet.unet(width=2.5), "width must be a positive int"),
        (lambda: alexnet.alexnet_lrn(groups=3), "groups must be 1"),
        (lambda: fcn.fcn8s(fc_channels=0), "fc_channels must be a positive int"),
        (lambda: metric.siamese(backbone="resnet18"), "backbone must be an nn.Module"),
        (lambda: metric.siamese(embedding_dim=8, num_classes=9), "disagree"),
    ]
    for build, message in cases:
        with pytest.raises(ValueError, match=re.escape(message)):
            build()
