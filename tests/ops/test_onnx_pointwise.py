"""Forward conformance with the ONNX backend node test cases shipped in the `onnx` package.

Every case of the operators below (their node cases and the function-expanded variants, which
carry the same data) is run through juanji functions and compared with ONNX's expected outputs.
Cases juanji cannot express are listed with the reason; the test asserts the exact counts.

The cases are collected in a subprocess: `onnx.backend.test.case.node.collect_testcases` builds
them as a side effect of importing its modules and keeps them in module-level state, so a second
call in the same process (with or without an op filter) returns whatever the first call left.
Collecting in a fresh interpreter keeps this test independent of any other test that collects.
"""

import pickle
import subprocess
import sys

import numpy as np
import onnx  # noqa: E402, F401  (a test dependency)
import pytest

import juanji
import juanji.nn.functional as F
from juanji.ops import activation

OPS = ("BatchNormalization", "LRN", "Relu", "LeakyRelu", "Elu", "Selu", "Sigmoid", "Softmax",
       "LogSoftmax", "Gemm", "Dropout", "Flatten", "HardSigmoid", "HardSwish", "Gelu", "PRelu")

# Counts with onnx 1.23.2; each runner's docstring says what is compared and how.
EXPECTED_NODE_CASES = 74
EXPECTED_EXPANDED_CASES = 48
EXPECTED_NOT_APPLICABLE = {}

_COLLECT = r"""
import pickle, sys, warnings
warnings.simplefilter("ignore")
from onnx import helper
from onnx.backend.test.case.node import collect_testcases

ops = set(sys.argv[1].split(","))
records, base = [], {}
cases = collect_testcases()
for case in cases:
    nodes = case.model.graph.node
    if len(nodes) == 1 and nodes[0].op_type in ops and "_expanded" not in case.name:
        node = nodes[0]
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        opset = max(o.version for o in case.model.opset_import if o.domain in ("", "ai.onnx"))
        base[case.name] = (node.op_type, attrs, opset, len(node.input), len(node.output))
for case in cases:
    name = case.name.split("_expanded")[0]
    if name not in base:
        continue
    op, attrs, opset, n_in, n_out = base[name]
    inputs, outputs = case.data_sets[0]
    records.append(dict(name=case.name, op=op, attrs=attrs, opset=opset,
                        expanded=case.name != name, inputs=list(inputs), outputs=list(outputs)))
sys.stdout.buffer.write(pickle.dumps(records))
"""


@pytest.fixture(scope="module")
def cases():
    result = subprocess.run([sys.executable, "-c", _COLLECT, ",".join(OPS)], capture_output=True,
                            check=True, timeout=300)
    return pickle.loads(result.stdout)


class NotApplicable(Exception):
    """A case that juanji cannot express; the message says why."""


def _t(a):
    return juanji.tensor(np.asarray(a))


def _batch_norm(attrs, inputs, opset):
    """Inference: the given mean/var. Training (training_mode=1): y and the updated running
    mean compare directly (ONNX momentum m = 1 - PyTorch momentum); juanji, like PyTorch, puts
    the unbiased batch variance into running_var where ONNX puts the biased one, so the Bessel
    factor n/(n-1) is taken back out of juanji's update before comparing."""
    x, s, b, mean, var = inputs
    eps = attrs.get("epsilon", 1e-5)
    if not attrs.get("training_mode", 0):
        return [F.batch_norm(_t(x), _t(mean), _t(var), _t(s), _t(b), training=False, eps=eps)]
    m = attrs.get("momentum", 0.9)
    running_mean, running_var = _t(mean.copy()), _t(var.copy())
    y = F.batch_norm(_t(x), running_mean, running_var, _t(s), _t(b), training=True,
                     momentum=1 - m, eps=eps)
    n = x.size // x.shape[1]
    kept = var * np.float32(m)
    biased_update = kept + (running_var.data - kept) * np.float32((n - 1) / n)
    return [y, running_mean, biased_update]


