"""NAdam (Dozat, 2016): Adam with Nesterov momentum and a momentum-decay schedule."""

import numpy as np

from juanji.optim.optimizer import Optimizer, check_betas, check_min, lerp_, step_counter


class NAdam(Optimizer):
    """NAdam, as `torch.optim.NAdam`.

    With g the gradient (negated when maximize) and t the step count, per step::

        p = p * (1 - lr * weight_decay)  if decoupled_weight_decay, else g = g + weight_decay * p
        mu_t = beta1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))
        P_t = mu_1 * ... * mu_t                       (state "mu_product", float32)
        m = lerp(m, g, 1 - beta1);  v = beta2 * v + (1 - beta2) * g * g
        denom = sqrt(v / (1 - beta2**t)) + eps
        p = p - lr * (1 - mu_t) / (1 - P_t) * g / denom
              - lr * mu_{t+1} / (1 - P_t * mu_{t+1}) * m / denom

    Args:
        params: iterable of Parameters or param-group dicts.
        lr: learning rate, >= 0.
        betas: (beta1, beta2), each in [0, 1).
        eps: added to the denominator, >= 0.
        weight_decay: L2 penalty (or decoupled decay rate), >= 0.
        momentum_decay: psi in the mu schedule, >= 0.
        decoupled_weight_decay: shrink the weights directly, as AdamW does.
        maximize: ascend the objective instead of descending.

    State per parameter: "step", "mu_product", "exp_avg", "exp_avg_sq".
    """

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 momentum_decay=4e-3, decoupled_weight_decay=False, *, maximize=False):
        defaults = {
            "lr": lr,
            "betas": tuple(betas),
            "eps": eps,
            "weight_decay": weight_decay,
            "momentum_decay": momentum_decay,
            "decoupled_weight_decay": decoupled_weight_decay,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _validate(self, settings):
        super()._validate(settings)
        check_min(settings, "eps", 0.0)
        check_betas(settings)
        check_min(settings, "weight_decay", 0.0)
        check_min(settings, "momentum_decay", 0.0)

    def _update(self, param, grad, state, group):
        lr, weight_decay = group["lr"], group["weight_decay"]
        momentum_decay = group["momentum_decay"]
        beta1, beta2 = group["betas"]
        if not state:
            state["step"] = step_counter()
            state["mu_product"] = np.ones((), dtype=np.float32)
            state["exp_avg"] = np.zeros_like(param)
            state["exp_avg_sq"] = np.zeros_like(param)
        exp_avg, exp_avg_sq, mu_product = state["exp_avg"], state["exp_avg_sq"], state["mu_product"]
        if group["maximize"]:
            grad = -grad
        state["step"] += 1
        step = float(state["step"])
        bias_correction2 = 1 - beta2**step

        if weight_decay != 0:
            if group["decoupled_weight_decay"]:
                param *= 1 - lr * weight_decay
            else:
                grad = grad + weight_decay * param

        mu = beta1 * (1.0 - 0.5 * (0.96 ** (step * momentum_decay)))
        mu_next = beta1 * (1.0 - 0.5 * (0.96 ** ((step + 1) * momentum_decay)))
        mu_product *= mu  # float32, as PyTorch keeps it

        lerp_(exp_avg, grad, 1 - beta1)
        exp_avg_sq *= beta2
        exp_avg_sq += (1 - beta2) * grad * grad
        denom = np.sqrt(exp_avg_sq / bias_correction2) + group["eps"]

        product = float(mu_product)
        product_next = product * mu_next
        param += (-lr * (1.0 - mu) / (1.0 - product)) * grad / denom
        param += ((-lr * mu_next) / (1.0 - product_next)) * exp_avg / denom
