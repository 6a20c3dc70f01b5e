"""Adam (Kingma & Ba, 2015), with the AMSGrad variant and optional decoupled weight decay."""

import numpy as np

from juanji.optim.optimizer import (
    Optimizer,
    check_betas,
    check_min,
    lerp_,
    step_counter,
)


class Adam(Optimizer):
    """Adam, as `torch.optim.Adam`.

    With g the gradient (negated when maximize) and t the step count, per step::

        p = p * (1 - lr * weight_decay)     if decoupled_weight_decay (AdamW)
        g = g + weight_decay * p            otherwise
        m = lerp(m, g, 1 - beta1)
        v = beta2 * v + (1 - beta2) * g * g
        v_max = max(v_max, v)               (amsgrad; v_max replaces v below)
        p = p - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    Args:
        params: iterable of Parameters or param-group dicts.
        lr: learning rate, >= 0.
        betas: (beta1, beta2), each in [0, 1).
        eps: added to the denominator, >= 0.
        weight_decay: L2 penalty (or decoupled decay rate), >= 0.
        amsgrad: use the running maximum of v (Reddi et al., 2018).
        maximize: ascend the objective instead of descending.
        decoupled_weight_decay: shrink the weights directly instead of adding to the gradient
            (this is AdamW).

    State per parameter: "step", "exp_avg", "exp_avg_sq" and, with amsgrad, "max_exp_avg_sq".
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, *, maximize=False, decoupled_weight_decay=False):
        defaults = {
            "lr": lr,
            "betas": tuple(betas),
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
            "maximize": maximize,
            "decoupled_weight_decay": decoupled_weight_decay,
        }
        super().__init__(params, defaults)

    def _validate(self, settings):
        super()._validate(settings)
        check_min(settings, "eps", 0.0)
        check_betas(settings)
        check_min(settings, "weight_decay", 0.0)

    def _update(self, param, grad, state, group):
        lr, weight_decay, eps = group["lr"], group["weight_decay"], group["eps"]
        beta1, beta2 = group["betas"]
        if not state:
            state["step"] = step_counter()
            state["exp_avg"] = np.zeros_like(param)
            state["exp_avg_sq"] = np.zeros_like(param)
        if group["amsgrad"] and "max_exp_avg_sq" not in state:
            state["max_exp_avg_sq"] = np.zeros_like(param)
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        if group["maximize"]:
            grad = -grad
        state["step"] += 1
        step = float(state["step"])

        if weight_decay != 0:
            if group["decoupled_weight_decay"]:
                param *= 1 - lr * weight_decay
            else:
                grad = grad + weight_decay * param

        lerp_(exp_avg, grad, 1 - beta1)
        exp_avg_sq *= beta2
        exp_avg_sq += (1 - beta2) * grad * grad

        step_size = lr / (1 - beta1**step)
        bias_correction2_sqrt = (1 - beta2**step) ** 0.5
        if group["amsgrad"]:
            np.maximum(state["max_exp_avg_sq"], exp_avg_sq, out=state["max_exp_avg_sq"])
            second = state["max_exp_avg_sq"]
        else:
            second = exp_avg_sq
        denom = np.sqrt(second) / bias_correction2_sqrt + eps
        param -= step_size * exp_avg / denom
