"""Speed and memory of juanji against PyTorch on the same machine; never run by pytest.

Importing the package pins the BLAS thread pools and juanji's own to JUANJI_BENCH_THREADS
(default 2) before NumPy or torch can start them, so `python -m benchmarks.X` compares like
with like.
"""

import os

THREADS = int(os.environ.get("JUANJI_BENCH_THREADS", "2"))
# benchmarks/speed.py's processes set their own environment, as a user's script would have it
_CHILD = os.environ.get("JUANJI_BENCH_CHILD") == "1"
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "JUANJI_NUM_THREADS"):
    if not _CHILD:
        os.environ.setdefault(_var, str(THREADS))
# OpenBLAS's threads sleep right after each product instead of spinning for ~0.1 s on the
# cores juanji's kernel threads use (what `import juanji` sets when it comes before NumPy)
if not _CHILD:
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
