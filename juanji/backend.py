"""Array backend dispatch: NumPy always, CuPy when installed.

This is the only module that may import cupy. Ops call `xp_of(array)` to get the module that
owns an array and build new arrays with it, so the same op code runs on either backend.

It also sets how the C allocator treats big NumPy buffers (see `keep_freed_memory`), once, when
juanji is imported, and owns the thread pool the kernels split their sample blocks over
(`parallel_map`, `set_num_threads`).
"""

import contextlib
import ctypes
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

# OpenBLAS's worker threads spin for about 0.1 s after every matrix product (2^28 cycles,
# OPENBLAS_THREAD_TIMEOUT=28), holding the cores juanji's own kernel threads need; at 4 they
# sleep at once. OpenBLAS reads the variable when NumPy loads it, so it only takes effect when
# juanji is imported first or the user set it. Otherwise juanji's kernels stay on one thread
# (see get_num_threads): two threads against a spinning BLAS were measured slower than one.
BLAS_THREADS_SLEEP = "numpy" not in sys.modules or "OPENBLAS_THREAD_TIMEOUT" in os.environ
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import numpy as np  # noqa: E402 - after the OpenBLAS setting above

try:  # pragma: no cover - cupy is not installed on the CPU machines
    import cupy

    HAS_CUPY = True
except ImportError:
    cupy = None
    HAS_CUPY = False


def xp_of(array):
    """Return the array module (numpy or cupy) that owns `array`."""
    if HAS_CUPY and isinstance(array, cupy.ndarray):
        return cupy
    return np


def to_device(array, device):
    """Move `array` to `device` ('cpu' or 'cuda'); raises if CUDA is requested without CuPy."""
    if device == "cpu":
        return array.get() if HAS_CUPY and isinstance(array, cupy.ndarray) else array
    if device == "cuda":
        if not HAS_CUPY:
            raise RuntimeError("device='cuda' needs cupy, which is not installed")
        return cupy.asarray(array)
    raise ValueError(f"device must be 'cpu' or 'cuda'; got {device!r}")


# glibc's mallopt() parameter numbers (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory(limit=1 << 30):
    """Let glibc's malloc serve array buffers up to `limit` bytes from its heap and keep freed
    memory there, instead of mapping fresh pages from the kernel for every big array.

    By default glibc maps each allocation above 128 KB-32 MB with mmap and unmaps it on free,
    so every im2col buffer, activation and gradient of a training step page-faults its memory
    anew (measured on a 75 MB buffer: 18 ms to allocate and fill fresh, 9 ms from the heap).
    This is a process-wide setting; juanji calls it on import unless the environment variable
    JUANJI_KEEP_FREED_MEMORY is "0". Returns True when the allocator took the setting, False
    where there is no glibc mallopt (macOS, Windows) or it refused.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # older glibc refuse an mmap threshold above 32 MB; fall back to that ceiling
    mapped = mallopt(_M_MMAP_THRESHOLD, limit) or mallopt(_M_MMAP_THRESHOLD, 32 << 20)
    return bool(mapped) and bool(mallopt(_M_TRIM_THRESHOLD, limit))


if os.environ.get("JUANJI_KEEP_FREED_MEMORY", "1") != "0":
    keep_freed_memory()


_num_threads = None  # set by set_num_threads; None: JUANJI_NUM_THREADS or the usable CPUs
_pool = None
_pool_key = None  # (process id, threads) the pool was made for: a forked child makes its own
_in_worker = threading.local()


def get_num_threads():
    """Threads juanji's own kernels use: set_num_threads(n), else the environment variable
    JUANJI_NUM_THREADS, else the CPUs this process may run on (1 when NumPy was imported before
    juanji without OPENBLAS_THREAD_TIMEOUT set; see BLAS_THREADS_SLEEP). BLAS has its own
    setting, OPENBLAS_NUM_THREADS / OMP_NUM_THREADS."""
    if _num_threads is not None:
        return _num_threads
    env = os.environ.get("JUANJI_NUM_THREADS")
    if env:
        if not env.isdigit() or int(env) < 1:
            raise ValueError(f"JUANJI_NUM_THREADS must be a positive integer; got {env!r}")
        return int(env)
    if not BLAS_THREADS_SLEEP:
        return 1
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def set_num_threads(n):
    """Use `n` threads (a positive int) in juanji's kernels from now on, as torch's does."""
    global _num_threads
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads expects a positive int; got {n!r}")
    _num_threads = n


def parallel_map(fn, items, calls_blas=False):
    """[fn(item) for item in items], the calls spread over juanji's thread pool.

    NumPy releases the GIL inside its loops and BLAS calls, so the sample blocks of a
    memory-bound kernel run on every core instead of one. fn must write only its own block's
    outputs; results come back in item order, so any sum over them is deterministic. Runs in
    the calling thread when there is one thread, one item, or it is already a pool worker.
    calls_blas=True: fn multiplies matrices, so BLAS is held to one thread while the blocks
    run (each block already has its core; BLAS threads on top of them only fight for it).
    """
    items = list(items)
    threads = get_num_threads()
    if threads == 1 or len(items) < 2 or getattr(_in_worker, "active", False):
        return [fn(item) for item in items]
    with _blas_single_threaded() if calls_blas else contextlib.nullcontext():
        return list(_get_pool(threads).map(lambda item: _as_worker(fn, item), items))


def _as_worker(fn, item):
    _in_worker.active = True  # a nested parallel_map runs inline instead of queueing
    try:
        return fn(item)
    finally:
        _in_worker.active = False


def _get_pool(threads):
    global _pool, _pool_key
    key = (os.getpid(), threads)
    if _pool_key != key:
        if _pool is not None and _pool_key[0] == key[0]:
            _pool.shutdown(wait=False)
        _pool = ThreadPoolExecutor(threads, thread_name_prefix="juanji")
        _pool_key = key
    return _pool


_blas_controller = None


class _blas_single_threaded:
    """Context: the BLAS libraries NumPy uses run on one thread, then back to their setting."""

    def __enter__(self):
        global _blas_controller
        if _blas_controller is None:
            from threadpoolctl import ThreadpoolController

            _blas_controller = ThreadpoolController().select(user_api="blas")
        self.saved = [(lib, lib.num_threads) for lib in _blas_controller.lib_controllers]
        for lib, _ in self.saved:
            lib.set_num_threads(1)

    def __exit__(self, *exc):
        for lib, threads in self.saved:
            lib.set_num_threads(threads)
