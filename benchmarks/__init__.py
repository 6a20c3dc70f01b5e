"""Speed and memory of juanji against PyTorch on the same machine; never run by pytest.

Importing the package pins the BLAS thread pools to JUANJI_BENCH_THREADS (default 2) before
NumPy or torch can start them, so `python -m benchmarks.X` compares like with like.
"""

import os

THREADS = int(os.environ.get("JUANJI_BENCH_THREADS", "2"))
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, str(THREADS))
