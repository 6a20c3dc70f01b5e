"""ReduceLROnPlateau: cut the lr when a monitored metric stops improving."""

import math

from juanji.optim.optimizer import Optimizer
from juanji.optim.scheduler import LRScheduler, check_int, check_number, per_group


class ReduceLROnPlateau(LRScheduler):
    """Multiply every lr by `factor` after more than `patience` steps without improvement.

    Call `step(metric)` once per evaluation (usually per epoch). A value counts as an
    improvement over the best so far when, in mode "min",

        threshold_mode "rel":  metric < best * (1 - threshold)
        threshold_mode "abs":  metric < best - threshold

    (mirrored for "max"). After a cut, `cooldown` steps pass before bad steps count again. An lr
    never goes below its group's min_lr, and a cut smaller than eps is skipped. Unlike the other
    schedulers (and like PyTorch) it does not touch the lr at construction or set "initial_lr".

    Args:
        optimizer: the wrapped Optimizer.
        mode: "min" (lower metric is better) or "max".
        factor: multiplier of a cut, in [0, 1).
        patience: bad steps tolerated before cutting, an int >= 0.
        threshold: size of a significant change, >= 0.
        threshold_mode: "rel" or "abs".
        cooldown: steps after a cut during which bad steps are not counted, an int >= 0.
        min_lr: lower bound, one number for all groups or a list with one per group, >= 0.
        eps: smallest cut applied, >= 0.
    """

    def __init__(self, optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4,
                 threshold_mode="rel", cooldown=0, min_lr=0, eps=1e-8):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a juanji Optimizer; got {type(optimizer).__name__}")
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max'; got mode={mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(
                f"threshold_mode must be 'rel' or 'abs'; got threshold_mode={threshold_mode!r}"
            )
        check_number("factor", factor, low=0.0, high=1.0, high_open=True)
        check_int("patience", patience, 0)
        check_number("threshold", threshold, low=0.0)
        check_int("cooldown", cooldown, 0)
        check_number("eps", eps, low=0.0)
        self.optimizer = optimizer
        self.default_min_lr = None if isinstance(min_lr, (list, tuple)) else min_lr
        self.min_lrs = per_group("min_lr", min_lr, optimizer)
        for value in self.min_lrs:
            check_number("min_lr", value, low=0.0)
        self.mode = mode
        self.factor = factor
        self.patience = patience
        self.threshold = threshold
        self.threshold_mode = threshold_mode
        self.cooldown = cooldown
        self.eps = eps
        self.last_epoch = 0
        self._last_lr = [group["lr"] for group in optimizer.param_groups]
        self._reset()

    def _reset(self):
        """Forget the best value and the bad-step and cooldown counters."""
        self.best = math.inf if self.mode == "min" else -math.inf
        self.cooldown_counter = 0
        self.num_bad_epochs = 0

    @property
    def in_cooldown(self):
        return self.cooldown_counter > 0

    def is_better(self, current, best):
        """Whether `current` improves on `best` by more than the threshold."""
        if self.mode == "min" and self.threshold_mode == "rel":
            return current < best * (1.0 - self.threshold)
        if self.mode == "min":
            return current < best - self.threshold
        if self.threshold_mode == "rel":
            return current > best * (self.threshold + 1.0)
        return current > best + self.threshold

    def step(self, metrics):
        """Record one value of the monitored metric and cut the lrs if it has plateaued."""
        current = float(metrics)
        self.last_epoch += 1
        if self.is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad steps during cooldown do not count
        if self.num_bad_epochs > self.patience:
            self._reduce_lr()
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def _reduce_lr(self):
        groups = self.optimizer.param_groups
        if len(self.min_lrs) != len(groups):
            if self.default_min_lr is None:
                raise ValueError(
                    f"min_lr has {len(self.min_lrs)} values but the optimizer now has "
                    f"{len(groups)} param groups; set min_lrs to one value per group"
                )
            self.min_lrs = [self.default_min_lr] * len(groups)
        for group, min_lr in zip(groups, self.min_lrs):
            old_lr = float(group["lr"])
            new_lr = max(old_lr * self.factor, min_lr)
            if old_lr - new_lr > self.eps:
                group["lr"] = new_lr
