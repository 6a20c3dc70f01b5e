"""The ONNX backend node test cases of every supported op, run through `juanji.onnx.load`.

Each single-node case's model goes through the importer as bytes (as a file would) and its
outputs are compared with ONNX's expected ones at the case's own tolerance; integer and
boolean outputs exactly. float16 and bfloat16 values run as float32 (the documented upcast),
so their expected outputs are compared after the same upcast. Cases that do not apply are
listed by name (fnmatch patterns) with the reason, and the test checks that each of them
really fails (is refused at load, or differs), so the list cannot go stale silently.
"""

import fnmatch
from collections import Counter

import numpy as np
import pytest

import juanji
import juanji.onnx
from tests.onnx.node_cases import collect

_3D = ("3-D (volumetric) window: juanji runs 1-D and 2-D convolutions and pools (and 3-D "
       "average pools)")
_NARROW = ("Cast to a narrow type (float8, float4, e8m0, int4, int2): juanji casts to float, "
           "double, float16, bfloat16, bool and 8- to 64-bit integers")
_NARROW_TYPES = ("FLOAT8*", "FLOAT4E2M1", "INT4", "UINT4", "INT2", "UINT2")
_SATURATE = ("CastLike to a float8 type: ONNX saturates out-of-range values; "
             "NumPy's cast gives inf / NaN")
_BF16 = "bfloat16 runs as float32: the expected value carries bfloat16 rounding"
SKIPS = {
    "test_convtranspose_3d": _3D,
    "test_maxpool_3d_*": _3D,
    "test_lppool_3d_default": _3D,
    "test_batchnorm_*_training_mode": ("training outputs (updated running mean / variance) are "
                                       "not graph outputs in juanji: module.train() trains"),
    **{f"test_training_dropout{suffix}": "training-mode Dropout: ONNX's expected output uses "
       "the random mask of its own generator" for suffix in ("", "_mask", "_default",
                                                            "_default_mask")},
    "test_identity_opt": "optional-typed graph input: juanji takes tensors",
    "test_identity_sequence": "sequence-typed graph input: juanji takes tensors",
    "test_reduce_max_empty_set*": "reduction over an empty axis (NumPy's max has no identity)",
    "test_reduce_min_empty_set": "reduction over an empty axis (NumPy's min has no identity)",
    **{f"test_cast_*_to_{t}": _NARROW for t in _NARROW_TYPES},
    **{f"test_castlike_*_to_{t}_expanded": _NARROW for t in _NARROW_TYPES},
    "test_castlike_FLOAT*_to_FLOAT8*": _SATURATE,
    "test_cast*_to_BFLOAT16*": _BF16,
    "test_celu_bfloat16": _BF16,
}


def skip_reason(name):
    for pattern, reason in SKIPS.items():
        if fnmatch.fnmatchcase(name, pattern):
            return reason
    return None


@pytest.fixture(scope="module")
def cases():
    ops = set(juanji.onnx.SUPPORTED_OPS)
    return collect(ops)


def _upcast(array):
    array = np.asarray(array)
    if array.dtype == np.float16 or array.dtype.name == "bfloat16":
        return array.astype(np.float32)
    return array


def run_case(case):
    """None if juanji's outputs match ONNX's expected ones, else what differs."""
    try:
        model = juanji.onnx.load(case["model"])
        got = model(*case["inputs"])
    except (juanji.onnx.OnnxImportError, ValueError, TypeError) as error:
        return f"{type(error).__name__}: {error}"
    got = got if isinstance(got, tuple) else (got,)
    if len(got) != len(case["outputs"]):
        return f"{len(got)} outputs, expected {len(case['outputs'])}"
    for i, (out, want) in enumerate(zip(got, case["outputs"])):
        out, want = _upcast(out.data), _upcast(want)
        if out.shape != want.shape:
            return f"output {i}: shape {out.shape} != {want.shape}"
        if out.dtype != want.dtype:
            return f"output {i}: dtype {out.dtype} != {want.dtype}"
        try:
            if want.dtype.kind in "iub":
                np.testing.assert_array_equal(out, want)
            else:
                np.testing.assert_allclose(out, want, rtol=case["rtol"], atol=case["atol"])
        except AssertionError as error:
            return f"output {i}: {error}"
    return None


def test_every_supported_op_has_node_cases(cases):
    without = set(juanji.onnx.SUPPORTED_OPS) - {c["op"] for c in cases}
    assert not without, f"no node cases for {sorted(without)}"


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # log(0), casts of NaN in some cases
def test_node_cases_pass_through_the_importer(cases):
    passed, skipped, failed, stale = Counter(), Counter(), {}, []
    for case in cases:
        problem = run_case(case)
        reason = skip_reason(case["name"])
        if reason is not None:
            skipped[case["op"]] += 1
            if problem is None:
                stale.append(case["name"])
        elif problem is None:
            passed[case["op"]] += 1
        else:
            failed[case["name"]] = problem
    print("\nONNX node cases through juanji.onnx.load (passed / skipped):")
    for op in sorted(set(passed) | set(skipped)):
        print(f"  {op:24s} {passed[op]:4d} / {skipped[op]}")
    print(f"  total {sum(passed.values())} passed, {sum(skipped.values())} skipped")
    assert not failed, f"{len(failed)} cases differ: {failed}"
    assert not stale, f"listed as skipped but pass (remove from SKIPS): {stale}"
    unused = [p for p in SKIPS if not any(fnmatch.fnmatchcase(c["name"], p) for c in cases)]
    assert not unused, f"SKIPS patterns that match no case: {unused}"
