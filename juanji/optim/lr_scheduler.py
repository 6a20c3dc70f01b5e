"""Learning-rate schedules with PyTorch's names, arguments and step-by-step values.

Every scheduler is created after its optimizer, sets each group's "initial_lr" (the base lr) and
"lr" when constructed, and is stepped once per epoch or per batch as its docstring says:

    scheduler = StepLR(optimizer, step_size=30, gamma=0.1)
    for epoch in range(epochs):
        train(...)            # optimizer.step() inside
        scheduler.step()

`ReduceLROnPlateau` lives in `plateau.py` and `CyclicLR` / `OneCycleLR` in `cyclic.py`; all are
importable from here, as in `torch.optim.lr_scheduler`.
"""

import math
import types
from bisect import bisect_right
from collections import Counter

from juanji.optim.cyclic import CyclicLR, OneCycleLR
from juanji.optim.plateau import ReduceLROnPlateau
from juanji.optim.scheduler import LRScheduler, _is_int, check_int, check_number

__all__ = [
    "CosineAnnealingLR",
    "CosineAnnealingWarmRestarts",
    "CyclicLR",
    "ExponentialLR",
    "LRScheduler",
    "LambdaLR",
    "LinearLR",
    "MultiStepLR",
    "OneCycleLR",
    "ReduceLROnPlateau",
    "SequentialLR",
    "StepLR",
]


class LambdaLR(LRScheduler):
    """lr = base_lr * lr_lambda(step): any schedule given as a multiplicative factor.

    Args:
        optimizer: the wrapped Optimizer.
        lr_lambda: a function of the step count, or a list with one function per param group.
        last_epoch: -1 to start, else the step to resume from.

    `state_dict()` cannot save functions; it saves `__dict__` of callable objects, as PyTorch.
    """

    _unsaved = ("optimizer", "lr_lambdas")

    def __init__(self, optimizer, lr_lambda, last_epoch=-1):
        count = len(optimizer.param_groups)
        if isinstance(lr_lambda, (list, tuple)):
            if len(lr_lambda) != count:
                raise ValueError(
                    f"lr_lambda has {len(lr_lambda)} functions; expected one per param group "
                    f"({count})"
                )
            self.lr_lambdas = list(lr_lambda)
        else:
            self.lr_lambdas = [lr_lambda] * count
        for fn in self.lr_lambdas:
            if not callable(fn):
                raise TypeError(f"lr_lambda must be callable; got {type(fn).__name__}")
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return self.lr_at(self.last_epoch)

    def lr_at(self, step):
        return [base * fn(step) for fn, base in zip(self.lr_lambdas, self.base_lrs)]

    def state_dict(self):
        state = super().state_dict()
        state["lr_lambdas"] = [
            None if isinstance(fn, types.FunctionType) else dict(vars(fn))
            for fn in self.lr_lambdas
        ]
        return state

    def load_state_dict(self, state_dict):
        state = dict(state_dict)
        saved = state.pop("lr_lambdas")
        super().load_state_dict(state)
        for fn, attributes in zip(self.lr_lambdas, saved):
            if attributes is not None:
                fn.__dict__.update(attributes)


