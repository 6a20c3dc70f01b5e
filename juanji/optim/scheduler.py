"""LRScheduler: the base of every learning-rate schedule in `juanji.optim.lr_scheduler`.

A scheduler owns a counter, `last_epoch` (the number of `step()` calls so far, 0 right after
construction), and writes `group["lr"]` of its optimizer on construction and on every `step()`.
Like PyTorch, the stepped form is *chainable*: most schedules compute the next lr from the
group's current lr, so two schedulers on one optimizer compose. Where the schedule has a closed
form, `lr_at(step)` gives the lr of every group after `step` steps as a pure function of the
base lrs, handy for plotting and for checking by hand.
"""

import copy
import math
import numbers

from juanji.optim.optimizer import Optimizer


class LRScheduler:
    """Base class: sets "initial_lr" on each group, then `step()` moves every group's lr.

    Args:
        optimizer: the Optimizer whose `param_groups[i]["lr"]` this scheduler sets.
        last_epoch: index of the last step taken; -1 (default) starts a new schedule. Any other
            value resumes one and needs "initial_lr" in every group (load the optimizer first).

    Subclasses implement `get_lr()` (the chainable next lrs, from `last_epoch` and the groups'
    current lrs) and, where one exists, `lr_at(step)`.
    """

    # Keys of vars(self) that state_dict() leaves out (objects, not state).
    _unsaved = ("optimizer",)
    # True where PyTorch's `_update_lr(epoch)` (used by SequentialLR at a milestone) takes the
    # closed form instead of the chainable `get_lr()`.
    _jump_with_closed_form = False

    def __init__(self, optimizer, last_epoch=-1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a juanji Optimizer; got {type(optimizer).__name__}")
        if not _is_int(last_epoch) or last_epoch < -1:
            raise ValueError(f"last_epoch must be an int >= -1; got last_epoch={last_epoch!r}")
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise ValueError(
                        f"last_epoch={last_epoch} resumes a schedule, but param_groups[{i}] has "
                        "no 'initial_lr'; load the optimizer's state_dict first"
                    )
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._initial_step()

    def _initial_step(self):
        """The step taken by the constructor: moves last_epoch from -1 to 0."""
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def step(self):
        """Advance one step (an epoch or a batch, as the schedule is meant) and set the lrs."""
        self._step_count += 1
        self._update_lr()

    def _update_lr(self, epoch=None):
        if epoch is None:
            self.last_epoch += 1
            lrs = self.get_lr()
        else:
            self.last_epoch = epoch
            lrs = self.lr_at(epoch) if self._jump_with_closed_form else self.get_lr()
        self._set_lrs(lrs)

    def _set_lrs(self, lrs):
        for i, lr in enumerate(lrs):
            # e.g. ExponentialLR(gamma=10) overflows after a few hundred steps
            if not math.isfinite(lr):
                raise ValueError(
                    f"{type(self).__name__} computed lr={lr!r} for param_groups[{i}] at step "
                    f"{self.last_epoch}; a learning rate must be a finite number"
                )
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_lr(self):
        """The lrs for the step `last_epoch` has just reached (chainable form)."""
        raise NotImplementedError

    def lr_at(self, step):
        """The lr of every group after `step` steps, from the base lrs alone (closed form)."""
        raise NotImplementedError(f"{type(self).__name__} has no closed form lr_at(step)")

    def get_last_lr(self):
        """The lrs set by the most recent step, one per param group."""
        return list(self._last_lr)

    def state_dict(self):
        """Every attribute except the optimizer (and callables), copied."""
        return {
            key: copy.deepcopy(value)
            for key, value in vars(self).items()
            if key not in self._unsaved
        }

    def load_state_dict(self, state_dict):
        """Restore attributes saved by `state_dict()`; load the optimizer's state as well."""
        self.__dict__.update(copy.deepcopy(state_dict))


# ---- argument checks shared by the schedulers -------------------------------------------------
def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(name, value, low):
    """Require an int >= low."""
    if not _is_int(value) or value < low:
        raise ValueError(f"{name} must be an int >= {low}; got {name}={value!r}")


def check_number(name, value, low=None, high=None, low_open=False, high_open=False):
    """Require a finite real number within the given bounds (open or closed at each end)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        left = "(" if low_open else "["
        right = ")" if high_open or high is None else "]"
        low_text = "-inf" if low is None else low
        high_text = "inf" if high is None else high
        raise ValueError(
            f"{name} must be a number in {left}{low_text}, {high_text}{right}; got {name}={value!r}"
        )


def per_group(name, value, optimizer):
    """A scalar repeated for every param group, or a list with one value per group."""
    count = len(optimizer.param_groups)
    if isinstance(value, (list, tuple)):
        if len(value) != count:
            raise ValueError(
                f"{name} has {len(value)} values; expected one per param group ({count})"
            )
        return list(value)
    return [value] * count
