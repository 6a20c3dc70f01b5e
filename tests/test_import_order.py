"""juanji's speed does not depend on what a script imported before it (issue 17).

OpenBLAS's worker threads spin for about 0.1 s after each threaded product unless
OPENBLAS_THREAD_TIMEOUT was set before NumPy loaded it; juanji used to set it on import, so a
script that imported NumPy first got juanji's kernels fighting spinning threads (a ResNet-20
step 2.7x slower). Now every op holds BLAS on one thread (juanji.backend.blas_on_one_thread).
Fresh processes, interleaved, compared by ratio only: no absolute time is asserted.
"""

import statistics
import subprocess
import sys

import pytest

_STEP = """
import time
{imports}
import numpy as np
from juanji import models, optim
from juanji.nn import functional as F
juanji.manual_seed(0)
model = models.create_model("resnet20", num_classes=10)
opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
rng = np.random.default_rng(0)
x = juanji.Tensor(rng.standard_normal((64, 3, 32, 32), dtype=np.float32))
y = rng.integers(0, 10, 64)
times = []
for step in range(8):
    start = time.perf_counter()
    opt.zero_grad()
    F.cross_entropy(model(x), y).backward()
    opt.step()
    times.append(time.perf_counter() - start)
print(sorted(times[2:])[len(times[2:]) // 2])
"""
_ORDERS = {"juanji first": "import juanji\nimport numpy\nimport torch",
           "NumPy and torch first": "import numpy\nimport torch\nimport juanji"}


def _step_seconds(imports):
    env = {"PATH": "", "OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2"}  # nothing else
    out = subprocess.run([sys.executable, "-c", _STEP.format(imports=imports)], env=env,
                         capture_output=True, text=True, timeout=300, check=True)
    return float(out.stdout.split()[-1])


@pytest.mark.slow
def test_resnet20_step_is_as_fast_when_numpy_and_torch_come_first():
    times = {order: [] for order in _ORDERS}
    for _ in range(3):  # rounds interleave the orders, so load drifts hit both
        for order, imports in _ORDERS.items():
            times[order].append(_step_seconds(imports))
    best = {order: min(seconds) for order, seconds in times.items()}
    ratio = best["NumPy and torch first"] / best["juanji first"]
    medians = {order: round(statistics.median(s) * 1e3) for order, s in times.items()}
    # measured 1.0 (juanji's fix) against 2.7 before it; a generous bound, by ratio only
    assert ratio < 1.2, f"step ms by import order: {medians}"
