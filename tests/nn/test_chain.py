"""Conv2d -> BatchNorm2d -> ReLU runs in fewer passes (nn.layers.chain): Sequential and the
zoo's ResNet blocks; relu(a + b), a residual block's end, in one op (AddRelu).

The oracle is the same layers called one by one: every output, gradient and running
statistic must have the same bits (NaN, infinities and zeros in the input), in eval mode with
and without gradients and in training mode. Counting the ops that run shows the fewer passes
are taken, and that hooks, a tracer, or layers that are not plain make the layers run one by
one again.
"""

import copy

import numpy as np
import pytest

import juanji
import juanji.nn as nn
from juanji import function, models, optim
from juanji.nn import functional as F
from juanji.nn.layers.chain import add_relu
from juanji.ops import compiled
from juanji.ops.activation import AddRelu, Relu
from juanji.ops.norm import BatchNorm
from tests.gradcheck import gradcheck

# (input shape, conv arguments): the conv paths the chain's epilogue goes through
CONVS = {
    "3x3": ((2, 8, 9, 7), dict(in_channels=8, out_channels=6, kernel_size=3, padding=1)),
    "strided": ((2, 8, 9, 7), dict(in_channels=8, out_channels=6, kernel_size=3, stride=2)),
    "pointwise": ((2, 8, 5, 6), dict(in_channels=8, out_channels=10, kernel_size=1)),
    "depthwise": ((2, 8, 6, 7), dict(in_channels=8, out_channels=8, kernel_size=3, padding=1,
                                     groups=8)),
    "first_layer": ((3, 1, 12, 14), dict(in_channels=1, out_channels=5, kernel_size=5,
                                         padding=2)),
}
RUNS = ["conv_bn_relu", "conv_bn", "conv_relu", "bn_relu"]
MODES = ["eval_no_grad", "eval_grad", "train"]


def _layers(run, conv_args, bias, dtype):
    juanji.manual_seed(0)
    conv = nn.Conv2d(**conv_args, bias=bias, dtype=dtype)
    channels = conv_args["out_channels"] if run != "bn_relu" else conv_args["in_channels"]
    bn = nn.BatchNorm2d(channels, dtype=dtype)
    rng = np.random.default_rng(1)  # statistics and affine that are not the identity
    bn.running_mean.data[...] = rng.standard_normal(channels)
    bn.running_var.data[...] = rng.uniform(0.5, 2.0, channels)
    bn.weight.data[...] = rng.standard_normal(channels)
    bn.bias.data[...] = rng.standard_normal(channels)
    parts = {"conv": conv, "bn": bn, "relu": nn.ReLU(inplace=True)}
    return [parts[name] for name in run.split("_")]


def _input(shape, dtype):
    x = np.random.default_rng(2).standard_normal(shape).astype(dtype)
    x.reshape(-1)[:4] = [np.nan, np.inf, -np.inf, 0.0]
    return x


def _one_by_one(layers):
    class OneByOne(nn.Module):  # not a Sequential: its forward calls each layer itself
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList(layers)

        def forward(self, x):
            for layer in self.layers:
                x = layer(x)
            return x
    return OneByOne()


def _results(model, x, mode):
    """Output, then (training or with gradients) the input's and parameters' gradients and
    the buffers, as arrays."""
    model.train(mode == "train")
    if mode == "eval_no_grad":
        with juanji.no_grad():
            return [np.array(model(juanji.Tensor(x)).data)]
    xt = juanji.tensor(x.copy(), requires_grad=True)
    out = model(xt)
    gy = np.random.default_rng(3).standard_normal(out.shape).astype(x.dtype)
    out.backward(juanji.tensor(gy))
    return ([np.array(out.data), np.array(xt.grad.data)]
            + [np.array(p.grad.data) for p in model.parameters()]
            + [np.array(b.data) for b in model.buffers() if b is not None])


def _bits_equal(got, expected):
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(np.ascontiguousarray(a).view(np.uint8),
                                      np.ascontiguousarray(b).view(np.uint8))


@pytest.fixture
def op_calls(monkeypatch):
    """How many times the BatchNorm and Relu ops ran forward."""
    calls = {"BatchNorm": 0, "Relu": 0}
    for op in (BatchNorm, Relu):
        def counted(self, *args, _forward=op.forward, _name=op.__name__, **kwargs):
            calls[_name] += 1
            return _forward(self, *args, **kwargs)
        monkeypatch.setattr(op, "forward", counted)
    return calls


