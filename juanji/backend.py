"""Array backend dispatch: NumPy always, CuPy when installed.

This is the only module that may import cupy. Ops call `xp_of(array)` to get the module that
owns an array and build new arrays with it, so the same op code runs on either backend.

It also sets how the C allocator treats big NumPy buffers (see `keep_freed_memory`), once, when
juanji is imported, and owns the threads: the pool the kernels split their sample blocks over
(`parallel_map`, `set_num_threads`), the matrix product (`matmul`), and the hold that keeps
BLAS on one thread inside kernel blocks and inside every op (`blas_on_one_thread`, `blas_in_ops`).
"""

import contextlib
import ctypes
import os
import threading
from concurrent.futures import ThreadPoolExecutor

# OpenBLAS's idle worker threads spin for about 0.1 s after each threaded product (2^28
# cycles) unless OPENBLAS_THREAD_TIMEOUT says otherwise; at 4 they sleep at once. OpenBLAS
# reads the variable once, when NumPy loads it, so juanji sets it only when it is imported
# first (and the user has not set it): then the user's own products leave no thread spinning
# on the cores juanji's kernels use. juanji's ops never wake BLAS's threads whatever the
# import order (see `blas_in_ops`): they run BLAS on one thread and split big products over
# juanji's own threads.
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
    JUANJI_NUM_THREADS, else the CPUs this process may run on. BLAS has its own setting,
    OPENBLAS_NUM_THREADS / OMP_NUM_THREADS, which juanji's ops hold to one thread (see
    `blas_in_ops`)."""
    if _num_threads is not None:
        return _num_threads
    env = os.environ.get("JUANJI_NUM_THREADS")
    if env:
        if not env.isdigit() or int(env) < 1:
            raise ValueError(f"JUANJI_NUM_THREADS must be a positive integer; got {env!r}")
        return int(env)
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


_winograd = True  # set by set_winograd


def get_winograd():
    """Whether inference may run float32 3x3 stride-1 convs by Winograd's F(2x2, 3x3) (see
    `set_winograd`)."""
    return _winograd


def set_winograd(enabled):
    """Let (True, the default) or stop (False) the convs use Winograd's minimal filtering
    F(2x2, 3x3) where it is faster: float32, 3x3, stride 1, no dilation, no groups, at least
    24 channels in and out, enough output to repay transforming the filters, with the
    compiled path (`.[fast]`), and only when no gradient is needed (inference). It takes 16
    products per 2x2 outputs and channel pair instead of 36, and its sums come in another
    order, so its results differ from the direct conv's in the last bits (as cuDNN's Winograd
    kernels' do); False keeps every conv on the direct GEMM, the same bits training sees.
    Like torch.backends.cudnn's switches, it holds for the whole process."""
    global _winograd
    if not isinstance(enabled, bool):
        raise ValueError(f"set_winograd expects True or False; got {enabled!r}")
    _winograd = enabled


def parallel_map(fn, items, calls_blas=False):
    """[fn(item) for item in items], the calls spread over juanji's thread pool.

    NumPy releases the GIL inside its loops and BLAS calls, so the sample blocks of a
    memory-bound kernel run on every core instead of one. fn must write only its own block's
    outputs; results come back in item order, so any sum over them is deterministic. Runs in
    the calling thread when there is one thread, one item, or it is already a pool worker.
    calls_blas=True: fn multiplies matrices, so BLAS is held to one thread while the blocks
    run (each block already has its core; BLAS threads on top of them only fight for it).

    Each thread, the caller included (one thread fewer to wake, and the first block starts at
    once), takes the next item nobody has taken until none is left, so a thread slowed by the
    other's memory traffic or a late start takes fewer and none idles while work remains
    (ResNet-20's training step 588 -> 566 ms against a fixed share per thread). When the
    caller has taken every item before a worker woke (waking one takes ~40 us here), the
    worker's task is cancelled instead of waited for: small work costs about what it would on
    one thread (two trivial items: 80 -> 15 us).
    """
    items = list(items)
    if len(items) < 2 or getattr(_in_worker, "active", False):
        return [fn(item) for item in items]
    threads = get_num_threads()
    if threads == 1:
        return [fn(item) for item in items]
    results = [None] * len(items)
    claim, lock = iter(range(len(items))), threading.Lock()

    def work(_):
        while True:
            with lock:
                k = next(claim, None)
            if k is None:
                return
            results[k] = fn(items[k])

    with blas_on_one_thread if calls_blas else contextlib.nullcontext():
        pool = _get_pool(threads - 1)
        futures = [pool.submit(_as_worker, work, None)
                   for _ in range(min(threads, len(items)) - 1)]
        try:
            _as_worker(work, None)
        finally:
            for future in futures:
                if not future.cancel():  # a worker that has not woken yet is not waited for
                    future.result()
    return results


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


# With BLAS on one thread, products below this many multiply-adds (about 0.5 ms) run in one
# call: two threads on a smaller one were measured no faster (0.24 against 0.22 ms for
# 3136x64x64), on a 10x bigger one 1.8x faster
_SPLIT_MACS = 1 << 25
_SPLIT_K = 8  # a product whose K is this many times its M and N is split along K


