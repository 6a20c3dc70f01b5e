"""juanji.onnx.export: every zoo model exports, passes onnx's full check, runs in onnxruntime at
batch sizes 1 and 3 equal to juanji (1e-4 + 1e-4 |ref|), and loads back equal; ops beyond the
zoo match onnxruntime at several opsets; layers with no ONNX form are refused by name."""

import numpy as np
import onnx
import pytest

import juanji
import juanji.onnx
from juanji import nn
from juanji.models import MODELS
from juanji.nn import functional as F

ort = pytest.importorskip("onnxruntime")

TOL = {"rtol": 1e-4, "atol": 1e-4}

# name -> (C, H, W): at or near the smallest input the model runs on in eval mode.
SIZES = {
    "simple_convnet": (1, 28, 28), "lenet5": (1, 28, 28), "fashion_cnn": (1, 28, 28),
    "alexnet": (3, 63, 63), "alexnet_lrn": (3, 67, 67), "zfnet": (3, 64, 64),
    "inception_v3": (3, 75, 75), "squeezenet1_0": (3, 21, 21), "squeezenet1_1": (3, 17, 17),
    "unet": (1, 16, 16), "siamese": (1, 28, 28), "triplet": (1, 28, 28),
}
# 100M+ weights (VGG's and AlexNet's classifiers, FCN's fc6) or the deepest and widest nets:
# 7-30 s each to build, write, run and load; CI runs them through the slow marker.
HEAVY = {"alexnet", "alexnet_lrn", "zfnet", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16",
         "vgg16_bn", "vgg19", "vgg19_bn", "fcn32s", "fcn16s", "fcn8s", "resnet152",
         "wide_resnet50_2", "densenet161"}
INPUTS = {"siamese": 2, "triplet": 3}  # forward(x1, x2), forward(anchor, positive, negative)


def _perturbed(model, name):
    """The factory's model with every weight shaping the output: biases and batch-norm affine
    parameters moved off their defaults, zero-initialised weights (FCN's score layers) drawn,
    and batch-norm statistics measured on a random batch (so swapping mean and variance
    shows), with 1 added to each variance so that no layer amplifies float32 rounding (a
    channel whose variance is tiny would be scaled up by 1 / sqrt(var) otherwise)."""
    rng = np.random.default_rng(0)
    for key, array in model.state_dict().items():
        if array.dtype.kind != "f" or key.endswith(("running_mean", "running_var")):
            continue
        noise = rng.uniform(-1, 1, array.shape).astype(array.dtype)
        if array.ndim > 1:
            if not array.any():
                array[...] = noise / np.sqrt(np.prod(array.shape[1:]))
        elif key.endswith("bias"):
            array[...] += 0.1 * noise
        else:
            array[...] *= 1 + 0.2 * noise
    norms = [m for m in model.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
    model.eval()
    for bn in norms:
        bn.momentum = 1.0  # the running statistics become this batch's
        bn.train()
    _forward(model, _inputs(name, 8, seed=9))
    for bn in norms:
        bn.running_var.data[...] += 1
        bn.momentum = 0.1
    return model.eval()


def _inputs(name, batch, seed):
    shape = (batch, *SIZES.get(name, (3, 32, 32)))
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(np.float32) for _ in range(INPUTS.get(name, 1))]


def _forward(model, arrays):
    with juanji.no_grad():
        out = model(*[juanji.Tensor(a) for a in arrays])
    return [t.data for t in (out if isinstance(out, tuple) else (out,))]


def _session(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _run(session, arrays):
    names = [i.name for i in session.get_inputs()]
    return session.run(None, dict(zip(names, arrays)))


def _case(name):
    return pytest.param(name, marks=[pytest.mark.slow] if name in HEAVY else [], id=name)


@pytest.mark.parametrize("name", [_case(n) for n in MODELS])
def test_zoo_model_exports_runs_in_onnxruntime_and_loads_back(name, tmp_path):
    model = _perturbed(MODELS[name](), name)
    path = tmp_path / f"{name}.onnx"
    juanji.onnx.export(model, _inputs(name, 2, seed=2), path)
    onnx.checker.check_model(str(path), full_check=True)

    proto = onnx.load(str(path), load_external_data=False)
    for value in list(proto.graph.input) + list(proto.graph.output):
        assert value.type.tensor_type.shape.dim[0].dim_param == "N", value.name
    weights = {t.name for t in proto.graph.initializer if not t.name.startswith("const_")}
    assert weights and weights <= set(model.state_dict())
    for node in proto.graph.node:
        if node.op_type == "BatchNormalization":
            assert node.input[3].endswith("running_mean") and node.input[4].endswith(
                "running_var")
    has_bn = any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in model.modules())
    assert has_bn == any(n.op_type == "BatchNormalization" for n in proto.graph.node)

    session = _session(path)
    for batch in (1, 3):
        arrays = _inputs(name, batch, seed=batch)
        expected = _forward(model, arrays)
        got = _run(session, arrays)
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            assert g.shape == e.shape and e.shape[0] == batch
            assert e.std() > 1e-2  # an output that does not vanish: the tolerance means something
            np.testing.assert_allclose(g, e, **TOL)
    loaded = juanji.onnx.load(path)
    for g, e in zip(_forward(loaded, arrays), expected):
        np.testing.assert_allclose(g, e, **TOL)


