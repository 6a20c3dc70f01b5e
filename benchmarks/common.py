"""Shared benchmark machinery: thread pinning, interleaved timing, weight copying, tables."""

import statistics
import time

from benchmarks import THREADS


def setup_torch():
    """Import torch limited to THREADS threads (both intra- and inter-op)."""
    import torch

    torch.set_num_threads(THREADS)
    try:
        torch.set_num_interop_threads(THREADS)
    except RuntimeError:  # already set in this process
        pass
    return torch


# Untimed idle before each timed call. torch's OpenMP workers (libgomp) spin for up to ~10 ms
# after each parallel region (GOMP_SPINCOUNT, 300000 pause instructions) before they sleep; back
# to back, they held a core through the start of juanji's call (SimpleConvNet step 24.3 ms run
# alone, 27.2 ms right after torch's). Shortening torch's spin instead slowed torch itself
# (ResNet-18 b8 224 -> 240-307 ms), so the harness waits it out: neither side is changed.
IDLE_S = 0.02


def interleaved(cases, warmup=3, repeats=15, idle_s=IDLE_S):
    """Time callables A, B, A, B, ... so drifts in machine load hit both alike.

    cases: {label: fn}. Each timed call starts after `idle_s` seconds of untimed idle, so
    neither framework's spinning worker threads run into the other's call. Returns
    {label: list of seconds}.
    """
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    times = {label: [] for label in cases}
    for _ in range(repeats):
        for label, fn in cases.items():
            time.sleep(idle_s)
            start = time.perf_counter()
            fn()
            times[label].append(time.perf_counter() - start)
    return times


def copy_weights(juanji_model, torch_model):
    """Load torch's parameters and buffers into the juanji model (same state_dict keys)."""
    state = {k: v.detach().numpy() for k, v in torch_model.state_dict().items()}
    juanji_model.load_state_dict(state)


def report(rows, title):
    """Print a table of {name, juanji_ms, torch_ms, ratio, ...} rows; returns the rows."""
    print(f"\n{title}  (threads={THREADS})")
    print(f"{'case':42s} {'juanji ms':>16s} {'torch ms':>16s} {'ratio':>7s}")
    for row in rows:
        j, t = format_spread(row["juanji"]), format_spread(row["torch"])
        print(f"{row['case']:42s} {j:>16s} {t:>16s} {row['ratio']:7.2f}")
    return rows


def summarize(label, juanji_times, torch_times):
    """Median and min-max of both sides and the median ratio juanji/torch."""
    j, t = spread(juanji_times), spread(torch_times)
    return {"case": label, "juanji": j, "torch": t, "ratio": j[0] / t[0]}


def spread(times):
    """(median, min, max) of times in seconds, in milliseconds."""
    return statistics.median(times) * 1e3, min(times) * 1e3, max(times) * 1e3


def format_spread(stats):
    """'median (min-max)' of a spread() triple."""
    median, lo, hi = stats
    return f"{median:.1f} ({lo:.0f}-{hi:.0f})"


def juanji_train_step(model, x, y):
    """A callable running one training step of a juanji model on (x, y): forward,
    cross-entropy, backward, SGD with momentum 0.9."""
    import juanji
    from juanji import optim
    from juanji.nn import functional as F

    model.train()
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step():
        opt.zero_grad()
        F.cross_entropy(model(juanji.Tensor(x)), y).backward()
        opt.step()

    return step


def torch_train_step(torch, model, x, y):
    """The same training step for a torch model, on the same NumPy arrays."""
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)

    def step():
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(tx), ty).backward()
        opt.step()

    return step


def train_step_pair(torch, label, model, torch_model, x, y, repeats=15, warmup=3):
    """Time one training step (forward, cross-entropy, backward, SGD momentum 0.9) of a juanji
    model and its torch twin on the same batch, weights copied from torch first.

    Returns the summarize() row plus the two step functions under "steps" (for memory probes).
    """
    copy_weights(model, torch_model)
    juanji_step = juanji_train_step(model, x, y)
    torch_step = torch_train_step(torch, torch_model, x, y)
    times = interleaved({"juanji": juanji_step, "torch": torch_step}, warmup, repeats)
    row = summarize(label, times["juanji"], times["torch"])
    row["steps"] = (juanji_step, torch_step)
    return row
