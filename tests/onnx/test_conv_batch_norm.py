"""Conv -> BatchNormalization (-> Relu or HardSwish) and Conv -> Relu or HardSwish in an
imported graph run as one conv pass under no_grad (OnnxModule._fused_conv): the batch norm's
eval-mode affine and the activation are applied to each block of the conv's output while in
cache. The oracle is the same graph run step by step: the same bits, NaN, infinities and
signed zeros included. Whenever anything could tell the difference (gradients, training mode,
hooks, a value read elsewhere or returned, a tracer), the steps run one by one."""

import copy

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import juanji
import juanji.onnx
from juanji.nn.utils import fold_batch_norms, fuse_activations
from juanji.onnx.handlers.conv import ConvStep
from juanji.ops import compiled
from juanji.ops import conv as conv_ops

F32 = TensorProto.FLOAT


def _block(activation="Relu", channels=(3, 4), kernel=3, group=1, pads=(1, 1, 1, 1), strides=1,
           bias=True, norm=True, extra_outputs=(), extra_nodes=(), seed=0):
    """x -> Conv -> BatchNormalization (norm=False: none) -> activation (None: none) -> y."""
    c, oc = channels
    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array(
        rng.standard_normal((oc, c // group, kernel, kernel)).astype(np.float32), "w")]
    conv_inputs = ["x", "w"]
    if bias:
        inits.append(numpy_helper.from_array(rng.standard_normal(oc).astype(np.float32), "b"))
        conv_inputs.append("b")
    for name, values in (("s", rng.uniform(0.5, 2, oc)), ("t", rng.standard_normal(oc)),
                         ("m", rng.standard_normal(oc)), ("v", rng.uniform(0.1, 3, oc))):
        inits.append(numpy_helper.from_array(values.astype(np.float32), name))
    nodes = [helper.make_node("Conv", conv_inputs, ["c"], "conv", pads=list(pads),
                              group=group, strides=[strides, strides]),
             helper.make_node("BatchNormalization", ["c", "s", "t", "m", "v"], ["n"], "bn",
                              epsilon=1e-3)]
    last = "n"
    if not norm:  # the conv's output goes straight on; the statistics stay unused initializers
        nodes, last = nodes[:1], "c"
    if activation is not None:
        nodes.append(helper.make_node(activation, [last], ["a"], "act"))
        last = "a"
    nodes.append(helper.make_node("Identity", [last], ["y"], "out"))
    nodes += list(extra_nodes)
    outputs = [helper.make_tensor_value_info(n, F32, ["N", None, None, None])
               for n in ("y", *extra_outputs)]
    graph = helper.make_graph(nodes, "block", [helper.make_tensor_value_info(
        "x", F32, ["N", c, "H", "W"])], outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    onnx.checker.check_model(model)
    return juanji.onnx.load(model.SerializeToString()).eval()


def _special(shape, seed=1):
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32) * 3
    x.reshape(-1)[:5] = [np.nan, np.inf, -np.inf, -0.0, 0.0]
    return x


def _outputs(model, x):
    out = model(juanji.Tensor(x))
    return [np.ascontiguousarray(o.data) for o in (out if isinstance(out, tuple) else (out,))]


def _step_by_step(model, x):
    chains, model._conv_chains = model._conv_chains, {}
    try:
        with juanji.no_grad():
            return _outputs(model, x)
    finally:
        model._conv_chains = chains


def _fused_runs(monkeypatch):
    calls = []
    original = ConvStep.with_batch_norm

    def counted(self, x, affine, activation):
        calls.append(activation)
        return original(self, x, affine, activation)

    monkeypatch.setattr(ConvStep, "with_batch_norm", counted)
    return calls


def _same(got, want):
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g.view(np.uint32), w.view(np.uint32))


CASES = {
    "relu": dict(activation="Relu"),
    "hardswish": dict(activation="HardSwish"),
    "no activation": dict(activation=None),
    "no bias": dict(bias=False),
    "depthwise 5x5": dict(channels=(6, 6), group=6, kernel=5, pads=(2, 2, 2, 2),
                          activation="HardSwish"),
    "strided": dict(strides=2, channels=(4, 8)),
    "asymmetric pads": dict(pads=(0, 1, 1, 0)),
    "1x1": dict(kernel=1, pads=(0, 0, 0, 0), channels=(5, 7)),
    # 3x3 with 24+ channels and enough tiles: Winograd's output transform, then the epilogue
    "winograd": dict(channels=(32, 32)),
    # no batch norm (exported with it folded, as PyTorch's exporter does): the activation alone
    "relu without batch norm": dict(norm=False),
    "hardswish without batch norm": dict(norm=False, activation="HardSwish"),
    "depthwise hardswish without batch norm": dict(
        norm=False, channels=(16, 16), group=16, activation="HardSwish"),
    "winograd relu without batch norm": dict(norm=False, channels=(32, 32)),
}
SIZES = {"winograd": (40, 40), "winograd relu without batch norm": (40, 40)}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_fused_conv_gives_the_bits_of_the_steps(case, monkeypatch):
    model = _block(**CASES[case])
    c = CASES[case].get("channels", (3, 4))[0]
    x = _special((2, c, *SIZES.get(case, (9, 11))))
    calls = _fused_runs(monkeypatch)
    with juanji.no_grad():
        got = _outputs(model, x)
    assert len(calls) == 1
    _same(got, _step_by_step(model, x))


PLANNED = {"depthwise": dict(channels=(16, 16), group=16, activation="HardSwish"),
           "depthwise 5x5 strided": dict(channels=(32, 32), group=32, kernel=5,
                                         pads=(2, 2, 2, 2), strides=2, bias=False),
           "1x1": dict(kernel=1, pads=(0, 0, 0, 0), channels=(5, 7)),
           "1x1 without anything after it": dict(kernel=1, pads=(0, 0, 0, 0), channels=(6, 4),
                                                 bias=False, norm=False, activation=None)}


@pytest.mark.skipif(compiled.njit is None, reason="the depthwise plan needs the compiled path")
@pytest.mark.parametrize("case", PLANNED, ids=list(PLANNED))
def test_planned_conv_gives_the_bits_of_the_op(case, monkeypatch):
    """A conv whose input is channels-last memory (as any conv's output is) runs by the path
    conv_ops.InferenceConv planned for its geometry: the bits of the op without the plan,
    fused with its batch norm or alone, after its weight changes in place or is replaced,
    and at another input size (planned again)."""
    model = _block(**PLANNED[case])
    c = PLANNED[case]["channels"][0]

    def channels_last(shape, seed):
        return np.ascontiguousarray(_special(shape, seed).transpose(0, 2, 3, 1)).transpose(
            0, 3, 1, 2)

    planned = []
    original = conv_ops.InferenceConv.__call__
    monkeypatch.setattr(conv_ops.InferenceConv, "__call__",
                        lambda self, *a: planned.append(self.path) or original(self, *a))

    def without_plan(x, steps):  # every conv by the op
        unplanned = conv_ops.InferenceConv.__init__

        def init(self, *args):
            unplanned(self, *args)
            self.path = None

        with monkeypatch.context() as patch:
            patch.setattr(conv_ops.InferenceConv, "__init__", init)
            _forget_plans(model)
            outputs = _step_by_step(model, x) if steps else _outputs_no_grad(model, x)
        _forget_plans(model)
        return outputs

    for x in (channels_last((1, c, 12, 13), 1), channels_last((2, c, 9, 11), 2)):
        for steps in (False, True):  # fused with its batch norm, then one step at a time
            planned.clear()
            got = _step_by_step(model, x) if steps else _outputs_no_grad(model, x)
            assert planned and all(planned)
            _same(got, without_plan(x, steps))
        model.conv.weight.data[...] *= -0.5  # in place: nothing made from it is kept
        _same(_outputs_no_grad(model, x), without_plan(x, False))
    model.conv.weight = juanji.nn.Parameter(model.conv.weight.data * 3)
    _same(_outputs_no_grad(model, x), without_plan(x, False))


def test_imported_1x1_weights_are_input_major():
    """A 1x1 group-1 conv's imported weight is laid out input-major (conv_ops.input_major:
    the operand BLAS reads fastest), the same values; other convs' stay C-contiguous."""
    for kwargs, major in (({"kernel": 1, "pads": (0,) * 4, "channels": (16, 32)}, True),
                          ({"kernel": 1, "pads": (0,) * 4, "channels": (16, 32), "group": 2},
                           False),
                          ({"kernel": 3, "channels": (16, 32)}, False)):
        weight = _block(**kwargs).conv.weight.data
        k, group = kwargs["kernel"], kwargs.get("group", 1)
        want = np.random.default_rng(0).standard_normal((32, 16 // group, k, k))  # _block's
        np.testing.assert_array_equal(weight, want.astype(np.float32))
        assert weight.reshape(32, -1).T.flags.c_contiguous == major
        assert weight.flags.c_contiguous != major


def _forget_plans(model):
    for _, step in model._steps:
        if isinstance(step, ConvStep):
            step._plan = None


def _outputs_no_grad(model, x):
    with juanji.no_grad():
        return _outputs(model, x)


@pytest.mark.skipif(compiled.njit is None, reason="Winograd needs the compiled path")
def test_winograd_case_really_runs_winograd(monkeypatch):
    model = _block(channels=(32, 32))
    ran = []
    original = conv_ops.conv_winograd
    monkeypatch.setattr(conv_ops, "conv_winograd",
                        lambda *a, **k: ran.append(1) or original(*a, **k))
    with juanji.no_grad():
        model(juanji.Tensor(_special((2, 32, *SIZES["winograd"]))))
    assert ran


def test_anything_that_could_tell_runs_the_steps(monkeypatch):
    x = _special((2, 3, 6, 7))
    calls = _fused_runs(monkeypatch)
    model = _block()
    # gradients on
    model(juanji.tensor(x, requires_grad=True)).sum().backward()
    # training mode: batch statistics
    model.train()
    with juanji.no_grad():
        model(juanji.Tensor(x))
    model.eval()
    # a hook on the conv or the batch norm sees its own output
    for layer in (model.conv, model.bn):
        seen = []
        handle = layer.register_forward_hook(lambda m, i, o, seen=seen: seen.append(o.shape))
        with juanji.no_grad():
            model(juanji.Tensor(x))
        handle.remove()
        assert seen
    # the conv's output is also a graph output, or read again
    for kwargs in (dict(extra_outputs=("c",)),
                   dict(extra_nodes=[helper.make_node("Neg", ["n"], ["z"])],
                        extra_outputs=("z",))):
        other = _block(**kwargs)
        with juanji.no_grad():
            other(juanji.Tensor(x))
    assert calls == [None]  # the second block fuses the conv and batch norm, not the Relu
    calls.clear()
    # folded batch norms (the conv and the Relu left to fuse), fused activations and a deep
    # copy, on a fresh block (training mode above updated the running statistics with NaN) and
    # a finite input (fold_batch_norms checks its result against the model's on it)
    model = _block()
    x = np.random.default_rng(2).standard_normal((2, 3, 6, 7)).astype(np.float32)
    folded = fold_batch_norms(copy.deepcopy(model), x)
    calls.clear()
    with juanji.no_grad():
        _same(_outputs(folded, x), _step_by_step(folded, x))
    assert calls == ["relu"]  # the conv with its folded batch norm, and the Relu
    # and after fuse_activations, the conv layer carrying that Relu itself
    fuse_activations(folded, x)
    assert folded.conv.fused_activation == "relu"
    calls.clear()
    with juanji.no_grad():
        _same(_outputs(folded, x), _step_by_step(folded, x))
    assert calls == ["relu"]
    calls.clear()
    fused = fuse_activations(copy.deepcopy(model), x)
    with juanji.no_grad():
        _same(_outputs(fused, x), _step_by_step(model, x))
    copied = copy.deepcopy(model)
    with juanji.no_grad():
        _same(_outputs(copied, x), _step_by_step(model, x))
    assert calls == ["relu"]  # the copy fuses, fuse_activations' relu-fused conv does not


def test_a_conv_with_its_own_activation_before_a_batch_norm_runs_the_steps(monkeypatch):
    """relu(batch_norm(relu(conv(x)))): the conv's own ReLU comes before the batch norm, so the
    chain's one pass (the ReLU after the batch norm only) would differ; the steps run."""
    model = _block()
    model.conv.fused_activation = "relu"
    x = _special((2, 3, 6, 7))
    calls = _fused_runs(monkeypatch)
    with juanji.no_grad():
        got = _outputs(model, x)
    assert calls == []
    _same(got, _step_by_step(model, x))


def test_conv_op_refuses_an_affine_with_gradients():
    x = juanji.tensor(np.ones((1, 2, 4, 4), np.float32), requires_grad=True)
    w = juanji.tensor(np.ones((3, 2, 3, 3), np.float32))
    affine = (np.ones(3, np.float32), np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="inference"):
        conv_ops.Conv2d.apply(x, w, None, padding=((1, 1), (1, 1)), affine=affine)
