"""Host memory: what is available, and refusing work that cannot fit before allocating it.

    check_bytes(nbytes, "summary of resnet18 at batch size 100000")
    -> ValueError: summary of resnet18 at batch size 100000 would need 3.71 TiB, have 61.2 GiB
       available

NumPy raises MemoryError (a traceback) only once an allocation fails, often deep inside a
forward pass and after minutes of work; an estimate made from shapes beforehand turns that
into one clear line. Available memory is the kernel's MemAvailable (/proc/meminfo), capped by
a cgroup v2 limit when one is set (a container is killed, not given a MemoryError, when it
passes its limit), falling back to os.sysconf's free pages elsewhere.
"""

import os
from pathlib import Path


def parse_meminfo(text):
    """Bytes of 'MemAvailable' in the text of /proc/meminfo, or None when absent."""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "MemAvailable":
            number, *unit = value.split()
            return int(number) * (1024 if unit == ["kB"] else 1)
    return None


def cgroup_headroom(folder="/sys/fs/cgroup"):
    """Bytes left under the cgroup v2 memory limit, or None without one: memory.max less
    memory.current, plus the inactive page cache (memory.stat's inactive_file), which the
    kernel reclaims before it refuses memory."""
    try:
        limit = Path(folder, "memory.max").read_text().strip()
        used = Path(folder, "memory.current").read_text().strip()
    except OSError:
        return None
    if limit == "max":
        return None
    try:
        headroom = int(limit) - int(used)
    except ValueError:
        return None
    try:
        for line in Path(folder, "memory.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "inactive_file":
                headroom += int(value)
    except (OSError, ValueError):
        pass
    return max(headroom, 0)


def available_bytes():
    """Memory a new allocation can get without swapping, in bytes (None if unknown)."""
    try:
        available = parse_meminfo(Path("/proc/meminfo").read_text())
    except OSError:
        available = None
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):
            available = None
    headroom = cgroup_headroom()
    if headroom is not None:
        available = headroom if available is None else min(available, headroom)
    return available


def human_bytes(nbytes):
    """1536 -> '1.50 KiB'; binary units up to PiB."""
    value = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1024
    return f"{value:.2f} PiB"


# Below this a request is never refused: MemAvailable can read 0 for a moment under pressure,
# and refusing a few KiB then would only turn a working call into a confusing error.
ALWAYS_ALLOWED = 16 * 2**20


def check_bytes(nbytes, what, advice=None):
    """Raise ValueError '{what} would need X GiB, have Y GiB available[; advice]' if nbytes is
    more than the available memory (and more than ALWAYS_ALLOWED). Does nothing when the
    available memory cannot be found out."""
    if nbytes <= ALWAYS_ALLOWED:
        return
    available = available_bytes()
    if available is not None and nbytes > available:
        raise ValueError(f"{what} would need {human_bytes(nbytes)}, have "
                         f"{human_bytes(available)} available" + (f"; {advice}" if advice else ""))
