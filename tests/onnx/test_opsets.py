"""Per-opset forms of ops (attributes that became inputs, changed defaults) against onnx's
ReferenceEvaluator at the node's own opset, or against the spec written out in NumPy where
the reference does not implement the old form (Softmax before 13 flattens to 2-D; Resize-10
takes (X, scales) and maps asymmetrically like Upsample). BatchNormalization is not among
them: the reference miscomputes it at opsets 9-13."""

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import juanji.onnx

X = np.random.default_rng(0).standard_normal((2, 3, 4, 5)).astype(np.float32)


def _const(name, values, dtype=np.int64):
    return numpy_helper.from_array(np.asarray(values, dtype=dtype), name)


CASES = {  # name: (opset, node, initializers)
    "softmax_11_flattens_at_axis_1": (11, helper.make_node("Softmax", ["x"], ["y"]), []),
    "softmax_11_axis_2": (11, helper.make_node("Softmax", ["x"], ["y"], axis=2), []),
    "logsoftmax_13_last_axis": (13, helper.make_node("LogSoftmax", ["x"], ["y"]), []),
    "clip_6_attributes": (6, helper.make_node("Clip", ["x"], ["y"], min=-0.5, max=0.7), []),
    "clip_11_inputs": (11, helper.make_node("Clip", ["x", "lo", "hi"], ["y"]),
                       [_const("lo", -0.2, np.float32), _const("hi", 0.3, np.float32)]),
    "pad_2_attributes": (2, helper.make_node("Pad", ["x"], ["y"], pads=[0, 0, 1, 2, 0, 0, 2, 1],
                                             mode="reflect"), []),
    "pad_11_edge_inputs": (11, helper.make_node("Pad", ["x", "p"], ["y"], mode="edge"),
                           [_const("p", [0, 0, 2, 1, 0, 0, 1, 3])]),
    "unsqueeze_11_axes_attribute": (11, helper.make_node("Unsqueeze", ["x"], ["y"],
                                                         axes=[0, -1]), []),
    "unsqueeze_13_axes_input": (13, helper.make_node("Unsqueeze", ["x", "a"], ["y"]),
                                [_const("a", [1])]),
    "reducemean_13_axes_attribute": (13, helper.make_node("ReduceMean", ["x"], ["y"],
                                                          axes=[2, 3], keepdims=0), []),
    "reducemean_18_axes_input": (18, helper.make_node("ReduceMean", ["x", "a"], ["y"]),
                                 [_const("a", [1])]),
    "split_11_attribute": (11, helper.make_node("Split", ["x"], ["y", "z"], axis=3,
                                                split=[2, 3]), []),
    "slice_9_attributes": (9, helper.make_node("Slice", ["x"], ["y"], starts=[1, -3],
                                               ends=[100, -1], axes=[1, 3]), []),
    "upsample_9_nearest": (9, helper.make_node("Upsample", ["x", "s"], ["y"], mode="nearest"),
                           [_const("s", [1, 1, 2, 3], np.float32)]),
    "resize_10_nearest": (10, helper.make_node("Resize", ["x", "s"], ["y"], mode="nearest"),
                          [_const("s", [1, 1, 2, 2], np.float32)]),
    "resize_11_linear_align_corners": (11, helper.make_node(
        "Resize", ["x", "roi", "s"], ["y"], mode="linear",
        coordinate_transformation_mode="align_corners"),
        [_const("roi", [], np.float32), _const("s", [1, 1, 1.5, 0.6], np.float32)]),
    "resize_13_sizes_pytorch_half_pixel": (13, helper.make_node(
        "Resize", ["x", "", "", "n"], ["y"], mode="linear",
        coordinate_transformation_mode="pytorch_half_pixel"), [_const("n", [2, 3, 7, 3])]),
    "dropout_7_ratio_attribute": (7, helper.make_node("Dropout", ["x"], ["y"], ratio=0.3), []),
}


def _softmax_2d(x, axis):
    rows = x.reshape(int(np.prod(x.shape[:axis])), -1)
    e = np.exp(rows - rows.max(1, keepdims=True))
    return (e / e.sum(1, keepdims=True)).reshape(x.shape)


SPEC = {  # cases whose old form ReferenceEvaluator does not implement
    "softmax_11_flattens_at_axis_1": lambda: _softmax_2d(X, 1),
    "softmax_11_axis_2": lambda: _softmax_2d(X, 2),
    "resize_10_nearest": lambda: X.repeat(2, axis=2).repeat(2, axis=3),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_opset_forms_match_the_reference(name):
    opset, node, inits = CASES[name]
    graph = helper.make_graph(
        [node], name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in node.output],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    want = [SPEC[name]()] if name in SPEC else ReferenceEvaluator(model).run(None, {"x": X})
    got = juanji.onnx.load(model.SerializeToString())(X)
    got = got if isinstance(got, tuple) else (got,)
    for g, w in zip(got, want):
        assert g.shape == w.shape
        np.testing.assert_allclose(g.data, w, rtol=1e-5, atol=1e-6)
