"""torchvision's state_dict key lists, derived by hand from its architectures.

Each function below spells out the keys its model's `state_dict()` has, layer by layer, from
the architecture tables (written independently of juanji's model code: templates over names
and indices, no modules). Together with the exact parameter counts of `torchvision_models.json`
this pins both the naming and the sizes a strict `load_state_dict` needs, for every depth and
width of each family, without building torchvision's models; test_torchvision_parity.py loads
torchvision's own state_dicts (strict) for one configuration per family and compares outputs.
"""

BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def bn(prefix):
    return [f"{prefix}.{name}" for name in BN]


def conv(prefix, bias=False):
    return [f"{prefix}.weight"] + ([f"{prefix}.bias"] if bias else [])


def linear(prefix):
    return [f"{prefix}.weight", f"{prefix}.bias"]


def basic_conv(prefix):
    """googlenet / inception BasicConv2d: conv (no bias) + bn."""
    return conv(f"{prefix}.conv") + bn(f"{prefix}.bn")


# ---- AlexNet, VGG ----------------------------------------------------------------------------

def alexnet():
    keys = []
    for i in (0, 3, 6, 8, 10):
        keys += conv(f"features.{i}", bias=True)
    for i in (1, 4, 6):
        keys += linear(f"classifier.{i}")
    return keys


VGG_WIDTHS = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M"] + [256] * 3 + ["M"] + [512] * 3 + ["M"] + [512] * 3 + ["M"],
    19: [64, 64, "M", 128, 128, "M"] + [256] * 4 + ["M"] + [512] * 4 + ["M"] + [512] * 4 + ["M"],
}


def vgg(depth, batch_norm):
    keys, index = [], 0
    for item in VGG_WIDTHS[depth]:
        if item == "M":
            index += 1  # the pool
            continue
        keys += conv(f"features.{index}", bias=True)
        if batch_norm:
            keys += bn(f"features.{index + 1}")
        index += 3 if batch_norm else 2  # conv, [bn,] relu
    for i in (0, 3, 6):
        keys += linear(f"classifier.{i}")
    return keys


# ---- ResNet family ---------------------------------------------------------------------------

RESNET_BLOCKS = {18: ("basic", [2, 2, 2, 2]), 34: ("basic", [3, 4, 6, 3]),
                 50: ("bottleneck", [3, 4, 6, 3]), 101: ("bottleneck", [3, 4, 23, 3]),
                 152: ("bottleneck", [3, 8, 36, 3])}


def resnet(depth):
    block, counts = RESNET_BLOCKS[depth]
    convs = 2 if block == "basic" else 3
    keys = conv("conv1") + bn("bn1")
    for stage, count in enumerate(counts, start=1):
        for j in range(count):
            prefix = f"layer{stage}.{j}"
            for c in range(1, convs + 1):
                keys += conv(f"{prefix}.conv{c}") + bn(f"{prefix}.bn{c}")
            # a projection wherever the shape changes: every stage's first block except
            # the first stage of the basic-block nets (64 -> 64 at stride 1)
            if j == 0 and (stage > 1 or block == "bottleneck"):
                keys += conv(f"{prefix}.downsample.0") + bn(f"{prefix}.downsample.1")
    return keys + linear("fc")


# ---- GoogLeNet, Inception v3 -----------------------------------------------------------------

def googlenet(aux_logits=False):
    keys = basic_conv("conv1") + basic_conv("conv2") + basic_conv("conv3")
    for name in ("3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b"):
        prefix = f"inception{name}"
        keys += basic_conv(f"{prefix}.branch1")
        keys += basic_conv(f"{prefix}.branch2.0") + basic_conv(f"{prefix}.branch2.1")
        keys += basic_conv(f"{prefix}.branch3.0") + basic_conv(f"{prefix}.branch3.1")
        keys += basic_conv(f"{prefix}.branch4.1")  # branch4.0 is the max-pool
    if aux_logits:
        for aux in ("aux1", "aux2"):
            keys += basic_conv(f"{aux}.conv") + linear(f"{aux}.fc1") + linear(f"{aux}.fc2")
    return keys + linear("fc")


INCEPTION_V3_CONVS = {
    "A": ["branch1x1", "branch5x5_1", "branch5x5_2", "branch3x3dbl_1", "branch3x3dbl_2",
          "branch3x3dbl_3", "branch_pool"],
    "B": ["branch3x3", "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"],
    "C": ["branch1x1", "branch7x7_1", "branch7x7_2", "branch7x7_3"]
         + [f"branch7x7dbl_{i}" for i in range(1, 6)] + ["branch_pool"],
    "D": ["branch3x3_1", "branch3x3_2"] + [f"branch7x7x3_{i}" for i in range(1, 5)],
    "E": ["branch1x1", "branch3x3_1", "branch3x3_2a", "branch3x3_2b", "branch3x3dbl_1",
          "branch3x3dbl_2", "branch3x3dbl_3a", "branch3x3dbl_3b", "branch_pool"],
}
INCEPTION_V3_MIXED = [("Mixed_5b", "A"), ("Mixed_5c", "A"), ("Mixed_5d", "A"), ("Mixed_6a", "B"),
                      ("Mixed_6b", "C"), ("Mixed_6c", "C"), ("Mixed_6d", "C"), ("Mixed_6e", "C"),
                      ("Mixed_7a", "D"), ("Mixed_7b", "E"), ("Mixed_7c", "E")]


def inception_v3(aux_logits=True):
    keys = []
    for name in ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1",
                 "Conv2d_4a_3x3"):
        keys += basic_conv(name)
    for name, kind in INCEPTION_V3_MIXED:
        for branch in INCEPTION_V3_CONVS[kind]:
            keys += basic_conv(f"{name}.{branch}")
    if aux_logits:
        keys += basic_conv("AuxLogits.conv0") + basic_conv("AuxLogits.conv1")
        keys += linear("AuxLogits.fc")
    return keys + linear("fc")


