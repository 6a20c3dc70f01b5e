"""Receptive fields: hand-worked chains, VGG-16, LeNet-5, and a gradient oracle.

The oracle: back-propagate from one output unit to the input; the input pixels with a
non-zero gradient are exactly the unit's receptive field (clipped to the image) when every
weight and every input is positive (nothing cancels) and pooling is average pooling (max
pooling routes the gradient to one pixel per window).
"""

from fractions import Fraction

import numpy as np
import pytest

import juanji
import juanji.nn as nn
from juanji.analysis.receptive_field import (
    ReceptiveField,
    compose,
    compose_transposed,
    receptive_fields,
    walk,
)
from juanji.viz.receptive_field import clipped_box

RF0 = ReceptiveField.input()


def test_two_3x3_convs_see_5x5():
    rf = compose(compose(RF0, 3), 3)
    assert rf.size == (5, 5) and rf.jump == (1, 1)
    # no padding: output (0, 0) is centred on input pixel (2, 2)
    assert rf.start == (2, 2)
    padded = compose(compose(RF0, 3, padding=1), 3, padding=1)
    assert padded.size == (5, 5) and padded.start == (0, 0)


def test_conv_pool_conv_is_8x8():
    # conv3: r = 3, j = 1; pool 2 s2: r = 3 + (2-1)*1 = 4, j = 2; conv3: r = 4 + (3-1)*2 = 8
    fields = walk([{"kernel_size": 3}, {"kernel_size": 2, "stride": 2}, {"kernel_size": 3}])
    assert [f.size[0] for f in fields] == [3, 4, 8]
    assert [f.jump[0] for f in fields] == [1, 2, 2]
    # starts: 1; 1 + (1/2)*1 = 1.5; 1.5 + 1*2 = 3.5
    assert [f.start[0] for f in fields] == [1, Fraction(3, 2), Fraction(7, 2)]


def test_dilation_and_rectangular_kernels():
    # dilated 3x3 (d=2) spans 5; then d=4 adds (9-1)*1 = 8: 13
    assert compose(RF0, 3, dilation=2).size == (5, 5)
    assert compose(compose(RF0, 3, dilation=2), 3, dilation=4).size == (13, 13)
    # the seeds' 1x3 kernel sees one row and three columns
    assert compose(RF0, (1, 3)).size == (1, 3)


def test_transposed_conv_halves_the_jump():
    # k4 s2 p1: each output reads at most two neighbouring inputs: r = 1 + 1 = 2
    rf = compose_transposed(RF0, 4, stride=2, padding=1)
    assert rf.size == (2, 2)
    assert rf.jump == (Fraction(1, 2),) * 2
    # output 0 sits at input (P - (K-1)/2) / S = (1 - 1.5) / 2 = -1/4
    assert rf.start == (Fraction(-1, 4),) * 2
    # k3 s2: some outputs read 2 inputs ((2-0)/2 = 1 apart), so r = 2
    assert compose_transposed(RF0, 3, stride=2).size == (2, 2)


VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
         512, 512, 512, "M"]


def vgg16_fields():
    specs = [{"kernel_size": 2, "stride": 2} if v == "M" else {"kernel_size": 3, "padding": 1}
             for v in VGG16]
    return walk(specs)


def test_vgg16_receptive_fields():
    # by hand, jump j doubles after each pool and each 3x3 conv adds 2j:
    # block1: 3, 5, pool 6 (j2); block2: 10, 14, pool 16 (j4); block3: 24, 32, 40, pool 44
    # (j8); block4: 60, 76, 92, pool 100 (j16); block5: 132, 164, 196, pool 212 (j32)
    sizes = [int(f.size[0]) for f in vgg16_fields()]
    assert sizes == [3, 5, 6, 10, 14, 16, 24, 32, 40, 44, 60, 76, 92, 100, 132, 164, 196, 212]
    # so the usual "212" is after the last pooling layer; the last conv (conv5_3) sees 196
    last_conv, last_pool = vgg16_fields()[-2], vgg16_fields()[-1]
    assert last_conv.size == (196, 196) and last_conv.jump == (16, 16)
    assert last_pool.size == (212, 212) and last_pool.jump == (32, 32)