@pytest.mark.parametrize("run, conv", [(run, conv) for run in RUNS for conv in sorted(CONVS)
                                       if run != "bn_relu" or conv == "3x3"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_sequential_run_gives_the_bits_of_its_layers_one_by_one(conv, run, mode, dtype,
                                                                  op_calls):
    shape, conv_args = CONVS[conv]  # (bn_relu has no conv: its input is the 3x3 case's)
    layers = _layers(run, conv_args, bias=conv != "pointwise", dtype=dtype)
    x = _input(shape, dtype)
    expected = _results(_one_by_one(copy.deepcopy(layers)), x, mode)
    before = dict(op_calls)
    got = _results(nn.Sequential(*layers), x, mode)
    _bits_equal(got, expected)
    ran = {name: op_calls[name] - before[name] for name in op_calls}
    # fewer passes: no ReLU op (it ran inside the op before it), and in eval mode without
    # gradients no batch norm op after a conv (its affine ran inside the conv's pass)
    assert ran["Relu"] == 0
    folded_in = mode == "eval_no_grad" and run.startswith("conv_bn")
    assert ran["BatchNorm"] == (0 if folded_in or "bn" not in run else 1)


def _sequential():
    return _layers("conv_bn_relu", CONVS["3x3"][1], bias=True, dtype=np.float32)


def test_a_hook_on_any_layer_runs_the_layers_one_by_one(op_calls):
    for hooked in range(3):
        layers = _sequential()
        seen = []
        layers[hooked].register_forward_hook(  # a copy: the in-place ReLU writes over it
            lambda mod, inputs, out, seen=seen: seen.append(np.array(out.data)))
        model = nn.Sequential(*layers).eval()
        op_calls.update(BatchNorm=0, Relu=0)
        with juanji.no_grad():
            model(juanji.Tensor(_input(CONVS["3x3"][0], np.float32)))
        assert len(seen) == 1 and op_calls == {"BatchNorm": 1, "Relu": 1}
        # each hook saw its own layer's output: the conv's and batch norm's have negatives
        assert (seen[0] < 0).any() == (hooked < 2)


@pytest.mark.parametrize("change", ["tracer", "identity", "fused_activation", "subclass"])
def test_what_could_tell_the_difference_runs_the_layers_one_by_one(change, op_calls):
    layers = _sequential()
    if change == "identity":
        layers[1] = nn.Identity()
    elif change == "fused_activation":
        layers[1].fused_activation = "relu"
    elif change == "subclass":  # a subclass may change what forward does
        class MyBatchNorm2d(nn.BatchNorm2d):
            pass
        layers[1] = MyBatchNorm2d(layers[1].num_features)
    model = nn.Sequential(*layers).eval()
    previous = function._tracer
    if change == "tracer":
        function._tracer = lambda fn, inputs, params, out: None
    try:
        with juanji.no_grad():
            model(juanji.Tensor(_input(CONVS["3x3"][0], np.float32)))
    finally:
        function._tracer = previous
    # a batch norm's own fused ReLU runs in its op; F.relu then passes its output on
    assert op_calls == {"BatchNorm": int(change != "identity"),
                        "Relu": int(change != "fused_activation")}


@pytest.mark.parametrize("shape, match", [
    ((8, 9, 7), "BatchNorm2d expects a "),  # unbatched: the batch norm wants (N, C, H, W)
    ((2, 5, 9, 7), "expects input channels"),
])
def test_bad_input_gets_the_layers_own_errors(shape, match):
    model = nn.Sequential(*_sequential()).eval()
    with juanji.no_grad(), pytest.raises(ValueError, match=match):
        model(juanji.Tensor(np.zeros(shape, np.float32)))


def test_a_batch_norm_that_does_not_fit_the_conv_gets_its_own_error():
    layers = _sequential()
    layers[1] = nn.BatchNorm2d(5)
    with juanji.no_grad(), pytest.raises(ValueError, match=r"BatchNorm2d\(5\) expects 5"):
        nn.Sequential(*layers).eval()(juanji.Tensor(np.zeros((2, 8, 9, 7), np.float32)))


@pytest.mark.parametrize("name, shape", [("resnet20", (4, 3, 16, 16)),
                                         ("resnet50", (2, 3, 40, 40)),
                                         ("vgg11_bn", (2, 3, 32, 32))])
def test_zoo_models_train_and_infer_to_the_bits_of_their_layers_one_by_one(name, shape):
    """Two SGD steps, then eval without gradients: the model as it runs (its ResNet blocks
    or Sequentials take the chains) against a copy under a tracer that records nothing (the
    layers one by one)."""
    juanji.manual_seed(0)
    model = models.create_model(name, num_classes=10)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    y = rng.integers(0, 10, shape[0])

    def trace_nothing(fn, inputs, params, out):
        pass

    results = []
    for tracer in (None, trace_nothing):
        net = copy.deepcopy(model)
        opt = optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
        previous, function._tracer = function._tracer, tracer
        try:
            seen = []
            for _ in range(2):
                juanji.manual_seed(1)  # the same dropout masks
                opt.zero_grad()
                loss = F.cross_entropy(net(juanji.Tensor(x)), y)
                loss.backward()
                opt.step()
                seen.append(np.array(loss.data))
            net.eval()
            with juanji.no_grad():
                seen.append(np.array(net(juanji.Tensor(x)).data))
        finally:
            function._tracer = previous
        seen += [np.array(t.data) for t in net.state_dict().values()]
        results.append(seen)
    _bits_equal(*results)


def _add_then_relu(a, b):
    return F.relu(a + b)


@pytest.mark.parametrize("layout", ["alike", "channels_last_and_contiguous", "broadcast_free"])
@pytest.mark.parametrize("grad", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_add_relu_gives_the_bits_of_add_then_relu(layout, grad, dtype, monkeypatch):
    """The AddRelu op against the Add op then the Relu op: output, and both inputs'
    gradients; the one-pass compiled kernel runs where the operands are laid out alike."""
    rng = np.random.default_rng(4)
    shape = (3, 5, 6, 7)
    a, b = (_input(shape, dtype) for _ in range(2))
    b.reshape(-1)[4:8] = [np.inf, -np.inf, -0.0, np.nan]
    a += rng.standard_normal(shape).astype(dtype)  # NaN, infinities and zeros at both
    a.reshape(-1)[8:12] = [0.0, -0.0, 1.0, -1.0]  # sums exactly at the kink
    b.reshape(-1)[8:12] = [-0.0, 0.0, -1.0, 1.0]
    if layout == "channels_last_and_contiguous":
        a = np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    elif layout == "broadcast_free":
        b = np.zeros(shape, dtype) - 0.0  # a sum equal to a, -0.0 included
    one_pass = []
    kernel = compiled.add_relu_with_mask
    if kernel is not None:
        monkeypatch.setattr(compiled, "add_relu_with_mask",
                            lambda *arrays: (one_pass.append(1), kernel(*arrays))[0])
    gy = rng.standard_normal(shape).astype(dtype)
    results = []
    for fn in (lambda a, b: AddRelu.apply(a, b), _add_then_relu):
        ta, tb = (juanji.Tensor(v.copy(order="K"), requires_grad=grad) for v in (a, b))
        if not grad:
            with juanji.no_grad():
                results.append([np.array(fn(ta, tb).data)])
            continue
        out = fn(ta, tb)
        out.backward(juanji.tensor(gy))
        results.append([np.array(out.data), np.array(ta.grad.data), np.array(tb.grad.data)])
    _bits_equal(*results)
    expect_one_pass = grad and kernel is not None and layout != "channels_last_and_contiguous"
    assert bool(one_pass) == expect_one_pass


def test_add_relu_gradcheck_and_torch_parity():
    import torch  # a test extra (pinned), not optional: the parity check must run
    rng = np.random.default_rng(5)
    a = rng.standard_normal((2, 3, 4, 5))
    b = rng.standard_normal((2, 3, 4, 5))
    keep = np.abs(a + b) > 1e-3  # away from the kink, where finite differences straddle it
    a, b = a * keep + 0.5 * ~keep, b * keep + 0.5 * ~keep
    gradcheck(lambda x, y: AddRelu.apply(x, y), [a, b])
    ta, tb = (juanji.tensor(v.astype(np.float32), requires_grad=True) for v in (a, b))
    out = AddRelu.apply(ta, tb)
    out.sum().backward()
    pa, pb = (torch.tensor(v.astype(np.float32), requires_grad=True) for v in (a, b))
    expected = torch.relu(pa + pb)
    expected.sum().backward()
    np.testing.assert_array_equal(np.array(out.data), expected.detach().numpy())
    np.testing.assert_array_equal(np.array(ta.grad.data), pa.grad.numpy())
    np.testing.assert_array_equal(np.array(tb.grad.data), pb.grad.numpy())


@pytest.mark.parametrize("change", [None, "hook", "tracer", "shapes"])
def test_add_relu_runs_one_op_only_where_nothing_could_tell(change, op_calls):
    relu = nn.ReLU()
    seen = []
    if change == "hook":
        relu.register_forward_hook(lambda mod, inputs, out: seen.append(out))
    a = juanji.Tensor(_input((2, 3, 4, 5), np.float32))
    b = juanji.Tensor(np.ones((2, 3, 4, 5) if change != "shapes" else (3, 4, 5), np.float32))
    previous = function._tracer
    if change == "tracer":
        function._tracer = lambda fn, inputs, params, out: None
    try:
        out = add_relu(a, b, relu)
    finally:
        function._tracer = previous
    _bits_equal([np.array(out.data)], [np.array(F.relu(a + b).data)])
    assert op_calls["Relu"] == (1 if change is None else 2)  # (the check above runs one)
    assert len(seen) == (change == "hook")