class _Deform(nn.Module):
    def __init__(self):
        super().__init__()
        self.offsets = nn.Conv2d(3, 18, 3, padding=1)
        self.body = nn.Sequential(nn.DeformConv2d(3, 4, 3, padding=1))

    def forward(self, x):
        return self.body[0](x, self.offsets(x))


def test_deformable_convolution_is_refused_naming_the_layer(tmp_path):
    x = np.zeros((2, 3, 8, 8), np.float32)
    with pytest.raises(ValueError, match=r"DeformConv2d in layer 'body\.0' \(DeformConv2d\)"):
        juanji.onnx.export(_Deform(), x, tmp_path / "deform.onnx")
    assert not (tmp_path / "deform.onnx").exists()


class _Lambda(nn.Module):
    """A forward given as a function, with a conv so that the graph holds a named weight."""

    def __init__(self, fn, channels=4):
        super().__init__()
        self.conv = nn.Conv2d(3, channels, 3, padding=1)
        self.fn = fn

    def forward(self, x):
        return self.fn(self.conv(x))


OP_CASES = {
    "gelu": lambda y: F.gelu(y),
    "gelu_tanh": lambda y: F.gelu(y, approximate="tanh"),
    "silu_elu_selu": lambda y: F.silu(y) + F.elu(y, 0.7) + F.selu(y),
    "leaky_softplus": lambda y: F.leaky_relu(y, 0.2) + F.softplus(y, beta=2.0),
    "hardswish_hardtanh": lambda y: F.hardswish(y) * F.hardtanh(y, -0.5, 0.5),
    "softmax": lambda y: F.softmax(y, dim=1) + F.log_softmax(y, dim=-1),
    "layer_norm": lambda y: F.layer_norm(
        y, [6, 6], juanji.tensor(np.linspace(0.5, 1.5, 36, dtype="f4").reshape(6, 6)),
        juanji.tensor(np.linspace(-1, 1, 36, dtype="f4").reshape(6, 6))),
    "group_norm": lambda y: F.group_norm(y, 2, juanji.tensor(np.array([1, 2, 3, 4], "f4")),
                                         juanji.tensor(np.array([0, 1, 0, -1], "f4"))),
    "nearest_upsample": lambda y: F.interpolate(y, scale_factor=2, mode="nearest"),
    "bilinear_resize": lambda y: F.interpolate(y, size=(9, 5), mode="bilinear",
                                               align_corners=False),
    "bicubic_resize": lambda y: F.interpolate(y, size=(9, 5), mode="bicubic")
    + F.interpolate(y, scale_factor=1.5, mode="bicubic", align_corners=True)[:, :, :9, :5],
    "reflect_replicate_pad": lambda y: F.pad(F.pad(y, (1, 2, 0, 1), mode="reflect"),
                                             (2, 0, 1, 1), mode="replicate"),
    "indexing": lambda y: y[:, 1:, ::2, None, -1] + y[:, :3, 1::2, None, 0],
    "stack_mean_var": lambda y: juanji.stack([y.mean(1), y.var(1), y.max(1), y.min(1)], 1),
    "clamp_pow_abs": lambda y: (y.clamp(-0.5, 0.7) ** 2 + y.abs().sqrt()).exp(),
    "permute_matmul": lambda y: y.permute(0, 2, 3, 1) @ juanji.tensor(
        np.linspace(-1, 1, 16, dtype="f4").reshape(4, 4)),
    "uneven_adaptive_pool": lambda y: F.adaptive_avg_pool2d(y, (4, 5)),
    "avg_pool_ceil": lambda y: F.avg_pool2d(y, 3, 2, padding=1, ceil_mode=True,
                                            count_include_pad=False),
    "max_pool_dilated": lambda y: F.max_pool2d(y, 2, 1, dilation=2, ceil_mode=True),
    # 5x5, kernel 2, stride 2, padding 1: ONNX's ceil_mode would keep a third window starting
    # in the right padding, which PyTorch drops (and onnx's shape inference would disagree)
    "pools_drop_last_window": lambda y: F.max_pool2d(y[:, :, 1:, 1:], 2, 2, 1, ceil_mode=True)
    + F.avg_pool2d(y[:, :, 1:, 1:], 2, 2, 1, ceil_mode=True)
    + F.avg_pool2d(y[:, :, 1:, 1:], 2, 2, 1, ceil_mode=True, count_include_pad=False),
    "expand_sum": lambda y: y.sum((2, 3), keepdim=True).expand(-1, -1, 6, 6) - y,
    "prod": lambda y: y.clamp(0.5, 1.5).prod(1, keepdim=True) * y,
}