@pytest.mark.slow  # VGG-16 allocates 138 M weights
def test_vgg16_zoo_model(build_fast):
    model = build_fast("vgg16")
    convs = [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    pools = [name for name, m in model.named_modules() if isinstance(m, nn.MaxPool2d)]
    fields = receptive_fields(model, (3, 32, 32))  # geometry does not depend on the size
    assert fields[convs[-1]].size == (196, 196)
    assert fields[pools[-1]].size == (212, 212)


def test_resnet18_zoo_model(build_fast):
    fields = receptive_fields(build_fast("resnet18"), (3, 64, 64))
    # conv1 7x7 s2: 7 (j2); maxpool 3 s2: 7 + 2*2 = 11 (j4); layer1, four 3x3 convs:
    # 11 + 4*2*4 = 43; layer2 (first conv s2): 43 + 2*4 = 51 (j8), + 3*16 = 99;
    # layer3: 99 + 16 = 115 (j16), + 3*32 = 211; layer4: 211 + 32 = 243 (j32), + 3*64 = 435
    expected = {"maxpool": 11, "layer1": 43, "layer2": 99, "layer3": 211, "layer4": 435}
    for name, size in expected.items():
        assert fields[name].size == (size, size), name
    # the residual sum takes the main path's field, not the 1x1 shortcut's
    assert fields["layer2.0.downsample.0"].size == (43, 43)
    assert fields["layer2.0"].size == (67, 67)


def lenet_paper():
    """The paper's LeNet-5 on 32x32 with C5 as a 5x5 conv."""
    return nn.Sequential(nn.Conv2d(1, 6, 5), nn.Tanh(), nn.AvgPool2d(2), nn.Conv2d(6, 16, 5),
                         nn.Tanh(), nn.AvgPool2d(2), nn.Conv2d(16, 120, 5), nn.Tanh(),
                         nn.Flatten(), nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, 10))


def test_lenet5_every_layer():
    fields = receptive_fields(lenet_paper(), (1, 32, 32))
    # C1 5 (j1, start 2); S2 6 (j2, start 2.5); C3 6 + 4*2 = 14 (j2, start 6.5);
    # S4 14 + 1*2 = 16 (j4, start 7.5); C5 16 + 4*4 = 32: the whole 32x32 input
    expected = {"0": (5, 1, 2), "1": (5, 1, 2), "2": (6, 2, 2.5), "3": (14, 2, 6.5),
                "5": (16, 4, 7.5), "6": (32, 4, 15.5)}
    for name, (size, jump, start) in expected.items():
        rf = fields[name]
        assert rf.size == (size, size) and rf.jump == (jump, jump), name
        assert rf.start == (start, start), name
    assert fields["8"].kind == "global" and fields["11"].kind == "global"


def test_zoo_lenet5_padded_c1():
    from juanji.models import MODELS

    fields = receptive_fields(MODELS["lenet5"](), (1, 28, 28))
    # padding 2 moves every start back by 2: C1 start 0, S2 0.5, C3 4.5, S4 5.5
    assert fields["features.0"].start == (0, 0)
    assert fields["features.5"].size == (16, 16) and fields["features.5"].start == (5.5, 5.5)
    assert fields["classifier.0"].kind == "global"


def test_residual_branches_take_the_widest():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(2, 2, 3, padding=1)
            self.conv2 = nn.Conv2d(2, 2, 3, padding=1)
            self.skip = nn.Conv2d(2, 2, 1)
            self.act = nn.ReLU()

        def forward(self, x):
            return self.act(self.conv2(self.conv1(x)) + self.skip(x))

    fields = receptive_fields(nn.Sequential(Block(), nn.Conv2d(2, 2, 3)), (2, 12, 12))
    # the main path has 5x5, the skip 1x1: the sum (and the ReLU after it) see 5x5
    assert fields["0.act"].size == (5, 5)
    assert fields["0"].size == (5, 5)
    assert fields["1"].size == (7, 7)


def test_functional_pool_in_forward_is_unknown_not_wrong():
    class Sneaky(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 3)
            self.head = nn.Conv2d(1, 1, 3)

        def forward(self, x):
            return self.head(juanji.nn.functional.max_pool2d(self.conv(x), 2))

    fields = receptive_fields(Sneaky(), (1, 16, 16))
    assert fields["conv"].size == (3, 3)
    assert fields["head"].kind == "unknown"


# ---- gradient oracle -----------------------------------------------------------------------


def positive(model):
    for p in model.parameters():
        p.data[...] = np.abs(p.data) + 0.1
    return model


def support(model, input_size, unit):
    """Bounding box (top, left, bottom, right) of input pixels with a non-zero gradient."""
    x = juanji.tensor(np.random.default_rng(0).uniform(0.5, 1.0, (1,) + input_size),
                      requires_grad=True)
    y = model(x)
    y[0, 0, unit[0], unit[1]].backward()
    rows, cols = np.nonzero(np.abs(x.grad[0]).sum(axis=0))
    return rows.min(), cols.min(), rows.max(), cols.max()


