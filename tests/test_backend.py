"""juanji.backend: the allocator setting that keeps freed array memory in the heap, and the
threads: BLAS on one thread inside every op, whatever was imported first."""

import platform
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from threadpoolctl import ThreadpoolController

import juanji
from juanji.backend import keep_freed_memory
from juanji.function import Function

# allocate and free a 64 MB array (above glibc's largest default mmap threshold) and print how
# many MB of resident memory the free gave back to the kernel
_PROBE = """
import os, numpy as np, juanji
rss = lambda: int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
array = np.ones(16 << 20, np.float32)
held = rss()
del array
print((held - rss()) >> 20)
"""


def _released_mb(setting):
    env = {"JUANJI_KEEP_FREED_MEMORY": setting, "PATH": ""}
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True,
                         text=True, check=True)
    return int(out.stdout)


def test_keep_freed_memory_keeps_a_freed_big_array_resident():
    took = keep_freed_memory()
    if platform.libc_ver()[0] != "glibc":
        assert took in (True, False)
        return
    assert took is True
    assert _released_mb("1") < 4  # kept in the heap for the next array
    assert _released_mb("0") > 60  # off: glibc unmaps it, the next array faults in anew


def _run_fresh(code, **env):
    env = {"PATH": "", **env}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True, timeout=120)
    return out.stdout.split()


_OPS_BLAS_PROBE = """
import os
import juanji
from juanji.function import Function
from threadpoolctl import ThreadpoolController


class Probe(Function):
    def forward(self, x):
        blas = ThreadpoolController().select(user_api="blas").lib_controllers
        Probe.seen = sorted({lib.num_threads for lib in blas})
        return x


Probe.apply(juanji.Tensor([1.0]))
print(juanji.get_num_threads(), Probe.seen, os.environ.get("OPENBLAS_THREAD_TIMEOUT"))
"""


def test_kernel_threads_do_not_depend_on_the_import_order():
    """Whichever comes first, juanji's kernels use every CPU (or JUANJI_NUM_THREADS) and its
    ops run BLAS on one thread; imported first, juanji has OpenBLAS's idle threads sleep
    (OPENBLAS_THREAD_TIMEOUT=4) unless the user set it."""
    import os

    cpus = str(len(os.sched_getaffinity(0)))
    blas = {"OPENBLAS_NUM_THREADS": "2"}
    assert _run_fresh(_OPS_BLAS_PROBE, **blas) == [cpus, "[1]", "4"]
    assert _run_fresh("import numpy\n" + _OPS_BLAS_PROBE, **blas) == [cpus, "[1]", "4"]
    assert _run_fresh("import numpy\n" + _OPS_BLAS_PROBE, OPENBLAS_THREAD_TIMEOUT="6", **blas) == [
        cpus, "[1]", "6"]
    assert _run_fresh("import numpy\n" + _OPS_BLAS_PROBE, JUANJI_NUM_THREADS="3", **blas) == [
        "3", "[1]", "4"]


def _blas_threads():
    return [lib.num_threads for lib in ThreadpoolController().select(user_api="blas")
            .lib_controllers]


class _RecordBlasThreads(Function):
    """An op whose forward and backward record the BLAS thread setting they run under."""

    seen = []

    def forward(self, x):
        self.seen.append(("forward", _blas_threads()))
        return x * 2

    def backward(self, gy):
        self.seen.append(("backward", _blas_threads()))
        return gy * 2


def test_ops_run_with_blas_on_one_thread_and_the_setting_comes_back():
    controller = ThreadpoolController().select(user_api="blas")
    with controller.limit(limits=2):
        before = _blas_threads()
        assert set(before) == {2}
        _RecordBlasThreads.seen.clear()
        x = juanji.Tensor(np.ones(3, np.float32), requires_grad=True)
        _RecordBlasThreads.apply(x).sum().backward()
        assert [seen for seen, threads in _RecordBlasThreads.seen if set(threads) != {1}] == []
        assert [seen for seen, _ in _RecordBlasThreads.seen] == ["forward", "backward"]
        assert _blas_threads() == before  # the user's own NumPy calls thread as before
        # also after an op raises, and after ops ran in several threads at once (OpenBLAS
        # takes the setting only from the main thread once its threads started: the hold
        # counts the callers and the outermost restores)
        with pytest.raises(ValueError):
            juanji.Tensor(np.ones((2, 3), np.float32)) @ juanji.Tensor(np.ones((2, 3), np.float32))
        assert _blas_threads() == before
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda _: _RecordBlasThreads.apply(x).sum().backward(), range(16)))
        assert _blas_threads() == before


