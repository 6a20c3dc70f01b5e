"""Cyclical schedules, stepped once per batch: CyclicLR (Smith, 2017) and OneCycleLR (Smith, 2018).

Both can cycle momentum inversely to the lr (`cycle_momentum`): they write `group["momentum"]`
for optimizers that have one (SGD, RMSprop) or `group["betas"][0]` for Adam-style optimizers.
"""

import math
import types

from juanji.optim.scheduler import LRScheduler, check_int, check_number, per_group


def _momentum_key(optimizer):
    """'betas' or 'momentum': which setting momentum cycling writes; ValueError if neither."""
    if "betas" in optimizer.defaults:
        return "betas"
    if "momentum" in optimizer.defaults:
        return "momentum"
    raise ValueError(
        f"cycle_momentum=True needs an optimizer with 'momentum' or 'betas'; "
        f"{type(optimizer).__name__} has neither (pass cycle_momentum=False)"
    )


def _momenta(name, value, optimizer):
    """One momentum (or beta1) per group, each a finite number in [0, 1) as the optimizers
    require, since the scheduler writes it into the groups past their validation."""
    values = per_group(name, value, optimizer)
    for v in values:
        check_number(name, v, low=0.0, high=1.0, high_open=True)
    return values


def _set_momentum(group, value, use_beta1):
    if use_beta1:
        group["betas"] = (value, *group["betas"][1:])
    else:
        group["momentum"] = value


class CyclicLR(LRScheduler):
    """Cycle the lr between base_lr and max_lr (triangles), stepping once per batch.

    Within a cycle of step_size_up + step_size_down steps the lr climbs linearly from base_lr
    to max_lr and falls back. The height of each triangle is scaled by `scale_fn`: 1 for
    "triangular", halved every cycle for "triangular2", gamma**step for "exp_range".

    Args:
        optimizer: the wrapped Optimizer.
        base_lr: lower lr, a number or one per group; set as the groups' lr on construction.
        max_lr: upper lr, a number or one per group.
        step_size_up: steps of the rising half, > 0.
        step_size_down: steps of the falling half, > 0 (default: step_size_up).
        mode: "triangular", "triangular2" or "exp_range" (ignored when scale_fn is given).
        gamma: base of the "exp_range" scaling.
        scale_fn: custom scaling, a function of the cycle number or of the step.
        scale_mode: "cycle" or "iterations", what scale_fn receives (custom scale_fn only).
        cycle_momentum: move momentum (or beta1) from max_momentum down to base_momentum
            while the lr rises, and back.
        base_momentum, max_momentum: momentum bounds, a number or one per group.
        last_epoch: -1 to start, else the batch index to resume from.
    """

    _unsaved = ("optimizer", "_scale_fn_custom")

    def __init__(self, optimizer, base_lr, max_lr, step_size_up=2000, step_size_down=None,
                 mode="triangular", gamma=1.0, scale_fn=None, scale_mode="cycle",
                 cycle_momentum=True, base_momentum=0.8, max_momentum=0.9, last_epoch=-1):
        base_lrs = per_group("base_lr", base_lr, optimizer)
        self.max_lrs = per_group("max_lr", max_lr, optimizer)
        for name, values in (("base_lr", base_lrs), ("max_lr", self.max_lrs)):
            for value in values:
                check_number(name, value, low=0.0)
        check_number("step_size_up", step_size_up, low=0.0, low_open=True)
        check_number("gamma", gamma, low=0.0)
        if step_size_down is not None:
            check_number("step_size_down", step_size_down, low=0.0, low_open=True)
        if scale_fn is None and mode not in ("triangular", "triangular2", "exp_range"):
            raise ValueError(
                "mode must be 'triangular', 'triangular2' or 'exp_range' when scale_fn is None; "
                f"got mode={mode!r}"
            )
        if scale_mode not in ("cycle", "iterations"):
            raise ValueError(f"scale_mode must be 'cycle' or 'iterations'; got {scale_mode!r}")
        if last_epoch == -1:
            for lr, group in zip(base_lrs, optimizer.param_groups):
                group["lr"] = lr
        up = float(step_size_up)
        down = float(step_size_down) if step_size_down is not None else up
        self.total_size = up + down
        self.step_ratio = up / self.total_size
        self.mode = mode
        self.gamma = gamma
        self._scale_fn_custom = scale_fn
        if scale_fn is None:
            scale_mode = "iterations" if mode == "exp_range" else "cycle"
        self.scale_mode = scale_mode

        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            self.use_beta1 = _momentum_key(optimizer) == "betas"
            self.base_momentums = _momenta("base_momentum", base_momentum, optimizer)
            self.max_momentums = _momenta("max_momentum", max_momentum, optimizer)
            if last_epoch == -1:
                for high, low, group in zip(self.max_momentums, self.base_momentums,
                                            optimizer.param_groups):
                    _set_momentum(group, high, self.use_beta1)
                    group["max_momentum"] = high
                    group["base_momentum"] = low
        super().__init__(optimizer, last_epoch)
        self.base_lrs = base_lrs

    def scale_fn(self, x):
        """Height multiplier of the triangle at cycle (or step) x."""
        if self._scale_fn_custom is not None:
            return self._scale_fn_custom(x)
        if self.mode == "triangular":
            return 1.0
        if self.mode == "triangular2":
            return 1 / (2.0 ** (x - 1))
        return self.gamma**x

    def _schedule_at(self, step):
        """(lrs, momentums) at a batch index; momentums is None without cycle_momentum."""
        cycle = math.floor(1 + step / self.total_size)
        x = 1.0 + step / self.total_size - cycle  # position within the cycle, in [0, 1)
        if x <= self.step_ratio:
            scale_factor = x / self.step_ratio
        else:
            scale_factor = (x - 1) / (self.step_ratio - 1)
        scale = self.scale_fn(cycle if self.scale_mode == "cycle" else step)
        lrs = [
            base + (high - base) * scale_factor * scale
            for base, high in zip(self.base_lrs, self.max_lrs)
        ]
        if not self.cycle_momentum:
            return lrs, None
        momentums = [
            high - (high - base) * scale_factor * scale
            for base, high in zip(self.base_momentums, self.max_momentums)
        ]
        return lrs, momentums

    def get_lr(self):
        lrs, momentums = self._schedule_at(self.last_epoch)
        if momentums is not None:
            for group, momentum in zip(self.optimizer.param_groups, momentums):
                _set_momentum(group, momentum, self.use_beta1)
        return lrs

    def lr_at(self, step):
        return self._schedule_at(step)[0]

    def state_dict(self):
        state = super().state_dict()
        fn = self._scale_fn_custom
        keep = fn is not None and not isinstance(fn, types.FunctionType)
        state["_scale_fn_custom"] = dict(vars(fn)) if keep else None
        return state

    def load_state_dict(self, state_dict):
        state = dict(state_dict)
        saved = state.pop("_scale_fn_custom", None)
        super().load_state_dict(state)
        if saved is not None:
            self._scale_fn_custom.__dict__.update(saved)