STACKS = {
    "conv-conv": lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.Conv2d(2, 1, 3)),
    "strided-padded": lambda: nn.Sequential(nn.Conv2d(1, 2, 3, stride=2, padding=1), nn.Tanh(),
                                            nn.Conv2d(2, 1, 3, stride=2, padding=1)),
    "conv-pool-conv": lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.AvgPool2d(2),
                                            nn.Conv2d(2, 1, 3)),
    "dilated": lambda: nn.Sequential(nn.Conv2d(1, 2, 3, dilation=2, padding=2),
                                     nn.Conv2d(2, 1, 3, dilation=3)),
    "rectangular": lambda: nn.Sequential(nn.Conv2d(1, 2, (1, 3)), nn.AvgPool2d((3, 2), 2),
                                         nn.Conv2d(2, 1, (5, 1), padding=(2, 0))),
}


@pytest.mark.parametrize("name", sorted(STACKS))
def test_gradient_support_equals_the_computed_field(name):
    model = positive(STACKS[name]())
    size = (1, 21, 23)
    calls = receptive_fields(model, size)
    rf = calls[str(len(list(model.children())) - 1)]
    out_shape = model(juanji.tensor(np.zeros((1,) + size, np.float32))).shape[2:]
    for unit in [(0, 0), (out_shape[0] // 2, out_shape[1] // 2),
                 (out_shape[0] - 1, out_shape[1] - 1)]:
        assert support(model, size, unit) == clipped_box(rf, unit, size[1:]), unit


def test_transposed_support_lies_inside_the_field():
    model = positive(nn.Sequential(nn.Conv2d(1, 2, 3, padding=1),
                                   nn.ConvTranspose2d(2, 1, 4, stride=2, padding=1)))
    size = (1, 9, 9)
    rf = receptive_fields(model, size)["1"]
    assert rf.size == (3 + 1, 3 + 1) and rf.jump == (Fraction(1, 2),) * 2
    for unit in [(0, 0), (5, 8), (17, 17)]:
        top, left, bottom, right = support(model, size, unit)
        box = clipped_box(rf, unit, size[1:])
        assert box[0] <= top and box[1] <= left and bottom <= box[2] and right <= box[3]


RESAMPLING = {
    "nearest": lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.Upsample(scale_factor=2),
                                     nn.Conv2d(2, 1, 3)),
    "bilinear": lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.Upsample(scale_factor=2,
                                                                      mode="bilinear"),
                                      nn.Conv2d(2, 1, 3)),
    "adaptive": lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d(4),
                                      nn.Conv2d(2, 1, 3)),
    "lp-pool": lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.LPPool2d(2, 3, stride=2),
                                     nn.Conv2d(2, 1, 2)),
}


@pytest.mark.parametrize("name", sorted(RESAMPLING))
def test_resampling_support_lies_inside_the_field(name):
    model = positive(RESAMPLING[name]())
    size = (1, 10, 10)
    rf = receptive_fields(model, size)["2"]
    assert rf.is_local
    out_shape = model(juanji.tensor(np.ones((1,) + size, np.float32))).shape[2:]
    for unit in [(0, 0), (out_shape[0] // 2, 1), (out_shape[0] - 1, out_shape[1] - 1)]:
        top, left, bottom, right = support(model, size, unit)
        box = clipped_box(rf, unit, size[1:])
        assert box[0] <= top and box[1] <= left and bottom <= box[2] and right <= box[3], unit
        # and the field is not a wild over-estimate: at most one pixel more on each side
        assert top - box[0] <= 1 and box[2] - bottom <= 1, unit


def test_resampling_by_hand():
    # conv3 (r 3, start 1) -> nearest x2: jump 1/2, r unchanged, start 1 + (1/4 - 1/2) = 3/4
    fields = receptive_fields(RESAMPLING["nearest"](), (1, 10, 10))
    assert fields["1"].size == (3, 3) and fields["1"].jump == (Fraction(1, 2),) * 2
    assert fields["1"].start == (Fraction(3, 4),) * 2
    # bilinear reads two neighbours: r grows by one input jump
    assert receptive_fields(RESAMPLING["bilinear"](), (1, 10, 10))["1"].size == (4, 4)
    # adaptive 8 -> 4 is a 2x2 pool with stride 2
    adaptive = receptive_fields(RESAMPLING["adaptive"](), (1, 10, 10))["1"]
    assert adaptive.size == (4, 4) and adaptive.jump == (2, 2)


def test_list_inputs_take_the_widest_of_the_list():
    class Dense(nn.Module):  # DenseNet style: a layer receives all earlier feature maps
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 1, 3, padding=1)

        def forward(self, features):
            return self.conv(juanji.cat(features, 1))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.grow = nn.Conv2d(1, 1, 5, padding=2)
            self.dense = Dense()

        def forward(self, x):
            return self.dense([x, self.grow(x)])

    fields = receptive_fields(Block(), (1, 12, 12))
    # the concatenation holds the input (1x1) and a 5x5 map: the next 3x3 conv sees 7x7
    assert fields["dense"].size == (7, 7) and fields["dense.conv"].size == (7, 7)