@pytest.mark.parametrize("opset", [13, 17, 20])
@pytest.mark.parametrize("case", list(OP_CASES))
def test_ops_beyond_the_zoo_match_onnxruntime(case, opset, tmp_path):
    model = _Lambda(OP_CASES[case])
    path = tmp_path / f"{case}.onnx"
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 6)).astype(np.float32)
    juanji.onnx.export(model, x, path, opset=opset)
    onnx.checker.check_model(str(path), full_check=True)
    session = _session(path)
    for batch in (1, 3):
        x = np.random.default_rng(batch).standard_normal((batch, 3, 6, 6)).astype(np.float32)
        np.testing.assert_allclose(_run(session, [x])[0], _forward(model, [x])[0], **TOL)


def test_weights_are_initializers_named_by_state_dict_keys(tmp_path):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 4 * 4, 2))
    model.train()
    juanji.onnx.export(model, np.zeros((2, 3, 6, 6), np.float32), tmp_path / "m.onnx")
    proto = onnx.load(str(tmp_path / "m.onnx"))
    names = {t.name for t in proto.graph.initializer}
    assert {"0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var",
            "4.weight", "4.bias"} <= names
    assert "1.num_batches_tracked" not in names  # not read by an eval-mode forward
    assert [n.op_type for n in proto.graph.node] == ["Conv", "BatchNormalization", "Relu",
                                                     "Reshape", "Gemm"]
    assert [n.name for n in proto.graph.node][:2] == ["/0/Conv", "/1/BatchNormalization"]
    assert model.training and all(m.training for m in model.modules())  # restored


def test_static_batch_keeps_the_example_shape(tmp_path):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten())
    juanji.onnx.export(model, np.zeros((2, 3, 5, 5), np.float32), tmp_path / "m.onnx",
                       dynamic_batch=False)
    proto = onnx.load(str(tmp_path / "m.onnx"))
    dims = [d.dim_value for d in proto.graph.output[0].type.tensor_type.shape.dim]
    assert dims == [2, 36]


def test_a_batch_of_one_traces_a_dynamic_batch(tmp_path):
    """resnet20's shortcut concatenates zeros made in Python with the example's batch size:
    one sample, expanded to the run-time batch (here traced from a batch of 1)."""
    model = _perturbed(MODELS["resnet20"](), "resnet20")
    juanji.onnx.export(model, _inputs("resnet20", 1, seed=0), tmp_path / "m.onnx")
    proto = onnx.load(str(tmp_path / "m.onnx"))
    assert "Expand" in {n.op_type for n in proto.graph.node}
    arrays = _inputs("resnet20", 3, seed=3)
    got = _run(_session(tmp_path / "m.onnx"), arrays)[0]
    np.testing.assert_allclose(got, _forward(model, arrays)[0], **TOL)


class _PerSampleConstant(nn.Module):
    def forward(self, x):
        offsets = juanji.Tensor(np.arange(x.shape[0], dtype=np.float32).reshape(-1, 1))
        return x + offsets  # a constant made from the example's batch size, one per sample


def test_a_constant_per_sample_refuses_a_dynamic_batch(tmp_path):
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match="samples differ.*dynamic_batch=False"):
        juanji.onnx.export(_PerSampleConstant(), x, tmp_path / "m.onnx")
    juanji.onnx.export(_PerSampleConstant(), x, tmp_path / "m.onnx", dynamic_batch=False)
    got = _run(_session(tmp_path / "m.onnx"), [np.ones((2, 3), np.float32)])[0]
    np.testing.assert_array_equal(got, [[1, 1, 1], [2, 2, 2]])


@pytest.mark.parametrize("opset", [12, 99, "17", True])
def test_bad_opset_is_refused(opset, tmp_path):
    with pytest.raises(ValueError, match=f"opset must be an int in \\[13, \\d+\\]; got "
                                         f"{opset!r}"):
        juanji.onnx.export(nn.ReLU(), np.zeros((2, 3), np.float32), tmp_path / "m.onnx",
                           opset=opset)


def test_bad_model_and_input_are_refused(tmp_path):
    with pytest.raises(TypeError, match="model must be a juanji.nn.Module; got function"):
        juanji.onnx.export(lambda x: x, np.zeros((2, 3), np.float32), tmp_path / "m.onnx")
    with pytest.raises(TypeError, match="example_input must be a Tensor or array.*got list"):
        juanji.onnx.export(nn.ReLU(), [[1.0, 2.0]], tmp_path / "m.onnx")
