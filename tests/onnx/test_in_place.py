"""An imported graph runs Relu and HardSwish in place (OnnxModule.forward) when it may: under
no_grad, on a value the graph computed, that no later node reads, that is not a graph output
and whose memory no constant, input or other live value shares. The oracle is the same graph
with in-place running switched off: the same bits, and nothing else changed (the inputs, the
constants, a second run's outputs)."""

import copy

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import juanji
import juanji.onnx
from juanji.onnx.handlers.activation import Overwriting

F32 = TensorProto.FLOAT


def _model(nodes, inputs, outputs, inits=()):
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(n, F32, s) for n, s in inputs],
        [helper.make_tensor_value_info(n, F32, s) for n, s in outputs], list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    return juanji.onnx.load(model.SerializeToString())


def _special(shape, seed=0):
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32) * 4
    x.reshape(-1)[:5] = [np.nan, np.inf, -np.inf, -0.0, 0.0]
    return x


def _run(model, *xs):
    with juanji.no_grad():
        out = model(*[juanji.Tensor(x) for x in xs])
    return [o.data.copy() for o in out] if isinstance(out, tuple) else [out.data.copy()]


def _not_in_place(monkeypatch):
    """Every Overwriting step runs as a plain step (the oracle)."""
    monkeypatch.setattr(Overwriting, "in_place", None)


def _bits(arrays):
    return [np.ascontiguousarray(a).view(np.uint8) for a in arrays]


def _same(got, want):
    for g, w in zip(_bits(got), _bits(want)):
        np.testing.assert_array_equal(g, w)


def _counting(monkeypatch):
    """Count the in-place runs."""
    calls = []
    original = Overwriting.in_place

    def counted(self, x):
        calls.append(x.shape)
        return original(self, x)

    monkeypatch.setattr(Overwriting, "in_place", counted)
    return calls


W = numpy_helper.from_array(np.random.default_rng(1).standard_normal((4, 3, 3, 3))
                            .astype(np.float32), "w")


def test_conv_relu_hardswish_run_in_place_with_the_same_bits(monkeypatch):
    model = _model([helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
                    helper.make_node("Relu", ["c"], ["r"]),
                    helper.make_node("Conv", ["r", "w2"], ["c2"], pads=[1, 1, 1, 1]),
                    helper.make_node("HardSwish", ["c2"], ["y"])],
                   [("x", [2, 3, 6, 7])], [("y", [2, 4, 6, 7])],
                   [W, numpy_helper.from_array(np.ones((4, 4, 3, 3), np.float32) * 0.1, "w2")])
    # each activation a step of its own, not in its conv's pass (OnnxModule._fused_conv, see
    # test_conv_batch_norm.py): what runs when a conv cannot take it (a hook on the conv, say)
    model._conv_chains = {}
    x = _special((2, 3, 6, 7))
    kept = x.copy()
    calls = _counting(monkeypatch)
    got = _run(model, x)
    assert len(calls) == 2  # both activations wrote over the conv outputs
    _same([x], [kept])  # the input is untouched
    with monkeypatch.context() as m:
        _not_in_place(m)
        want = _run(model, x)
    _same(got, want)
    _same(_run(model, x), want)  # a second run: nothing kept was overwritten


def test_a_value_read_again_or_shared_or_returned_is_not_overwritten(monkeypatch):
    # c is read by the Relu and later by the Add; v is an Identity of d (the same memory),
    # still alive when d's Relu runs; e, the HardSwish's input, is also a graph output
    shape = [1, 4, 3, 5]
    model = _model([helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
                    helper.make_node("Relu", ["c"], ["r1"]),
                    helper.make_node("Add", ["r1", "c"], ["a"]),
                    helper.make_node("Neg", ["a"], ["d"]),
                    helper.make_node("Identity", ["d"], ["v"]),
                    helper.make_node("Relu", ["d"], ["r2"]),
                    helper.make_node("Add", ["r2", "v"], ["e"]),
                    helper.make_node("HardSwish", ["e"], ["y"])],
                   [("x", [1, 3, 3, 5])], [("y", shape), ("e", shape)], [W])
    x = _special((1, 3, 3, 5))
    calls = _counting(monkeypatch)
    got = _run(model, x)
    assert calls == []
    with monkeypatch.context() as m:
        _not_in_place(m)
        want = _run(model, x)
    _same(got, want)


