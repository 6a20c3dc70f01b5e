"""Chains of elementwise nodes in an imported graph run as one step (juanji/onnx/chains.py).

The oracle is the same graph run node by node (the step's own fallback, and the model with
the compiled kernel switched off): the fused pass must give the same bits, NaN, infinities and
signed zeros included. Groups that cannot be one pass (a value read twice outside, a runtime
or NaN clip bound, a per-channel constant) stay as their nodes; gradients, export and
deep copies see the nodes.
"""

import copy

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import juanji
import juanji.onnx
from juanji.onnx import chains
from juanji.onnx.chains import ChainStep
from juanji.ops import compiled

pytestmark = pytest.mark.skipif(compiled.njit is None, reason="numba is not installed")


def _scalar(name, value, dtype=np.float32):
    return numpy_helper.from_array(np.array([value], dtype=dtype), name)


def _paddle_block(opset=13, dtype=np.float32, extra_nodes=(), extra_outputs=(), inits=()):
    """x -> Conv -> scale/shift -> hardswish as Paddle2ONNX writes it (Add 3, Clip 0..6,
    Mul x, Div 6) -> scale/shift -> y; the eight elementwise nodes are one chain."""
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(dtype), "w"),
               _scalar("s1", 0.7, dtype), _scalar("b1", -0.1, dtype), _scalar("three", 3, dtype),
               _scalar("six", 6, dtype), _scalar("s2", 1.3, dtype), _scalar("b2", 0.2, dtype)]
    clip_bounds = [] if opset < 11 else ["zero", "six_b"]
    if opset >= 11:
        weights += [numpy_helper.from_array(np.array(0, dtype), "zero"),
                    numpy_helper.from_array(np.array(6, dtype), "six_b")]
    clip_attrs = {"min": 0.0, "max": 6.0} if opset < 11 else {}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], "conv", pads=[1, 1, 1, 1]),
             helper.make_node("Mul", ["s1", "c"], ["m1"], "mul1"),
             helper.make_node("Add", ["m1", "b1"], ["a1"], "add1"),
             helper.make_node("Add", ["a1", "three"], ["a3"], "add3"),
             helper.make_node("Clip", ["a3"] + clip_bounds, ["cl"], "clip", **clip_attrs),
             helper.make_node("Mul", ["a1", "cl"], ["hs"], "mulx"),
             helper.make_node("Div", ["hs", "six"], ["d6"], "div6"),
             helper.make_node("Mul", ["s2", "d6"], ["m2"], "mul2"),
             helper.make_node("Sub", ["m2", "b2"], ["y"], "sub2"), *extra_nodes]
    outputs = [helper.make_tensor_value_info(n, elem, ["N", 4, "H", "W"])
               for n in ("y", *extra_outputs)]
    graph = helper.make_graph(nodes, "block", [helper.make_tensor_value_info(
        "x", elem, ["N", 3, "H", "W"])], outputs, weights + list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def _chains(model):
    return [step for _, step in model._steps if isinstance(step, ChainStep)]


def _special_input(shape, dtype=np.float32, seed=0):
    x = np.random.default_rng(seed).standard_normal(shape).astype(dtype) * 3
    flat = x.reshape(-1)
    flat[:7] = [np.nan, np.inf, -np.inf, -0.0, 0.0, 1e30, -1e30]
    return x


def _unfused(model, x, monkeypatch):
    """The model's outputs with the compiled kernels off: every node runs as loaded."""
    with monkeypatch.context() as m:
        m.setattr(chains, "program_kernel", lambda program: None)
        with juanji.no_grad():
            out = model(x)
    return [o.data for o in out] if isinstance(out, tuple) else out.data


@pytest.mark.parametrize("opset", [9, 13])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_paddle_hardswish_block_is_one_step_with_the_same_bits(opset, dtype, monkeypatch):
    model = juanji.onnx.load(_paddle_block(opset, dtype))
    [chain] = _chains(model)
    assert len(chain.nodes) == 8 and len(chain.program) == 8
    assert [node.op_type for node, _ in model._steps] == ["Conv", "ElementwiseChain"]
    x = _special_input((2, 3, 9, 7), dtype)
    with juanji.no_grad():
        got = model(x).data
    expected = _unfused(model, x, monkeypatch)
    assert got.dtype == expected.dtype == dtype and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)  # NaN where NaN, bit for bit elsewhere
    assert np.array_equal(np.signbit(got), np.signbit(expected))
    with juanji.no_grad():
        conv_out = model._steps[0][1](juanji.Tensor(x))
    np.testing.assert_array_equal(chain(conv_out).data, chain.run_nodes(conv_out).data)


def test_big_feature_maps_run_in_blocks_over_the_threads(monkeypatch):
    # 8 x 4 x 200 x 200 values: several blocks; the conv's output is a channels-last array
    # seen as NCHW, and the chain's output keeps that layout
    model = juanji.onnx.load(_paddle_block())
    x = _special_input((8, 3, 200, 200), seed=3)
    with juanji.no_grad():
        got = model(x).data
    np.testing.assert_array_equal(got, _unfused(model, x, monkeypatch))
    assert got.transpose(0, 2, 3, 1).flags.c_contiguous


