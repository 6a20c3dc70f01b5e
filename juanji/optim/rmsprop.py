"""RMSprop (Hinton, 2012 lecture notes), with optional momentum and the centered variant."""

import numpy as np

from juanji.optim.optimizer import Optimizer, check_interval, check_min, lerp_, step_counter


class RMSprop(Optimizer):
    """RMSprop, as `torch.optim.RMSprop`.

    With g the gradient (negated when maximize), per step::

        g = g + weight_decay * p
        v = alpha * v + (1 - alpha) * g * g
        avg = sqrt(v - m * m) + eps,  m = lerp(m, g, 1 - alpha)   (centered)
        avg = sqrt(v) + eps                                        (otherwise)
        b = momentum * b + g / avg;  p = p - lr * b                (momentum > 0)
        p = p - lr * g / avg                                       (otherwise)

    Args:
        params: iterable of Parameters or param-group dicts.
        lr: learning rate, >= 0.
        alpha: smoothing constant in [0, 1].
        eps: added to the denominator, >= 0.
        weight_decay: L2 penalty, >= 0.
        momentum: momentum factor in [0, 1).
        centered: normalise by the estimated variance instead of the raw second moment.
        maximize: ascend the objective instead of descending.

    State per parameter: "step", "square_avg", plus "momentum_buffer" (momentum > 0) and
    "grad_avg" (centered), created at the parameter's first step.
    """

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                 centered=False, *, maximize=False):
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "alpha": alpha,
            "eps": eps,
            "centered": centered,
            "weight_decay": weight_decay,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _validate(self, settings):
        super()._validate(settings)
        check_min(settings, "eps", 0.0)
        check_interval(settings, "momentum", 0.0, 1.0)
        check_min(settings, "weight_decay", 0.0)
        check_interval(settings, "alpha", 0.0, 1.0, include_high=True)

    def _update(self, param, grad, state, group):
        alpha, momentum = group["alpha"], group["momentum"]
        if not state:
            state["step"] = step_counter()
            state["square_avg"] = np.zeros_like(param)
        # Checked every step: a scheduler or the user may turn momentum or centering on later.
        if momentum > 0 and "momentum_buffer" not in state:
            state["momentum_buffer"] = np.zeros_like(param)
        if group["centered"] and "grad_avg" not in state:
            state["grad_avg"] = np.zeros_like(param)
        square_avg = state["square_avg"]
        if group["maximize"]:
            grad = -grad
        state["step"] += 1
        if group["weight_decay"] != 0:
            grad = grad + group["weight_decay"] * param

        square_avg *= alpha
        square_avg += (1 - alpha) * grad * grad
        if group["centered"]:
            grad_avg = state["grad_avg"]
            lerp_(grad_avg, grad, 1 - alpha)
            avg = np.sqrt(square_avg - grad_avg * grad_avg)
        else:
            avg = np.sqrt(square_avg)
        avg += group["eps"]

        if momentum > 0:
            buf = state["momentum_buffer"]
            buf *= momentum
            buf += grad / avg
            param -= group["lr"] * buf
        else:
            param -= group["lr"] * grad / avg
