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
