"""Fused activations: a conv (ReLU, hardswish) or batch norm (ReLU) that applies the
activation after it in its own pass.

The oracle is the unfused op followed by juanji's own activation op: the fused forward and
backward must give the same bits (NaN, infinities and -0.0 included), on every conv path and in
both batch norm modes; float64 finite differences check the fused ops' gradients on their own;
and a model fused by `fuse_activations` must train step for step to the same bits as its
unfused copy.
"""

import copy

import numpy as np
import pytest

import juanji
import juanji.nn as nn
from juanji import models, optim
from juanji.nn import functional as F
from juanji.nn.utils import fuse_activations
from tests.gradcheck import gradcheck

# (input shape, weight shape, stride, padding, groups): one case per Conv2d path
CONV_PATHS = {
    "im2col": ((3, 8, 9, 7), (6, 8, 3, 3), 1, 1, 1),
    "im2col_strided": ((3, 8, 9, 7), (6, 8, 3, 3), 2, 1, 1),
    "channels_first": ((3, 1, 12, 14), (5, 1, 5, 5), 1, 2, 1),
    "pointwise": ((3, 8, 5, 6), (10, 8, 1, 1), 1, 0, 1),
    "grouped": ((3, 8, 6, 6), (6, 8 // 2, 3, 3), 1, 1, 2),
    "depthwise": ((3, 8, 6, 7), (16, 1, 3, 3), 1, 1, 8),
}


def _special_values(array):
    """Put NaN, +-inf and exact zeros into an input, where a ReLU's edge cases live."""
    flat = array.reshape(-1)
    flat[:4] = [np.nan, np.inf, -np.inf, 0.0]
    return array


def _bits_equal(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(np.ascontiguousarray(a).view(np.uint8),
                                  np.ascontiguousarray(b).view(np.uint8))


def _run(fn, arrays, gy):
    """Forward fn on fresh leaf tensors, backward with gy -> (output, gradients)."""
    tensors = [juanji.tensor(a.copy(), requires_grad=True) for a in arrays]
    out = fn(*tensors)
    out.backward(juanji.tensor(gy))
    return out.data, [t.grad for t in tensors]


ACTIVATIONS = {"relu": F.relu, "hardswish": F.hardswish}


@pytest.mark.parametrize("path", sorted(CONV_PATHS))
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("grad", [True, False])
def test_conv_with_fused_activation_gives_the_bits_of_conv_then_activation(path, bias,
                                                                           activation, grad):
    x_shape, w_shape, stride, padding, groups = CONV_PATHS[path]
    rng = np.random.default_rng(0)
    x = _special_values(rng.standard_normal(x_shape).astype(np.float32))
    arrays = [x, rng.standard_normal(w_shape).astype(np.float32)]
    if bias:
        arrays.append(rng.standard_normal(w_shape[0]).astype(np.float32))

    x *= 4  # hardswish's corners at -3 and 3 inside the range

    def plain(x, w, b=None):
        return ACTIVATIONS[activation](F.conv2d(x, w, b, stride, padding, groups=groups))

    def fused(x, w, b=None):
        return F.conv2d(x, w, b, stride, padding, groups=groups, fused_activation=activation)

    with juanji.no_grad():
        shape = plain(*[juanji.tensor(a) for a in arrays]).shape
    if not grad:  # inference: the activation runs inside the epilogue
        with juanji.no_grad():
            want = plain(*[juanji.tensor(a) for a in arrays]).data
            got = fused(*[juanji.tensor(a) for a in arrays]).data
        _bits_equal(got, want)
        return
    gy = _special_values(rng.standard_normal(shape).astype(np.float32))
    gy[0, 0, 0, 1] = -1.0  # a negative upstream value where the ReLU blocks gives -0.0
    want_y, want_grads = _run(plain, arrays, gy)
    got_y, got_grads = _run(fused, arrays, gy)
    assert np.isnan(got_y).any() and (got_y == 0).any()  # the edge cases reached the output
    _bits_equal(got_y, want_y)
    for got, want in zip(got_grads, want_grads):
        _bits_equal(got, want)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_with_fused_relu_gives_the_bits_of_batch_norm_then_relu(training, affine):
    rng = np.random.default_rng(1)
    # channels-last memory, as a conv's output is
    x = rng.standard_normal((4, 7, 6, 5)).astype(np.float32).transpose(0, 3, 1, 2)
    mean, var = rng.standard_normal(5).astype(np.float32), rng.uniform(0.5, 2, 5).astype(
        np.float32)
    arrays = [x] + ([rng.uniform(0.5, 1.5, 5).astype(np.float32),
                     rng.standard_normal(5).astype(np.float32)] if affine else [])
    gy = rng.standard_normal(x.shape).astype(np.float32)
    gy[0, 0, 0, :2] = -1.0

    def norm(fused):
        def fn(x, weight=None, bias=None):
            out = F.batch_norm(x, juanji.tensor(mean.copy()), juanji.tensor(var.copy()),
                               weight, bias, training=training,
                               fused_activation="relu" if fused else None)
            return out if fused else F.relu(out)
        return fn

    want_y, want_grads = _run(norm(False), arrays, gy)
    got_y, got_grads = _run(norm(True), arrays, gy)
    assert (got_y == 0).any() and (got_y > 0).any()
    _bits_equal(got_y, want_y)
    for got, want in zip(got_grads, want_grads):
        _bits_equal(got, want)


def test_fused_ops_pass_float64_finite_differences():
    rng = np.random.default_rng(2)
    # values kept away from 0, where ReLU has no derivative
    x = rng.standard_normal((2, 3, 6, 5))
    w, b = rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    for activation in ACTIVATIONS:
        gradcheck(lambda x, w, b, kind=activation: F.conv2d(x, w, b, padding=1,
                                                            fused_activation=kind), [x, w, b])
    g, beta = rng.uniform(0.5, 1.5, 3), rng.standard_normal(3)
    gradcheck(lambda x, g, beta: F.batch_norm(x, None, None, g, beta, training=True,
                                              fused_activation="relu"), [x, g, beta])


def _fused_names(model, kind="relu"):
    return [name for name, module in model.named_modules()
            if getattr(module, "fused_activation", None) == kind]


@pytest.mark.parametrize("name, shape, expected", [
    ("lenet5", (1, 28, 28), ["features.0", "features.3"]),
    ("simple_convnet", (1, 28, 28), ["conv1"]),
    ("resnet20", (3, 32, 32), ["bn1"] + [f"layer{i}.{j}.bn1" for i in (1, 2, 3)
                                         for j in range(3)]),
    ("mobilenet_v3_small", (3, 32, 32), 14),  # its batch norms' ReLUs; hardswish follows BN
])
def test_fused_model_trains_to_the_same_bits(name, shape, expected):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((16, *shape)).astype(np.float32)
    y = rng.integers(0, 10, 16)
    juanji.manual_seed(0)
    plain = models.create_model(name, num_classes=10, in_channels=shape[0])
    fused = fuse_activations(copy.deepcopy(plain), x[:2])
    # ResNet's blocks share one ReLU: it fuses after bn1 and still runs after the residual sum
    names = _fused_names(fused)
    assert names == expected if isinstance(expected, list) else len(names) == expected
    assert plain.state_dict().keys() == fused.state_dict().keys()
    assert all(module.training for module in fused.modules())  # modes restored
    steps = []
    for model in (plain, fused):
        juanji.manual_seed(1)  # the same dropout masks for both
        opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        losses = []
        for _ in range(3):
            opt.zero_grad()
            loss = F.cross_entropy(model(juanji.tensor(x)), y)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        steps.append((losses, model.state_dict()))
    (plain_losses, plain_state), (fused_losses, fused_state) = steps
    assert fused_losses == plain_losses
    for key, value in plain_state.items():
        _bits_equal(fused_state[key], value)


class _ReadTwice(nn.Module):
    """The batch norm's output is read by the ReLU and by the sum: it must not be fused."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn, self.relu = nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), \
            nn.ReLU()

    def forward(self, x):
        y = self.bn(self.conv(x))
        return self.relu(y) + y


class _ReturnsConv(nn.Module):
    """The conv's output is a model output as well as the ReLU's input."""

    def __init__(self):
        super().__init__()
        self.conv, self.relu = nn.Conv2d(2, 3, 3), nn.ReLU()

    def forward(self, x):
        y = self.conv(x)
        return self.relu(y), y


class _ReadsRawData(nn.Module):
    """Reads the conv's output outside juanji's ops, which no trace can see."""

    def __init__(self):
        super().__init__()
        self.conv, self.relu = nn.Conv2d(2, 3, 3), nn.ReLU()

    def forward(self, x):
        y = self.conv(x)
        return self.relu(y) + juanji.tensor(y.data.copy())


class _HardswishTwice(nn.Module):
    """hardswish(hardswish(conv(x))): the first fuses into the conv, the second still runs."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3)

    def forward(self, x):
        return F.hardswish(F.hardswish(self.conv(x) * 4))


class _ConvHardswish(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.act = nn.Conv2d(2, 3, 3), nn.Hardswish()

    def forward(self, x):
        return F.hardswish(self.act(self.conv(x)))


def test_a_fused_activation_is_passed_through_once():
    x = np.random.default_rng(6).standard_normal((2, 2, 6, 6)).astype(np.float32) * 4
    plain = _ConvHardswish()
    with juanji.no_grad():
        want = plain(juanji.tensor(x)).data
    fused = fuse_activations(copy.deepcopy(plain), x)
    assert _fused_names(fused, "hardswish") == ["conv"]
    with juanji.no_grad():
        _bits_equal(fused(juanji.tensor(x)).data, want)
    # the conv's output goes through a multiply first: nothing to fuse
    assert _fused_names(fuse_activations(_HardswishTwice(), x), "hardswish") == []


def test_an_activation_read_elsewhere_is_not_fused():
    x = np.random.default_rng(4).standard_normal((2, 2, 5, 5)).astype(np.float32)
    for model in (_ReadTwice(), _ReturnsConv()):
        assert _fused_names(fuse_activations(model, x)) == []
    model = _ReadsRawData()
    with pytest.raises(ValueError, match="changed the model's output"):
        fuse_activations(model, x)
    assert _fused_names(model) == []  # every flag cleared


def test_fused_model_prints_and_exports_its_relus(tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from juanji.onnx import export
    model = models.create_model("lenet5", num_classes=10)
    x = np.random.default_rng(5).standard_normal((3, 1, 28, 28)).astype(np.float32)
    fuse_activations(model, x[:1])
    assert "fused_activation=relu" in repr(model.features[0])
    model.eval()
    path = tmp_path / "lenet5.onnx"
    export(model, x[:1], path)
    ops = [node.op_type for node in onnx.load(path).graph.node]
    assert ops.count("Relu") == 4  # two fused into the convs, two after the linear layers
    with juanji.no_grad():
        want = model(juanji.tensor(x)).data
    got = ort.InferenceSession(str(path)).run(None, {"input": x})[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
