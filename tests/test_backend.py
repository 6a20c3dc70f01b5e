"""juanji.backend: the allocator setting that keeps freed array memory in the heap."""

import platform
import subprocess
import sys

from juanji.backend import keep_freed_memory

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


def _threads_in_fresh_process(code, **env):
    env = {"PATH": "", **env}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    return out.stdout.split()


def test_kernel_threads_follow_what_openblas_was_told():
    import os

    cpus = str(len(os.sched_getaffinity(0)))
    probe = ("import juanji, os; "
             "print(juanji.get_num_threads(), os.environ['OPENBLAS_THREAD_TIMEOUT'])")
    # juanji first: it tells OpenBLAS to let its threads sleep, and uses every CPU
    assert _threads_in_fresh_process(probe) == [cpus, "4"]
    # NumPy first, nothing set: OpenBLAS spins, so juanji's kernels stay on one thread
    assert _threads_in_fresh_process("import numpy; " + probe) == ["1", "4"]
    # NumPy first but the user set the timeout: all CPUs again; JUANJI_NUM_THREADS wins over all
    assert _threads_in_fresh_process("import numpy; " + probe,
                                     OPENBLAS_THREAD_TIMEOUT="6") == [cpus, "6"]
    assert _threads_in_fresh_process("import numpy; " + probe,
                                     JUANJI_NUM_THREADS="3") == ["3", "4"]