# CPU time this process spends while its main thread sleeps 0.2 s right after a product of two
# 1000x1000 matrices: OpenBLAS's woken worker threads spin (25-50 ms measured); asleep, ~0
_SPIN_PROBE = """
import time, numpy as np
{imports}
a = np.random.default_rng(0).random((1000, 1000), dtype=np.float32)
{product}
start = time.process_time()
time.sleep(0.2)
print(round((time.process_time() - start) * 1e3, 1))
"""


def _cpu_ms_after(product, imports=""):
    code = _SPIN_PROBE.format(imports=imports, product=product)
    return float(_run_fresh(code, OPENBLAS_NUM_THREADS="2")[0])


def test_a_juanji_product_never_leaves_openblas_threads_spinning():
    """NumPy imported first, OPENBLAS_THREAD_TIMEOUT unset: a product in NumPy leaves OpenBLAS's
    threads spinning on the cores; the same product in juanji (its matmul op, a linear layer)
    does not wake them. Imported before NumPy, juanji has OpenBLAS's threads sleep at once."""
    if not any(lib["internal_api"] == "openblas" for lib in ThreadpoolController().info()):
        pytest.skip("the spinning worker threads are OpenBLAS's")
    assert _cpu_ms_after("a @ a") > 5  # the probe sees spinning threads
    juanji_product = ("x = juanji.Tensor(a, requires_grad=True)\n"
                      "juanji.nn.functional.linear(x @ x, x).sum().backward()")
    assert _cpu_ms_after(juanji_product, "import juanji, juanji.nn.functional") < 5
    code = "import juanji\n" + _SPIN_PROBE.format(imports="", product="a @ a")
    assert float(_run_fresh(code, OPENBLAS_NUM_THREADS="2")[0]) < 5




@pytest.mark.parametrize("shape_a, shape_b", [
    ((67, 40), (40, 23)),  # M >= N: blocks of rows
    ((9, 40), (40, 71)),  # N > M: blocks of columns
    ((5, 30, 20), (5, 20, 11)),  # as many products as threads or more: blocks of products
    ((2, 30, 20), (2, 20, 11)),  # fewer: each product split
])
def test_matmul_split_over_threads_equals_one_call(shape_a, shape_b, monkeypatch):
    """backend.matmul on a big product (BLAS held on one thread, as in every op): split over
    juanji's threads, each block its own slice of the result, equal to one np.matmul."""
    monkeypatch.setattr(juanji.backend, "_SPLIT_MACS", 1)
    rng = np.random.default_rng(0)
    a = rng.standard_normal(shape_a).astype(np.float32)
    b = rng.standard_normal(shape_b).astype(np.float32)
    blocks = []  # the items each parallel_map call spreads (a worker may not wake for them)
    monkeypatch.setattr(juanji.backend, "parallel_map",
                        lambda fn, items, calls_blas=False, real=juanji.backend.parallel_map: (
                            blocks.append(list(items)), real(fn, blocks[-1], calls_blas))[1])
    juanji.set_num_threads(3)
    try:
        with juanji.backend.blas_on_one_thread:
            got = juanji.backend.matmul(a, b)
    finally:
        juanji.set_num_threads(2)
    assert max((len(items) for items in blocks), default=0) >= 2  # it was split
    np.testing.assert_allclose(got, np.matmul(a, b), rtol=1e-6, atol=1e-6)


def test_matmul_split_along_k_is_within_float32_summation_error(monkeypatch):
    """A long reduction (K >= 8 max(M, N)) is split into chunks of K summed in chunk order:
    another summation order than one BLAS call, so the oracle is the float64 product, within
    the float32 bound K * eps * (|a| @ |b|); the chunks depend on K alone, so 2 and 3 threads
    give the same bits."""
    monkeypatch.setattr(juanji.backend, "_SPLIT_MACS", 1)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((9, 5000)).astype(np.float32)
    b = rng.standard_normal((5000, 7)).astype(np.float32)
    blocks = []
    monkeypatch.setattr(juanji.backend, "parallel_map",
                        lambda fn, items, calls_blas=False, real=juanji.backend.parallel_map: (
                            blocks.append(list(items)), real(fn, blocks[-1], calls_blas))[1])
    results = []
    for threads in (2, 3):
        juanji.set_num_threads(threads)
        try:
            with juanji.backend.blas_on_one_thread:
                results.append(juanji.backend.matmul(a, b))
        finally:
            juanji.set_num_threads(2)
    assert [len(items) for items in blocks] == [4, 4]  # K = 5000: four chunks
    np.testing.assert_array_equal(results[0], results[1])
    exact = a.astype(np.float64) @ b.astype(np.float64)
    bound = a.shape[1] * np.finfo(np.float32).eps * (np.abs(a) @ np.abs(b))
    assert np.all(np.abs(results[0] - exact) <= bound)
