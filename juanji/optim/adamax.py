"""Adamax (Kingma & Ba, 2015, section 7.1): Adam with the infinity norm for the second moment."""

import numpy as np

from juanji.optim.optimizer import Optimizer, check_betas, check_min, lerp_, step_counter


class Adamax(Optimizer):
    """Adamax, as `torch.optim.Adamax`.

    With g the gradient (negated when maximize) and t the step count, per step::

        g = g + weight_decay * p
        m = lerp(m, g, 1 - beta1)
        u = max(beta2 * u, |g| + eps)
        p = p - lr / (1 - beta1**t) * m / u

    Args:
        params: iterable of Parameters or param-group dicts.
        lr: learning rate, >= 0.
        betas: (beta1, beta2), each in [0, 1).
        eps: added to |g|, >= 0.
        weight_decay: L2 penalty, >= 0.
        maximize: ascend the objective instead of descending.

    State per parameter: "step", "exp_avg" (m) and "exp_inf" (u).
    """

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, *,
                 maximize=False):
        defaults = {
            "lr": lr,
            "betas": tuple(betas),
            "eps": eps,
            "weight_decay": weight_decay,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _validate(self, settings):
        super()._validate(settings)
        check_min(settings, "eps", 0.0)
        check_betas(settings)
        check_min(settings, "weight_decay", 0.0)

    def _update(self, param, grad, state, group):
        beta1, beta2 = group["betas"]
        if not state:
            state["step"] = step_counter()
            state["exp_avg"] = np.zeros_like(param)
            state["exp_inf"] = np.zeros_like(param)
        exp_avg, exp_inf = state["exp_avg"], state["exp_inf"]
        if group["maximize"]:
            grad = -grad
        state["step"] += 1
        if group["weight_decay"] != 0:
            grad = grad + group["weight_decay"] * param

        lerp_(exp_avg, grad, 1 - beta1)
        exp_inf *= beta2
        np.maximum(exp_inf, np.abs(grad) + group["eps"], out=exp_inf)
        clr = group["lr"] / (1 - beta1 ** float(state["step"]))
        param -= clr * exp_avg / exp_inf