def test_constants_and_inputs_are_never_overwritten(monkeypatch):
    # Relu of a graph input, of an Identity of it, and of a Reshape (a view) of a constant
    const = _special((2, 6), seed=3)
    model = _model([helper.make_node("Relu", ["x"], ["r0"]),
                    helper.make_node("Identity", ["x2"], ["i"]),
                    helper.make_node("Relu", ["i"], ["r1"]),
                    helper.make_node("Reshape", ["k", "shape"], ["kv"]),
                    helper.make_node("Relu", ["kv"], ["r2"]),
                    helper.make_node("Add", ["r0", "r1"], ["s"]),
                    helper.make_node("Add", ["s", "r2"], ["y"])],
                   [("x", [3, 4]), ("x2", [3, 4])], [("y", [3, 4])],
                   [numpy_helper.from_array(const, "k"),
                    numpy_helper.from_array(np.array([3, 4], np.int64), "shape")])
    x, x2 = _special((3, 4)), _special((3, 4), seed=2)
    kept = [x.copy(), x2.copy()]
    calls = _counting(monkeypatch)
    first = _run(model, x, x2)
    assert calls == []
    _same([x, x2], kept)
    _same(_run(model, x, x2), first)  # the constant kept its values


def test_a_deep_copy_never_overwrites_its_own_constants(monkeypatch):
    # the copy's constants are new arrays: what protects them is found from the copy's own
    # (the model keeps the constants' memory roots from loading on)
    const = _special((2, 6), seed=3)
    model = _model([helper.make_node("Reshape", ["k", "shape"], ["kv"]),
                    helper.make_node("Relu", ["kv"], ["y"])],
                   [("x", [3, 4])], [("y", [3, 4])],
                   [numpy_helper.from_array(const, "k"),
                    numpy_helper.from_array(np.array([3, 4], np.int64), "shape")])
    copied = copy.deepcopy(model)
    del model
    calls = _counting(monkeypatch)
    x = _special((3, 4))
    first = _run(copied, x)
    assert calls == []
    _same(_run(copied, x), first)
    _same([first[0]], [np.maximum(const.reshape(3, 4), 0)])


def _input_grad(model, x):
    xt = juanji.tensor(x, requires_grad=True)
    model(xt).sum().backward()
    return xt.grad


def test_gradients_on_run_out_of_place(monkeypatch):
    # the Relu's output feeds HardSwish, whose backward needs it: written over, the
    # gradient would come out wrong
    model = _model([helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
                    helper.make_node("Relu", ["c"], ["y"]),
                    helper.make_node("HardSwish", ["y"], ["z"])],
                   [("x", [1, 3, 4, 4])], [("z", [1, 4, 4, 4])], [W])
    x = np.random.default_rng(4).standard_normal((1, 3, 4, 4)).astype(np.float32) * 3
    got = _input_grad(model, x)
    with monkeypatch.context() as m:
        _not_in_place(m)
        want = _input_grad(model, x)
    _same([got], [want])


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_hardswish_inplace_under_no_grad_writes_over_its_input(layout):
    x = _special((2, 3, 4, 5))
    if layout == "channels_last":
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    want = juanji.nn.functional.hardswish(juanji.tensor(x.copy())).data
    with juanji.no_grad():
        y = juanji.nn.Hardswish(inplace=True)(juanji.Tensor(x))
    assert np.shares_memory(y.data, x)
    _same([x], [want])