def _lrn(attrs, inputs, opset):
    size = attrs["size"]
    if size % 2 == 0:
        raise NotApplicable("ONNX centres an even LRN window one channel later than PyTorch")
    return [F.local_response_norm(_t(inputs[0]), size, attrs.get("alpha", 1e-4),
                                  attrs.get("beta", 0.75), attrs.get("bias", 1.0))]


def _selu(attrs, inputs, opset):
    x = _t(inputs[0])
    if "alpha" not in attrs and "gamma" not in attrs:
        return [F.selu(x)]
    alpha = attrs.get("alpha", 1.67326319217681884765625)
    gamma = attrs.get("gamma", 1.05070102214813232421875)
    return [F.elu(x, alpha) * gamma]


def _softmax(fn, default_legacy_axis=1):
    """Opset >= 13 normalises along `axis` (default -1); older opsets flatten to 2-D at axis."""

    def run(attrs, inputs, opset):
        x = _t(inputs[0])
        if opset >= 13:
            return [fn(x, attrs.get("axis", -1))]
        axis = attrs.get("axis", default_legacy_axis) % max(x.ndim, 1)
        rows = int(np.prod(x.shape[:axis]))
        return [fn(x.reshape(rows, -1), 1).reshape(x.shape)]

    return run


def _gemm(attrs, inputs, opset):
    a, b = _t(inputs[0]), _t(inputs[1])
    a = a.T if attrs.get("transA", 0) else a
    b = b.T if attrs.get("transB", 0) else b
    y = (a @ b) * attrs.get("alpha", 1.0)
    if len(inputs) > 2:
        y = y + _t(inputs[2]) * attrs.get("beta", 1.0)
    return [y]


def _dropout_setting(attrs, inputs, opset):
    """(ratio, training) of a Dropout case: opset < 12 has only inference, ratio an attribute;
    later opsets take ratio and training_mode as optional inputs (defaults 0.5, false)."""
    if opset < 12:
        return attrs.get("ratio", 0.5), False
    ratio = float(inputs[1]) if len(inputs) > 1 else 0.5
    return ratio, bool(inputs[2]) if len(inputs) > 2 else False


def _kept(x, y):
    """juanji's keep-mask, read off its output: an element is dropped where y is 0 but x is
    not (a zero in x reads as kept either way)."""
    return (y != 0) | (x == 0)


def _dropout(attrs, inputs, opset):
    """Inference, and training with ratio 0: F.dropout's output must be x and its keep-mask
    all true (the mask output is juanji's, read off y). Training with a ratio > 0 draws a
    random mask and is checked by `_check_random_dropout` instead."""
    ratio, training = _dropout_setting(attrs, inputs, opset)
    y = F.dropout(_t(inputs[0]), ratio, training=training)
    return [y, _kept(inputs[0], y.data)]


def _check_random_dropout(case):
    """Training with a ratio > 0. ONNX's reference draws its mask with NumPy's legacy
    generator and juanji with its own, so the draws cannot match element for element. What
    must match is the rule: each element of F.dropout's output is either 0 (dropped) or x times
    the scale ONNX's expected output shows for its kept elements (1 / (1 - ratio)), some of each
    are present, and the mask output (juanji's, read off y) has ONNX's shape and dtype.
    Whether the fraction kept is 1 - ratio is `test_training_dropout_keeps_1_minus_ratio`."""
    x, expected = case["inputs"][0], case["outputs"][0]
    ratio, _ = _dropout_setting(case["attrs"], case["inputs"], case["opset"])
    assert np.all(x != 0), "the input must have no zeros to read the mask off the output"
    y = F.dropout(_t(x), ratio, training=True).data
    if y.shape != expected.shape or y.dtype != expected.dtype:
        return f"output 0: {y.shape} {y.dtype} != {expected.shape} {expected.dtype}"
    onnx_kept = expected != 0
    onnx_scale = expected[onnx_kept] / x[onnx_kept]
    if not np.allclose(onnx_scale, onnx_scale[0], rtol=1e-6):
        return f"ONNX's kept values have no single scale: {onnx_scale}"
    kept = _kept(x, y)
    if kept.all() or not kept.any():
        return f"{kept.sum()} of {kept.size} kept at ratio {ratio}"
    try:
        np.testing.assert_allclose(y[kept], x[kept] * onnx_scale[0], rtol=1e-6, atol=0)
    except AssertionError as error:
        return f"kept values are not x * {onnx_scale[0]} (ONNX's scale): {error}"
    if len(case["outputs"]) > 1:
        mask = case["outputs"][1]
        if kept.shape != mask.shape or kept.dtype != mask.dtype:
            return f"mask: {kept.shape} {kept.dtype} != {mask.shape} {mask.dtype}"
    return None


