"""Adagrad (Duchi et al., 2011): per-coordinate steps scaled by the root of summed squares."""

import numpy as np

from juanji.optim.optimizer import Optimizer, check_min, step_counter


class Adagrad(Optimizer):
    """Adagrad, as `torch.optim.Adagrad`.

    With g the gradient (negated when maximize) and t the step count, per step::

        g = g + weight_decay * p
        clr = lr / (1 + (t - 1) * lr_decay)
        s = s + g * g
        p = p - clr * g / (sqrt(s) + eps)

    Args:
        params: iterable of Parameters or param-group dicts.
        lr: learning rate, >= 0.
        lr_decay: learning-rate decay per step, >= 0.
        weight_decay: L2 penalty, >= 0.
        initial_accumulator_value: starting value of s, >= 0.
        eps: added to the denominator, >= 0.
        maximize: ascend the objective instead of descending.

    State per parameter ("step", "sum") is created when the parameter is added, as in PyTorch,
    so `state_dict()` lists every parameter even before the first step.
    """

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0,
                 eps=1e-10, *, maximize=False):
        defaults = {
            "lr": lr,
            "lr_decay": lr_decay,
            "eps": eps,
            "weight_decay": weight_decay,
            "initial_accumulator_value": initial_accumulator_value,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _validate(self, settings):
        super()._validate(settings)
        check_min(settings, "lr_decay", 0.0)
        check_min(settings, "weight_decay", 0.0)
        check_min(settings, "initial_accumulator_value", 0.0)
        check_min(settings, "eps", 0.0)

    def add_param_group(self, param_group):
        """As `Optimizer.add_param_group`, then create each new parameter's accumulator."""
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        for p in group["params"]:
            self.state[p]["step"] = step_counter()
            self.state[p]["sum"] = np.full_like(p.data, group["initial_accumulator_value"])

    def _update(self, param, grad, state, group):
        state_sum = state["sum"]
        state["step"] += 1
        step = float(state["step"])
        if group["maximize"]:
            grad = -grad
        if group["weight_decay"] != 0:
            grad = grad + group["weight_decay"] * param
        clr = group["lr"] / (1 + (step - 1) * group["lr_decay"])
        state_sum += grad * grad
        std = np.sqrt(state_sum) + group["eps"]
        param -= clr * grad / std