# ---- DenseNet --------------------------------------------------------------------------------

DENSENET_BLOCKS = {121: (6, 12, 24, 16), 161: (6, 12, 36, 24), 169: (6, 12, 32, 32),
                   201: (6, 12, 48, 32)}


def densenet(depth):
    keys = conv("features.conv0") + bn("features.norm0")
    blocks = DENSENET_BLOCKS[depth]
    for b, layers in enumerate(blocks, start=1):
        for layer in range(1, layers + 1):
            prefix = f"features.denseblock{b}.denselayer{layer}"
            keys += bn(f"{prefix}.norm1") + conv(f"{prefix}.conv1")
            keys += bn(f"{prefix}.norm2") + conv(f"{prefix}.conv2")
        if b < len(blocks):
            keys += bn(f"features.transition{b}.norm") + conv(f"features.transition{b}.conv")
    return keys + bn("features.norm5") + linear("classifier")


# ---- MobileNets ------------------------------------------------------------------------------

def mobilenet_v2():
    keys = conv("features.0.0") + bn("features.0.1")
    # 17 inverted residuals; only the first (t = 1) has no expansion conv
    for i in range(1, 18):
        p = f"features.{i}.conv"
        if i == 1:
            keys += conv(f"{p}.0.0") + bn(f"{p}.0.1") + conv(f"{p}.1") + bn(f"{p}.2")
        else:
            keys += conv(f"{p}.0.0") + bn(f"{p}.0.1") + conv(f"{p}.1.0") + bn(f"{p}.1.1")
            keys += conv(f"{p}.2") + bn(f"{p}.3")
    keys += conv("features.18.0") + bn("features.18.1")
    return keys + linear("classifier.1")


# (expanded channels differ from input channels, SE) per block, from the paper's tables
MOBILENET_V3_BLOCKS = {
    "large": [(False, False), (True, False), (True, False), (True, True), (True, True),
              (True, True), (True, False), (True, False), (True, False), (True, False),
              (True, True), (True, True), (True, True), (True, True), (True, True)],
    "small": [(False, True), (True, False), (True, False), (True, True), (True, True),
              (True, True), (True, True), (True, True), (True, True), (True, True),
              (True, True)],
}


def mobilenet_v3(mode):
    keys = conv("features.0.0") + bn("features.0.1")
    blocks = MOBILENET_V3_BLOCKS[mode]
    for i, (expands, se) in enumerate(blocks, start=1):
        j = 0
        if expands:
            keys += conv(f"features.{i}.block.0.0") + bn(f"features.{i}.block.0.1")
            j = 1
        keys += conv(f"features.{i}.block.{j}.0") + bn(f"features.{i}.block.{j}.1")
        j += 1
        if se:
            keys += conv(f"features.{i}.block.{j}.fc1", bias=True)
            keys += conv(f"features.{i}.block.{j}.fc2", bias=True)
            j += 1
        keys += conv(f"features.{i}.block.{j}.0") + bn(f"features.{i}.block.{j}.1")
    last = len(blocks) + 1
    keys += conv(f"features.{last}.0") + bn(f"features.{last}.1")
    return keys + linear("classifier.0") + linear("classifier.3")


# ---- ShuffleNet v2, SqueezeNet ---------------------------------------------------------------

def shufflenet_v2():
    keys = conv("conv1.0") + bn("conv1.1")
    for stage, repeats in zip((2, 3, 4), (4, 8, 4)):
        for j in range(repeats):
            p = f"stage{stage}.{j}"
            if j == 0:
                keys += conv(f"{p}.branch1.0") + bn(f"{p}.branch1.1")
                keys += conv(f"{p}.branch1.2") + bn(f"{p}.branch1.3")
            for c, b in ((0, 1), (3, 4), (5, 6)):
                keys += conv(f"{p}.branch2.{c}") + bn(f"{p}.branch2.{b}")
    return keys + conv("conv5.0") + bn("conv5.1") + linear("fc")


SQUEEZENET_FIRES = {"1_0": [3, 4, 5, 7, 8, 9, 10, 12], "1_1": [3, 4, 6, 7, 9, 10, 11, 12]}


def squeezenet(version):
    keys = conv("features.0", bias=True)
    for i in SQUEEZENET_FIRES[version]:
        for part in ("squeeze", "expand1x1", "expand3x3"):
            keys += conv(f"features.{i}.{part}", bias=True)
    return keys + conv("classifier.1", bias=True)


EXPECTED_KEYS = {
    "alexnet": alexnet,
    **{f"vgg{d}": (lambda d=d: vgg(d, False)) for d in VGG_WIDTHS},
    **{f"vgg{d}_bn": (lambda d=d: vgg(d, True)) for d in VGG_WIDTHS},
    **{f"resnet{d}": (lambda d=d: resnet(d)) for d in RESNET_BLOCKS},
    "resnext50_32x4d": lambda: resnet(50),
    "wide_resnet50_2": lambda: resnet(50),
    "googlenet": googlenet,
    "inception_v3": inception_v3,
    **{f"densenet{d}": (lambda d=d: densenet(d)) for d in DENSENET_BLOCKS},
    "mobilenet_v2": mobilenet_v2,
    "mobilenet_v3_large": lambda: mobilenet_v3("large"),
    "mobilenet_v3_small": lambda: mobilenet_v3("small"),
    **{f"shufflenet_v2_{w}": shufflenet_v2 for w in ("x0_5", "x1_0", "x1_5", "x2_0")},
    "squeezenet1_0": lambda: squeezenet("1_0"),
    "squeezenet1_1": lambda: squeezenet("1_1"),
}