def _flatten(attrs, inputs, opset):
    x = _t(inputs[0])
    axis = attrs.get("axis", 1)
    axis = axis + x.ndim if axis < 0 else axis  # ONNX: axis in [-r, r]
    if axis == 0:
        return [F.flatten(x, 0).unsqueeze(0)]
    if axis == x.ndim:
        return [F.flatten(x, 0).unsqueeze(1)]
    return [F.flatten(F.flatten(x, axis), 0, axis - 1)]


def _hardsigmoid(attrs, inputs, opset):
    """ONNX's max(0, min(1, alpha x + beta)) is PyTorch's hardsigmoid, relu6(z + 3) / 6, at
    z = 6 (alpha x + beta) - 3; so every case, whatever alpha and beta, runs F.hardsigmoid."""
    alpha, beta = attrs.get("alpha", 0.2), attrs.get("beta", 0.5)
    return [F.hardsigmoid(_t(inputs[0]) * (6 * alpha) + (6 * beta - 3))]


def _gelu(attrs, inputs, opset):
    approximate = attrs.get("approximate", b"none")
    approximate = approximate.decode() if isinstance(approximate, bytes) else approximate
    return [F.gelu(_t(inputs[0]), approximate)]


def _prelu(attrs, inputs, opset):
    """ONNX broadcasts the slope NumPy-style (here along the last axis, or elementwise), not
    per channel as F.prelu does, so juanji's PRelu op runs with the slope as given."""
    return [activation.PRelu.apply(_t(inputs[0]), _t(inputs[1]))]


RUNNERS = {
    "BatchNormalization": _batch_norm,
    "LRN": _lrn,
    "Relu": lambda attrs, inputs, opset: [F.relu(_t(inputs[0]))],
    "LeakyRelu": lambda attrs, inputs, opset: [F.leaky_relu(_t(inputs[0]),
                                                            attrs.get("alpha", 0.01))],
    "Elu": lambda attrs, inputs, opset: [F.elu(_t(inputs[0]), attrs.get("alpha", 1.0))],
    "Selu": _selu,
    "Sigmoid": lambda attrs, inputs, opset: [F.sigmoid(_t(inputs[0]))],
    "Softmax": _softmax(F.softmax),
    "LogSoftmax": _softmax(F.log_softmax),
    "Gemm": _gemm,
    "Dropout": _dropout,
    "Flatten": _flatten,
    "HardSigmoid": _hardsigmoid,
    "HardSwish": lambda attrs, inputs, opset: [F.hardswish(_t(inputs[0]))],
    "Gelu": _gelu,
    "PRelu": _prelu,
}


def _run(case):
    """Compare every output of the case; returns None on success, a message otherwise."""
    if case["op"] == "Dropout":
        ratio, training = _dropout_setting(case["attrs"], case["inputs"], case["opset"])
        if training and ratio > 0:
            return _check_random_dropout(case)
    got = RUNNERS[case["op"]](case["attrs"], case["inputs"], case["opset"])
    for i, expected in enumerate(case["outputs"]):
        out = got[i].data if isinstance(got[i], juanji.Tensor) else np.asarray(got[i])
        if out.shape != expected.shape or out.dtype != expected.dtype:
            return f"output {i}: {out.shape} {out.dtype} != {expected.shape} {expected.dtype}"
        try:
            np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-7)
        except AssertionError as error:
            return f"output {i}: {error}"
    return None