class OneCycleLR(LRScheduler):
    """The 1cycle policy: warm up to max_lr, then anneal far below the start; once per batch.

    Two phases (default): initial_lr -> max_lr over pct_start of the steps, then max_lr ->
    min_lr. With three_phase: initial_lr -> max_lr -> initial_lr (symmetric), then -> min_lr.
    initial_lr = max_lr / div_factor and min_lr = initial_lr / final_div_factor; both, and
    max_lr, are stored in each param group. Momentum (or beta1) moves the opposite way between
    max_momentum and base_momentum when cycle_momentum is on.

    Args:
        optimizer: the wrapped Optimizer.
        max_lr: peak lr, a number or one per group.
        total_steps: number of steps in the cycle; or give epochs and steps_per_epoch.
        epochs, steps_per_epoch: total_steps = epochs * steps_per_epoch.
        pct_start: fraction of the steps spent rising, in [0, 1].
        anneal_strategy: "cos" or "linear".
        cycle_momentum: cycle momentum (or beta1) inversely to the lr.
        base_momentum, max_momentum: momentum bounds, a number or one per group.
        div_factor: max_lr / initial_lr, > 0.
        final_div_factor: initial_lr / min_lr, > 0.
        three_phase: use the three-phase schedule.
        last_epoch: -1 to start, else the batch index to resume from.

    Stepping more than total_steps times raises ValueError.
    """

    def __init__(self, optimizer, max_lr, total_steps=None, epochs=None, steps_per_epoch=None,
                 pct_start=0.3, anneal_strategy="cos", cycle_momentum=True, base_momentum=0.85,
                 max_momentum=0.95, div_factor=25.0, final_div_factor=1e4, three_phase=False,
                 last_epoch=-1):
        if total_steps is not None:
            check_int("total_steps", total_steps, 1)
        elif epochs is not None and steps_per_epoch is not None:
            check_int("epochs", epochs, 1)
            check_int("steps_per_epoch", steps_per_epoch, 1)
            total_steps = epochs * steps_per_epoch
        else:
            raise ValueError("give either total_steps or both epochs and steps_per_epoch")
        check_number("pct_start", pct_start, low=0.0, high=1.0)
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(
                "anneal_strategy must be 'cos' or 'linear'; "
                f"got anneal_strategy={anneal_strategy!r}"
            )
        check_number("div_factor", div_factor, low=0.0, low_open=True)
        check_number("final_div_factor", final_div_factor, low=0.0, low_open=True)
        self.total_steps = total_steps
        self.anneal_strategy = anneal_strategy
        self._schedule_phases = _one_cycle_phases(total_steps, pct_start, three_phase)

        max_lrs = per_group("max_lr", max_lr, optimizer)
        for value in max_lrs:
            check_number("max_lr", value, low=0.0)
        if last_epoch == -1:
            for high, group in zip(max_lrs, optimizer.param_groups):
                group["initial_lr"] = high / div_factor
                group["max_lr"] = high
                group["min_lr"] = group["initial_lr"] / final_div_factor

        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            self.use_beta1 = _momentum_key(optimizer) == "betas"
            highs = _momenta("max_momentum", max_momentum, optimizer)
            lows = _momenta("base_momentum", base_momentum, optimizer)
            if last_epoch == -1:
                for high, low, group in zip(highs, lows, optimizer.param_groups):
                    _set_momentum(group, high, self.use_beta1)
                    group["max_momentum"] = high
                    group["base_momentum"] = low
        super().__init__(optimizer, last_epoch)

    def _anneal(self, start, end, pct):
        """Move from start (pct = 0) to end (pct = 1), along a half cosine or a line."""
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def _schedule_at(self, step):
        """[(lr, momentum or None)] per group at a step, from the values stored in the groups."""
        if step > self.total_steps:
            raise ValueError(
                f"OneCycleLR has total_steps={self.total_steps}; got step {step} "
                "(stepped more often than the cycle is long)"
            )
        values = []
        for group in self.optimizer.param_groups:
            start_step = 0.0
            for i, phase in enumerate(self._schedule_phases):
                end_step = phase["end_step"]
                if step <= end_step or i == len(self._schedule_phases) - 1:
                    pct = (step - start_step) / (end_step - start_step)
                    break
                start_step = end_step
            lr = self._anneal(group[phase["start_lr"]], group[phase["end_lr"]], pct)
            momentum = None
            if self.cycle_momentum:
                momentum = self._anneal(
                    group[phase["start_momentum"]], group[phase["end_momentum"]], pct
                )
            values.append((lr, momentum))
        return values

    def get_lr(self):
        values = self._schedule_at(self.last_epoch)
        if self.cycle_momentum:
            for group, (_, momentum) in zip(self.optimizer.param_groups, values):
                _set_momentum(group, momentum, self.use_beta1)
        return [lr for lr, _ in values]

    def lr_at(self, step):
        return [lr for lr, _ in self._schedule_at(step)]


def _one_cycle_phases(total_steps, pct_start, three_phase):
    """The phases of 1cycle: the step each ends at and the group keys it anneals between."""
    rise_end = float(pct_start * total_steps) - 1
    if three_phase:
        return [
            _phase(rise_end, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
            _phase(float(2 * pct_start * total_steps) - 2, "max_lr", "initial_lr",
                   "base_momentum", "max_momentum"),
            _phase(total_steps - 1, "initial_lr", "min_lr", "max_momentum", "max_momentum"),
        ]
    return [
        _phase(rise_end, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
        _phase(total_steps - 1, "max_lr", "min_lr", "base_momentum", "max_momentum"),
    ]


def _phase(end_step, start_lr, end_lr, start_momentum, end_momentum):
    return {
        "end_step": end_step,
        "start_lr": start_lr,
        "end_lr": end_lr,
        "start_momentum": start_momentum,
        "end_momentum": end_momentum,
    }
