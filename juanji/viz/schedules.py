"""Learning-rate schedules as numbers and as pictures: `lr_sequence` and `plot_lr_schedule`.

Both accept a scheduler already attached to an optimizer (it is stepped, then restored with
its own and its optimizer's saved settings, so training state is untouched) or a factory,
`lambda optimizer: StepLR(optimizer, 30)`, called on a throwaway SGD (one parameter,
momentum 0.9 so that momentum cycling works).
"""

import copy
import io
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from juanji.io.files import atomic_write_bytes
from juanji.nn import Parameter
from juanji.optim.optimizer import Optimizer
from juanji.optim.plateau import ReduceLROnPlateau
from juanji.optim.sgd import SGD


def lr_sequence(scheduler, steps, group=0, metrics=None, lr=0.1):
    """The lr of param group `group` at optimizer steps 0 .. steps - 1.

    Entry 0 is the lr right after construction; entry i the lr after i `scheduler.step()`s.

    Args:
        scheduler: an LRScheduler, or a factory `f(optimizer) -> scheduler`.
        steps: number of values, an int >= 1.
        group: index of the param group to report.
        metrics: for ReduceLROnPlateau, the metric passed to each step (>= steps - 1 values).
        lr: initial lr of the throwaway optimizer given to a factory.
    """
    return [lrs[group] for lrs in _lr_table(scheduler, steps, metrics, lr)]


def plot_lr_schedule(scheduler, steps, path, metrics=None, lr=0.1, title=None):
    """Write a PNG of lr against step (one line per param group) to `path`; return `path`.

    The file is written to a temporary name in the same folder and renamed into place, so a
    reader never sees a half-written image. Arguments are those of `lr_sequence`.
    """
    if Path(path).suffix.lower() != ".png":
        raise ValueError(f"the schedule is drawn as a PNG; end the file name in .png; got "
                         f"{str(path)!r}")
    table = np.array(_lr_table(scheduler, steps, metrics, lr))  # (steps, number of groups)
    figure = Figure(figsize=(6.4, 4.0), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for g in range(table.shape[1]):
        axes.plot(np.arange(steps), table[:, g], label=f"group {g}")
    axes.set_xlabel("step")
    axes.set_ylabel("learning rate")
    axes.set_title(title if title is not None else _name(scheduler))
    if table.shape[1] > 1:
        axes.legend()
    axes.grid(True, alpha=0.3)
    figure.tight_layout()

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    atomic_write_bytes(path, buffer.getvalue())
    return path


def _lr_table(scheduler, steps, metrics, lr):
    """[[lr of each group]] for steps 0 .. steps - 1, leaving a given scheduler as it was."""
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an int >= 1; got steps={steps!r}")
    if callable(scheduler) and not hasattr(scheduler, "step"):
        optimizer = SGD([Parameter(np.zeros(1, dtype=np.float32))], lr=lr, momentum=0.9)
        return _run(scheduler(optimizer), steps, metrics)
    optimizer = getattr(scheduler, "optimizer", None)
    if not isinstance(optimizer, Optimizer):
        raise TypeError(
            "scheduler must be an LRScheduler or a function of an optimizer; "
            f"got {type(scheduler).__name__}"
        )
    saved_scheduler = scheduler.state_dict()
    saved_groups = [
        {k: copy.deepcopy(v) for k, v in group.items() if k != "params"}
        for group in optimizer.param_groups
    ]
    try:
        return _run(scheduler, steps, metrics)
    finally:
        scheduler.load_state_dict(saved_scheduler)
        for group, saved in zip(optimizer.param_groups, saved_groups):
            for key in [k for k in group if k != "params" and k not in saved]:
                del group[key]
            group.update(saved)


def _run(scheduler, steps, metrics):
    plateau = isinstance(scheduler, ReduceLROnPlateau)
    if plateau and (metrics is None or len(metrics) < steps - 1):
        raise ValueError(
            f"ReduceLROnPlateau needs metrics with at least steps - 1 = {steps - 1} values; "
            f"got {None if metrics is None else len(metrics)}"
        )
    table = [[group["lr"] for group in scheduler.optimizer.param_groups]]
    for i in range(steps - 1):
        if plateau:
            scheduler.step(metrics[i])
        else:
            scheduler.step()
        table.append([group["lr"] for group in scheduler.optimizer.param_groups])
    return table


def _name(scheduler):
    return type(scheduler).__name__ if hasattr(scheduler, "step") else "learning-rate schedule"
