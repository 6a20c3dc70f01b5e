"""juanji's kernel threads: the ops give the same numbers on one thread or several (bit for bit
at a given block size) and, with tiny blocks that split every array, the same as one block, in
float64 and float32. The threaded runs record the pool's tasks, so a run that never reached the
pool, or whose tasks all ran on one thread, fails instead of passing."""

import threading

import numpy as np
import pytest

import juanji
import juanji.nn.functional as F
from juanji import backend
from juanji.ops import conv as conv_ops
from juanji.ops import kernels

RNG = np.random.default_rng(0)
X = RNG.standard_normal((5, 6, 9, 8))
W3 = RNG.standard_normal((4, 6, 3, 3))
W_DEPTHWISE = RNG.standard_normal((12, 1, 3, 3))
W_POINTWISE = RNG.standard_normal((7, 6, 1, 1))
GAMMA, BETA = RNG.uniform(0.5, 1.5, 6), RNG.standard_normal(6)
RUNNING_MEAN, RUNNING_VAR = RNG.standard_normal(6), RNG.uniform(0.5, 2, 6)

CASES = {
    "conv im2col": lambda x, w: F.conv2d(x, w, None, 1, 1),
    "conv strided dilated": lambda x, w: F.conv2d(x, w, None, 2, 2, 2),
    "conv channels-first": lambda x, w: F.conv2d(x[:, :1], w[:, :1], None, 1, 1),
    "conv depthwise": lambda x, w: F.conv2d(x, w, None, 1, 1, 1, 6),
    "conv pointwise": lambda x, w: F.conv2d(x, w),
    "batch_norm train": lambda x, w: F.batch_norm(F.conv2d(x, w, None, 1, 1), None, None,
                                                  GAMMA[:4], BETA[:4], training=True),
    "batch_norm eval": lambda x, w: F.batch_norm(F.conv2d(x, w, None, 1, 1), RUNNING_MEAN[:4],
                                                 RUNNING_VAR[:4], GAMMA[:4], BETA[:4]),
    "relu": lambda x, w: F.relu(F.conv2d(x, w, None, 1, 1)),
    "relu on a strided view": lambda x, w: F.relu(F.conv2d(x, w, None, 1, 1)[:, :, ::2]),
    "relu6": lambda x, w: F.relu6(F.conv2d(x, w, None, 1, 1)),
    "max_pool": lambda x, w: F.max_pool2d(F.conv2d(x, w, None, 1, 1), 3, 2, 1),
    "max_pool tiling": lambda x, w: F.max_pool2d(F.conv2d(x, w, None, 1, 1), 2),
}
WEIGHTS = {"conv depthwise": W_DEPTHWISE, "conv pointwise": W_POINTWISE}
# cases whose kernels never reach juanji's pool, and why
UNTHREADED = {"conv pointwise": "a 1x1 stride-1 conv is one GEMM on the input, threaded by BLAS"}


class PoolRecorder:
    """Stands in for backend._as_worker, through which every task of a split runs (on a pool
    worker or in the calling thread, which takes a share): records the thread of each task.
    The first two tasks wait for each other (up to 30 s), so they must run at the same time on
    two threads; a pool of one thread breaks the barrier."""

    def __init__(self, as_worker):
        self.as_worker = as_worker
        self.threads = []
        self.lock = threading.Lock()
        self.first_two = threading.Barrier(2, timeout=30)

    def __call__(self, fn, item):
        with self.lock:
            self.threads.append(threading.current_thread())
            task = len(self.threads)
        if task <= 2:
            self.first_two.wait()
        return self.as_worker(fn, item)


def _run(name, dtype, threads, block_bytes, monkeypatch):
    """The output and the input and weight gradients of case `name`, and the pool's record."""
    monkeypatch.setattr(kernels, "_BLOCK_BYTES", block_bytes)
    monkeypatch.setattr(kernels, "_DIRECT_BLOCK_MACS", block_bytes)  # the convs' blocks of work
    monkeypatch.setattr(conv_ops, "_KEEP_COLUMNS_BYTES", 0)  # rebuild columns in blocks too
    recorder = PoolRecorder(backend._as_worker)
    monkeypatch.setattr(backend, "_as_worker", recorder)
    juanji.set_num_threads(threads)
    try:
        x = juanji.tensor(X.astype(dtype), requires_grad=True)
        w = juanji.tensor(WEIGHTS.get(name, W3).astype(dtype), requires_grad=True)
        y = CASES[name](x, w)
        assert y.dtype == dtype
        upstream = np.random.default_rng(1).standard_normal(y.shape).astype(dtype)
        (y * juanji.tensor(upstream)).sum().backward()
        return (y.data.copy(), x.grad.copy(), w.grad.copy()), recorder.threads
    finally:
        backend._num_threads = None
        monkeypatch.undo()


# one block against many: the same sums in another order, so equal up to rounding
BLOCK_RTOL = {np.float64: 1e-12, np.float32: 1e-5}


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name", CASES)
def test_threads_and_blocks_do_not_change_results(name, dtype, monkeypatch):
    one_block, _ = _run(name, dtype, 1, 1 << 30, monkeypatch)
    tiny_serial, serial_tasks = _run(name, dtype, 1, 64, monkeypatch)
    tiny_threaded, tasks = _run(name, dtype, 3, 64, monkeypatch)
    assert serial_tasks == []  # one thread: every block runs inline
    workers = {thread.ident for thread in tasks}
    if name in UNTHREADED:
        assert tasks == [], f"{name} now uses the pool: remove it from UNTHREADED"
    else:
        assert len(workers) >= 2, f"{len(tasks)} tasks on {len(workers)} threads"
    # the pool's workers, and the calling thread taking its share of the blocks
    assert all(thread.name.startswith("juanji") or thread is threading.current_thread()
               for thread in tasks)
    for a, b in zip(tiny_serial, tiny_threaded):
        np.testing.assert_array_equal(a, b)  # deterministic: block sums in block order
    for a, b in zip(one_block, tiny_serial):
        tol = BLOCK_RTOL[dtype] * float(np.abs(a).max())
        np.testing.assert_allclose(a, b, rtol=BLOCK_RTOL[dtype], atol=tol)


def test_parallel_map_keeps_order_runs_nested_calls_inline_and_raises():
    juanji.set_num_threads(3)
    try:
        assert backend.parallel_map(lambda i: i * i, range(10)) == [i * i for i in range(10)]
        nested = backend.parallel_map(lambda i: backend.parallel_map(lambda j: i + j, [0, 1]),
                                      range(4))
        assert nested == [[i, i + 1] for i in range(4)]
        with pytest.raises(ZeroDivisionError):
            backend.parallel_map(lambda i: 1 // (i - 2), range(4))
    finally:
        backend._num_threads = None


def test_thread_settings_are_checked(monkeypatch):
    with pytest.raises(ValueError, match=r"set_num_threads expects a positive int; got 0"):
        juanji.set_num_threads(0)
    monkeypatch.setenv("JUANJI_NUM_THREADS", "two")
    with pytest.raises(ValueError, match=r"JUANJI_NUM_THREADS must be a positive integer; "
                                         r"got 'two'"):
        juanji.get_num_threads()
    monkeypatch.setenv("JUANJI_NUM_THREADS", "3")
    assert juanji.get_num_threads() == 3
