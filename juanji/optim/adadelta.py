"""Adadelta (Zeiler, 2012): steps scaled by the ratio of running RMS of updates and gradients."""

import numpy as np

from juanji.optim.optimizer import Optimizer, check_interval, check_min, step_counter


class Adadelta(Optimizer):
    """Adadelta, as `torch.optim.Adadelta`.

    With g the gradient (negated when maximize), per step::

        g = g + weight_decay * p
        v = rho * v + (1 - rho) * g * g
        d = sqrt(u + eps) / sqrt(v + eps) * g
        u = rho * u + (1 - rho) * d * d
        p = p - lr * d

    Args:
        params: iterable of Parameters or param-group dicts.
        lr: scale applied to the step, >= 0 (1.0 is the paper's method).
        rho: decay of the running averages, in [0, 1].
        eps: added inside the square roots, >= 0.
        weight_decay: L2 penalty, >= 0.
        maximize: ascend the objective instead of descending.

    State per parameter: "step", "square_avg" (v) and "acc_delta" (u).
    """

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, *, maximize=False):
        defaults = {
            "lr": lr,
            "rho": rho,
            "eps": eps,
            "weight_decay": weight_decay,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _validate(self, settings):
        super()._validate(settings)
        check_interval(settings, "rho", 0.0, 1.0, include_high=True)
        check_min(settings, "eps", 0.0)
        check_min(settings, "weight_decay", 0.0)

    def _update(self, param, grad, state, group):
        rho, eps = group["rho"], group["eps"]
        if not state:
            state["step"] = step_counter()
            state["square_avg"] = np.zeros_like(param)
            state["acc_delta"] = np.zeros_like(param)
        square_avg, acc_delta = state["square_avg"], state["acc_delta"]
        state["step"] += 1
        if group["maximize"]:
            grad = -grad
        if group["weight_decay"] != 0:
            grad = grad + group["weight_decay"] * param

        square_avg *= rho
        square_avg += (1 - rho) * grad * grad
        std = np.sqrt(square_avg + eps)
        delta = np.sqrt(acc_delta + eps)
        delta /= std
        delta *= grad
        acc_delta *= rho
        acc_delta += (1 - rho) * delta * delta
        param -= group["lr"] * delta