def test_every_case_of_each_operator_is_collected(cases):
    found = {c["op"] for c in cases}
    assert found == set(OPS), f"no cases for {set(OPS) - found}"


def test_onnx_node_cases_pass(cases):
    passed, failed, not_applicable = [], {}, {}
    for case in cases:
        try:
            problem = _run(case)
        except NotApplicable as reason:
            not_applicable[case["name"]] = str(reason)
            continue
        if problem is None:
            passed.append(case)
        else:
            failed[case["name"]] = problem
    assert not failed, f"{len(failed)} ONNX cases differ: {failed}"
    assert not_applicable == EXPECTED_NOT_APPLICABLE
    node = sum(not c["expanded"] for c in passed)
    expanded = sum(c["expanded"] for c in passed)
    print(f"\nONNX conformance: {len(passed)} of {len(cases)} passed ({node} node cases, "
          f"{expanded} function-expanded), {len(not_applicable)} not applicable")
    assert (node, expanded) == (EXPECTED_NODE_CASES, EXPECTED_EXPANDED_CASES)


@pytest.mark.parametrize("ratio", [0.2, 0.5, 0.75])
def test_training_dropout_keeps_1_minus_ratio(ratio):
    """F.dropout and ONNX's reference Dropout (training mode) on the same large input: each
    keeps a fraction 1 - ratio (within 5 standard deviations of the binomial), scales what it
    keeps by the same 1 / (1 - ratio), and so keeps the mean of x."""
    from onnx import helper
    from onnx.reference import ReferenceEvaluator

    x = np.random.default_rng(0).uniform(0.5, 1.5, 200_000).astype(np.float32)
    node = helper.make_node("Dropout", ["x", "r", "t"], ["y", "mask"], seed=0)
    onnx_y, onnx_mask = ReferenceEvaluator(node).run(
        None, {"x": x, "r": np.float32(ratio), "t": np.bool_(True)})
    y = F.dropout(_t(x), ratio, training=True).data
    kept = _kept(x, y)
    sigma = np.sqrt(ratio * (1 - ratio) / x.size)
    for name, keep, out in (("juanji", kept, y), ("onnx", onnx_mask, onnx_y)):
        assert abs(keep.mean() - (1 - ratio)) < 5 * sigma, (name, keep.mean())
        assert not out[~keep].any(), name
        np.testing.assert_allclose(out[keep], x[keep] / np.float32(1 - ratio), rtol=1e-6)
    # E[y] = x elementwise; the mean of y has variance mean(x^2) * ratio / (1 - ratio) / size
    mean_sigma = np.sqrt(np.mean(x.astype(np.float64) ** 2) * ratio / (1 - ratio) / x.size)
    assert abs(y.mean(dtype=np.float64) - x.mean(dtype=np.float64)) < 5 * mean_sigma


def test_hardsigmoid_at_pytorchs_slope_matches_onnx_reference_and_torch():
    """ONNX HardSigmoid with alpha = 1/6, beta = 1/2 (onnx.reference), torch's hardsigmoid and
    F.hardsigmoid agree on a grid through both corners (-3 and 3) and the tails."""
    import torch
    from onnx import helper
    from onnx.reference import ReferenceEvaluator

    x = np.concatenate([np.linspace(-4, 4, 801), [-3, 3, -1e4, 1e4]]).astype(np.float32)
    node = helper.make_node("HardSigmoid", ["x"], ["y"], alpha=1 / 6, beta=0.5)
    (onnx_y,) = ReferenceEvaluator(node).run(None, {"x": x})
    ours = F.hardsigmoid(_t(x)).data
    np.testing.assert_allclose(ours, torch.nn.functional.hardsigmoid(torch.from_numpy(x)),
                               rtol=0, atol=0)
    np.testing.assert_allclose(ours, onnx_y, rtol=1e-6, atol=1e-7)
    assert ours[-4:].tolist() == [0.0, 1.0, 0.0, 1.0]