class StepLR(LRScheduler):
    """Multiply the lr by gamma every step_size steps: lr = base_lr * gamma**(step // step_size).

    Args:
        optimizer: the wrapped Optimizer.
        step_size: period of the decay, an int >= 1.
        gamma: multiplicative factor, >= 0 (default 0.1).
        last_epoch: -1 to start, else the step to resume from.
    """

    _jump_with_closed_form = True

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        check_int("step_size", step_size, 1)
        check_number("gamma", gamma, low=0.0)
        self.step_size = step_size
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        groups = self.optimizer.param_groups
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return [group["lr"] for group in groups]
        return [group["lr"] * self.gamma for group in groups]

    def lr_at(self, step):
        return [base * self.gamma ** (step // self.step_size) for base in self.base_lrs]


class MultiStepLR(LRScheduler):
    """Multiply the lr by gamma at each milestone (a milestone listed twice applies gamma twice).

    Args:
        optimizer: the wrapped Optimizer.
        milestones: step counts (ints >= 0) at which the lr drops.
        gamma: multiplicative factor, >= 0 (default 0.1).
        last_epoch: -1 to start, else the step to resume from.
    """

    _jump_with_closed_form = True

    def __init__(self, optimizer, milestones, gamma=0.1, last_epoch=-1):
        milestones = list(milestones)
        for m in milestones:
            if not _is_int(m) or m < 0:
                raise ValueError(f"milestones must be ints >= 0; got milestones={milestones!r}")
        check_number("gamma", gamma, low=0.0)
        self.milestones = Counter(milestones)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        groups = self.optimizer.param_groups
        if self.last_epoch not in self.milestones:
            return [group["lr"] for group in groups]
        factor = self.gamma ** self.milestones[self.last_epoch]
        return [group["lr"] * factor for group in groups]

    def lr_at(self, step):
        passed = bisect_right(sorted(self.milestones.elements()), step)
        return [base * self.gamma**passed for base in self.base_lrs]


class ExponentialLR(LRScheduler):
    """Multiply the lr by gamma every step: lr = base_lr * gamma**step.

    Args:
        optimizer: the wrapped Optimizer.
        gamma: multiplicative factor per step, >= 0.
        last_epoch: -1 to start, else the step to resume from.
    """

    _jump_with_closed_form = True

    def __init__(self, optimizer, gamma, last_epoch=-1):
        check_number("gamma", gamma, low=0.0)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        groups = self.optimizer.param_groups
        if self._is_initial:
            return [group["lr"] for group in groups]
        return [group["lr"] * self.gamma for group in groups]

    def lr_at(self, step):
        return [base * self.gamma**step for base in self.base_lrs]


class LinearLR(LRScheduler):
    """Scale the lr by a factor moving linearly from start_factor to end_factor, then hold.

    lr_at(t) = base_lr * (start_factor + (end_factor - start_factor) * min(t, T) / T),
    with T = total_iters.

    Args:
        optimizer: the wrapped Optimizer.
        start_factor: factor at step 0, in (0, 1] (default 1/3: a warm-up).
        end_factor: factor from step total_iters on, in [0, 1] (default 1).
        total_iters: steps to go from one to the other, an int >= 1 (default 5).
        last_epoch: -1 to start, else the step to resume from.
    """

    _jump_with_closed_form = True

    def __init__(self, optimizer, start_factor=1.0 / 3, end_factor=1.0, total_iters=5,
                 last_epoch=-1):
        check_number("start_factor", start_factor, low=0.0, high=1.0, low_open=True)
        check_number("end_factor", end_factor, low=0.0, high=1.0)
        check_int("total_iters", total_iters, 1)
        self.start_factor = start_factor
        self.end_factor = end_factor
        self.total_iters = total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        groups = self.optimizer.param_groups
        if self.last_epoch == 0:
            return [group["lr"] * self.start_factor for group in groups]
        if self._is_initial or self.last_epoch > self.total_iters:
            return [group["lr"] for group in groups]
        # Ratio of consecutive factors, so the form chains with other schedulers.
        change = self.end_factor - self.start_factor
        ratio = 1.0 + change / (
            self.total_iters * self.start_factor + (self.last_epoch - 1) * change
        )
        return [group["lr"] * ratio for group in groups]

    def lr_at(self, step):
        progress = min(self.total_iters, step) / self.total_iters
        factor = self.start_factor + (self.end_factor - self.start_factor) * progress
        return [base * factor for base in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """Cosine from base_lr down to eta_min over T_max steps (and back up, with period 2*T_max).

    lr_at(t) = eta_min + (base_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2. `step()` uses
    PyTorch's recursive form (each lr from the previous one), equal to it up to rounding.

    Args:
        optimizer: the wrapped Optimizer.
        T_max: steps of the half period, an int >= 1.
        eta_min: lowest lr, >= 0.
        last_epoch: -1 to start, else the step to resume from.
    """

    _jump_with_closed_form = True

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):
        check_int("T_max", T_max, 1)
        check_number("eta_min", eta_min, low=0.0)
        self.T_max = T_max
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        groups = self.optimizer.param_groups
        t, period, eta_min = self.last_epoch, self.T_max, self.eta_min
        if self._is_initial:
            return [group["lr"] for group in groups]
        if self._step_count == 1 and t > 0:
            return self.lr_at(t)
        if (t - 1 - period) % (2 * period) == 0:
            # At the bottom the ratio below is 0/0; step up by the cosine's first increment.
            rise = (1 - math.cos(math.pi / period)) / 2
            return [group["lr"] + (base - eta_min) * rise for base, group in
                    zip(self.base_lrs, groups)]
        ratio = (1 + math.cos(math.pi * t / period)) / (1 + math.cos(math.pi * (t - 1) / period))
        return [ratio * (group["lr"] - eta_min) + eta_min for group in groups]

    def lr_at(self, step):
        cosine = (1 + math.cos(math.pi * step / self.T_max)) / 2
        return [self.eta_min + (base - self.eta_min) * cosine for base in self.base_lrs]


class CosineAnnealingWarmRestarts(LRScheduler):
    """SGDR (Loshchilov & Hutter, 2017): cosine from base_lr to eta_min, restarting every T_i.

    The first period is T_0 steps and each next one T_mult times longer. `step(epoch)` may be
    given a fractional epoch to anneal within an epoch (step once per batch with
    `epoch + i / batches`); `step()` advances by one.

    Args:
        optimizer: the wrapped Optimizer.
        T_0: length of the first period, an int >= 1.
        T_mult: growth factor of the periods, an int >= 1.
        eta_min: lowest lr, >= 0.
        last_epoch: -1 to start, else the step to resume from.
    """

    def __init__(self, optimizer, T_0, T_mult=1, eta_min=0.0, last_epoch=-1):
        check_int("T_0", T_0, 1)
        check_int("T_mult", T_mult, 1)
        check_number("eta_min", eta_min, low=0.0)
        self.T_0 = T_0
        self.T_i = T_0
        self.T_mult = T_mult
        self.eta_min = eta_min
        self.T_cur = last_epoch
        super().__init__(optimizer, last_epoch)

    def _position(self, epoch):
        """(T_cur, T_i): steps into the current period and its length, at a given epoch."""
        if epoch < self.T_0:
            return epoch, self.T_0
        if self.T_mult == 1:
            return epoch % self.T_0, self.T_0
        # Periods T_0 * T_mult**k end at T_0 * (T_mult**(n+1) - 1) / (T_mult - 1); find n with
        # integer arithmetic (a float log misplaces exact boundaries).
        n = 0
        while epoch >= self.T_0 * (self.T_mult ** (n + 1) - 1) // (self.T_mult - 1):
            n += 1
        start = self.T_0 * (self.T_mult**n - 1) // (self.T_mult - 1)
        return epoch - start, self.T_0 * self.T_mult**n

    def _cosine(self, t_cur, t_i):
        cosine = (1 + math.cos(math.pi * t_cur / t_i)) / 2
        return [self.eta_min + (base - self.eta_min) * cosine for base in self.base_lrs]

    def get_lr(self):
        return self._cosine(self.T_cur, self.T_i)

    def lr_at(self, step):
        return self._cosine(*self._position(step))

    def step(self, epoch=None):
        """Advance one step, or jump to `epoch` (a number >= 0, fractions allowed)."""
        if epoch is None and self.last_epoch < 0:
            epoch = 0
        if epoch is None:
            epoch = self.last_epoch + 1
            self.T_cur = self.T_cur + 1
            if self.T_cur >= self.T_i:
                self.T_cur = self.T_cur % self.T_i
                self.T_i = self.T_i * self.T_mult
        else:
            check_number("epoch", epoch, low=0.0)
            self.T_cur, self.T_i = self._position(epoch)
        self._step_count += 1
        self.last_epoch = math.floor(epoch)
        self._set_lrs(self.get_lr())


class SequentialLR(LRScheduler):
    """Run schedulers one after another, switching at the given milestones.

    `schedulers[i]` drives the lr from step `milestones[i - 1]` on, restarted from its own step
    0 at the switch. Typical use: LinearLR warm-up for 5 epochs, then CosineAnnealingLR.

    Args:
        optimizer: the wrapped Optimizer, shared by every scheduler.
        schedulers: the schedulers, already constructed on `optimizer` (not ReduceLROnPlateau).
        milestones: increasing step counts, one fewer than the schedulers.
        last_epoch: -1 to start, else the step to resume from.
    """

    _unsaved = ("optimizer", "_schedulers")

    def __init__(self, optimizer, schedulers, milestones, last_epoch=-1):
        schedulers, milestones = list(schedulers), list(milestones)
        if not schedulers:
            raise ValueError("schedulers is empty; expected at least one scheduler")
        for i, scheduler in enumerate(schedulers):
            if isinstance(scheduler, ReduceLROnPlateau):
                raise ValueError(
                    f"schedulers[{i}] is ReduceLROnPlateau, which needs a metric in step(); "
                    "SequentialLR cannot drive it"
                )
            if getattr(scheduler, "optimizer", None) is not optimizer:
                raise ValueError(f"schedulers[{i}] is attached to a different optimizer")
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(
                f"milestones has {len(milestones)} values; expected one fewer than the "
                f"{len(schedulers)} schedulers"
            )
        if any(not _is_int(m) or m < 1 for m in milestones) or milestones != sorted(milestones):
            raise ValueError(
                f"milestones must be increasing ints >= 1; got milestones={milestones!r}"
            )
        self._schedulers = schedulers
        self._milestones = milestones
        self.last_epoch = last_epoch + 1
        self.optimizer = optimizer
        # Each scheduler's constructor already stepped once; undo that and start the first.
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"]
        self._undo_initial_steps(self)
        first = schedulers[bisect_right(milestones, 0)]
        first._initial_step()
        self._last_lr = first.get_last_lr()

    def _undo_initial_steps(self, scheduler):
        if isinstance(scheduler, SequentialLR):
            for child in scheduler._schedulers:
                self._undo_initial_steps(child)
        else:
            scheduler.last_epoch -= 1

    def step(self):
        self.last_epoch += 1
        index = bisect_right(self._milestones, self.last_epoch)
        scheduler = self._schedulers[index]
        if index > 0 and self._milestones[index - 1] == self.last_epoch:
            scheduler._update_lr(0)
        else:
            scheduler.step()
        self._last_lr = scheduler.get_last_lr()

    def state_dict(self):
        state = super().state_dict()
        state["_schedulers"] = [s.state_dict() for s in self._schedulers]
        return state

    def load_state_dict(self, state_dict):
        state = dict(state_dict)
        saved = state.pop("_schedulers")
        super().load_state_dict(state)
        for scheduler, scheduler_state in zip(self._schedulers, saved):
            scheduler.load_state_dict(scheduler_state)