def matmul(a, b, out=None):
    """a @ b with np.matmul's rules, split over juanji's threads when big.

    BLAS runs on one thread inside juanji's ops (`blas_in_ops`), so a big product is split over
    juanji's threads instead: a 2-D (M, K) @ (K, N) as one block of rows of `a` per
    thread when M >= N, else of columns of `b` (every thread packs the whole of the operand it
    does not split, so the smaller one: 49x4608x512 took 1.5 ms by columns, 2.2 by rows, 2.6
    on one thread), or, when K is at least _SPLIT_K times M and N, as chunks of K whose
    partial products are summed in chunk order; a stacked (G, M, K) @ (G, K, N) as blocks of
    the G products. Each block writes its own slice of the result (the chunks of K depend on
    K alone), so the result is the same for any thread count. Small
    products, other shapes, calls from inside a pool worker (the caller's blocks already use
    the threads) and CuPy arrays go to one matmul call.
    """
    xp = xp_of(a)
    if (xp is not np or getattr(_in_worker, "active", False)
            or a.ndim != b.ndim or a.ndim not in (2, 3) or a.shape[:-2] != b.shape[:-2]
            or a.shape[-1] * a.shape[-2] * b.shape[-1] * (a.shape[0] if a.ndim == 3 else 1)
            < _SPLIT_MACS):
        return xp.matmul(a, b, out=out)
    threads = get_num_threads()
    if threads == 1:
        return xp.matmul(a, b, out=out)
    if out is None:
        out = np.empty((*a.shape[:-1], b.shape[-1]), dtype=np.result_type(a, b))
    if a.ndim == 3 and a.shape[0] >= threads:  # (G, M, K) @ (G, K, N): blocks of products
        blocks = _even_blocks(a.shape[0], threads)
        parallel_map(lambda s: np.matmul(a[s], b[s], out=out[s]), blocks, calls_blas=True)
    elif a.ndim == 3:  # few products: split each one
        for g in range(a.shape[0]):
            matmul(a[g], b[g], out=out[g])
    elif a.shape[1] >= _SPLIT_K * max(a.shape[0], b.shape[1]):  # a long reduction
        # (M, K) @ (K, N) with K much the longest (a classifier's first layer): partial
        # products over chunks of K, summed in chunk order. The chunks depend on K alone, so
        # the result does not depend on the thread count (SimpleConvNet's 100x4320 @ 4320x100:
        # 0.72 -> 0.56 ms; split by rows or columns each thread packs half the work's operand
        # and it ran no faster than one call)
        chunks = _even_blocks(a.shape[1], 4 if a.shape[1] >= 4 * 1024 else 2)
        partials = parallel_map(lambda s: np.matmul(a[:, s], b[s]), chunks, calls_blas=True)
        out[...] = partials[0]
        for partial in partials[1:]:
            out += partial
    elif a.shape[0] >= b.shape[1]:  # (M, K) @ (K, N), M >= N: blocks of rows
        blocks = _even_blocks(a.shape[0], threads)
        parallel_map(lambda s: np.matmul(a[s], b, out=out[s]), blocks, calls_blas=True)
    else:  # N > M: blocks of columns (strided slices BLAS reads in place)
        blocks = _even_blocks(b.shape[1], threads)
        parallel_map(lambda s: np.matmul(a, b[:, s], out=out[:, s]), blocks, calls_blas=True)
    return out


def _even_blocks(total, count):
    """`count` consecutive slices covering range(total), sizes differing by at most one."""
    edges = [total * i // count for i in range(count + 1)]
    return [slice(lo, hi) for lo, hi in zip(edges[:-1], edges[1:]) if hi > lo]


_blas_libraries = None  # threadpoolctl controllers of the loaded BLAS libraries (on first use)
_blas_lock = threading.Lock()
_blas_depth = 0  # how many juanji calls, in any thread, hold BLAS on one thread now
_blas_saved = []  # (library, its thread setting) from before the outermost hold


class _BlasOnOneThread:
    """Context: the BLAS libraries NumPy uses run on one thread, then back to their setting.

    Kernel blocks that multiply run inside it (each block already has its core), and so does
    every op (`blas_in_ops`): a product on one thread never wakes BLAS's threads, so they do
    not take the cores juanji's kernel threads need, and the
    user's own NumPy threading outside juanji's calls is left as it was. Re-entrant and shared
    by threads: the outermost hold saves and restores the setting. Switching costs about a
    microsecond. (OpenBLAS takes a new setting only from the main thread once its own threads
    have started, so ops that a program runs from other threads keep BLAS's setting.)
    """

    def __enter__(self):
        global _blas_libraries, _blas_depth, _blas_saved
        with _blas_lock:
            if _blas_depth == 0:
                if _blas_libraries is None:
                    from threadpoolctl import ThreadpoolController

                    _blas_libraries = ThreadpoolController().select(
                        user_api="blas").lib_controllers
                _blas_saved = [(lib, lib.num_threads) for lib in _blas_libraries]
                for lib, threads in _blas_saved:
                    if threads != 1:
                        lib.set_num_threads(1)
            _blas_depth += 1
        return self

    def __exit__(self, *exc):
        global _blas_depth
        with _blas_lock:
            _blas_depth -= 1
            if _blas_depth == 0:
                for lib, threads in _blas_saved:
                    if threads != 1:
                        lib.set_num_threads(threads)


blas_on_one_thread = _BlasOnOneThread()


# Around every op's forward (Function.run, a whole Module call) and every backward pass
# (Tensor.backward): BLAS on one thread, whatever the import order. With spinning idle threads
# (NumPy imported before juanji without OPENBLAS_THREAD_TIMEOUT) a product on BLAS's threads
# leaves them taking the cores juanji's kernels need; with sleeping ones each threaded product
# must wake one, which after the process idled took milliseconds here: PP-LCNet at batch 1
# (about 30 products over 2 threads), called after 20-100 ms idle, 13.8-43 ms median against
# 10.9-11.1 with BLAS held on one thread (8.3 called back to back). A script that imports
# NumPy first thus runs juanji as fast as one that does not (benchmarks.speed
# --import-order; tests/test_backend.py checks the settings).
blas_in_ops = blas_on_one_thread