def test_a_strided_root_runs_the_nodes():
    # a root that is no single run of memory (here: every other column) is not one pass
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "s"], ["m"], "mul"),
         helper.make_node("Add", ["m", "b"], ["y"], "add")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [_scalar("s", 0.5), _scalar("b", 2.0)])
    model = juanji.onnx.load(helper.make_model(graph).SerializeToString())
    [chain] = _chains(model)
    x = np.random.default_rng(1).standard_normal((5, 8)).astype(np.float32)[:, ::2]
    with juanji.no_grad():
        got = model(juanji.Tensor(x)).data
    np.testing.assert_array_equal(got, x * np.float32(0.5) + np.float32(2.0))


def test_gradients_run_the_nodes():
    model = juanji.onnx.load(_paddle_block(dtype=np.float64))
    x = juanji.Tensor(_special_input((1, 3, 5, 5), np.float64)[:, :, 1:, 1:] + 0.0,
                      requires_grad=True)
    x.data[np.isnan(x.data) | np.isinf(x.data)] = 0.5
    y = model(x)
    assert y.requires_grad  # autograd saw every node
    y.sum().backward()
    assert x.grad is not None and np.isfinite(x.grad).all()
    with juanji.no_grad():
        np.testing.assert_array_equal(model(x.data).data, y.data)


def test_a_value_read_outside_the_chain_is_computed_as_it_was():
    # a1 is read again after the chain (a graph output): two values leave the group, so it
    # stays eight nodes; the model still gives both outputs
    model = juanji.onnx.load(_paddle_block(extra_outputs=("a1",)))
    assert not _chains(model)
    x = _special_input((1, 3, 6, 6))
    with juanji.no_grad():
        y, a1 = model(x)
    assert y.shape == a1.shape == (1, 4, 6, 6)


def test_a_chains_result_may_be_the_next_chains_root(monkeypatch):
    # y (the first chain's result, also a graph output) -> Abs -> Mul -> Add: a second chain
    # rooted at Abs's output
    extra = [helper.make_node("Abs", ["y"], ["ab"], "abs"),
             helper.make_node("Mul", ["ab", "s1"], ["t1"], "t1"),
             helper.make_node("Add", ["t1", "b1"], ["z"], "z")]
    model = juanji.onnx.load(_paddle_block(extra_nodes=extra, extra_outputs=("z",)))
    assert [len(chain.nodes) for chain in _chains(model)] == [8, 2]
    x = _special_input((1, 3, 6, 6))
    with juanji.no_grad():
        got = [out.data for out in model(x)]
    for g, e in zip(got, _unfused(model, x, monkeypatch), strict=True):
        np.testing.assert_array_equal(g, e)


@pytest.mark.parametrize("case", ["runtime bound", "nan bound", "per-channel", "integer"])
def test_what_cannot_be_one_pass_stays_nodes(case):
    inits = [_scalar("s", 0.5)]
    if case == "runtime bound":
        nodes = [helper.make_node("Mul", ["x", "s"], ["m"], "mul"),
                 helper.make_node("ReduceMax", ["x"], ["hi"], "max", keepdims=0),
                 helper.make_node("Clip", ["m", "", "hi"], ["y"], "clip")]
    elif case == "nan bound":
        inits.append(numpy_helper.from_array(np.array(np.nan, np.float32), "lo"))
        nodes = [helper.make_node("Mul", ["x", "s"], ["m"], "mul"),
                 helper.make_node("Clip", ["m", "lo"], ["y"], "clip")]
    elif case == "per-channel":
        inits.append(numpy_helper.from_array(np.ones((1, 3, 1, 1), np.float32), "c"))
        nodes = [helper.make_node("Mul", ["x", "s"], ["m"], "mul"),
                 helper.make_node("Add", ["m", "c"], ["y"], "add")]
    else:
        inits.append(numpy_helper.from_array(np.array([2], np.int64), "k"))
        nodes = [helper.make_node("Mul", ["x", "s"], ["m"], "mul"),
                 helper.make_node("Cast", ["k"], ["kf"], "cast", to=TensorProto.FLOAT),
                 helper.make_node("Add", ["m", "kf"], ["y"], "add")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 3, 4, 4])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, None)], inits)
    model = juanji.onnx.load(helper.make_model(graph).SerializeToString())
    assert not _chains(model)
    x = _special_input((1, 3, 4, 4))[0:1]
    with juanji.no_grad():
        assert model(x).shape == (1, 3, 4, 4)


def test_export_and_copies_see_the_nodes(tmp_path):
    model = juanji.onnx.load(_paddle_block())
    x = _special_input((1, 3, 6, 6))
    x[~np.isfinite(x)] = 1.0
    path = tmp_path / "again.onnx"
    juanji.onnx.export(model, x, path)
    ops = [node.op_type for node in onnx.load(str(path)).graph.node]
    assert ops.count("Mul") == 3 and ops.count("Clip") == 1 and ops.count("Div") == 1
    again = juanji.onnx.load(path)
    assert len(_chains(again)) == 1
    copied = copy.deepcopy(again)
    with juanji.no_grad():
        np.testing.assert_array_equal(copied(x).data, model(x).data)
