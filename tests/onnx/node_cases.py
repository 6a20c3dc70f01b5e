"""The ONNX backend node test cases (shipped in the `onnx` package) as importer inputs.

`collect(ops)` returns one record per single-node case of the given op types: the case's
model as bytes (fed to `juanji.onnx.load` like a file), its first data set and tolerances.
collect_testcases keeps module-level state that a second call in the same process would
see, so the cases are built in a fresh interpreter.
"""

import pickle
import subprocess
import sys

_COLLECT = r"""
import pickle, sys, warnings
warnings.simplefilter("ignore")  # other operators' generators warn about overflows
from onnx import TensorProto, numpy_helper
from onnx.backend.test.case.node import collect_testcases


def array(value):
    return numpy_helper.to_array(value) if isinstance(value, TensorProto) else value


ops = set(sys.argv[1].split(","))
records = []
for case in collect_testcases():
    if case.kind != "node" or case.model is None or len(case.model.graph.node) != 1:
        continue
    node = case.model.graph.node[0]
    if node.op_type not in ops or node.domain not in ("", "ai.onnx"):
        continue
    inputs, outputs = case.data_sets[0]
    records.append(dict(name=case.name, op=node.op_type, model=case.model.SerializeToString(),
                        inputs=[array(v) for v in inputs], outputs=[array(v) for v in outputs],
                        rtol=case.rtol,
                        atol=case.atol))
sys.stdout.buffer.write(pickle.dumps(sorted(records, key=lambda r: r["name"])))
"""


def collect(ops):
    result = subprocess.run([sys.executable, "-c", _COLLECT, ",".join(sorted(ops))],
                            capture_output=True, check=True, timeout=300)
    return pickle.loads(result.stdout)
