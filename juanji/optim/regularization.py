"""L1 regularisation as a proximal step: soft-thresholding after the optimiser's step.

Why a proximal step and not an `l1 * sum(|w|)` loss term: the subgradient of |w| is sign(w),
a constant push of size l1 that overshoots zero, so plain gradient descent makes weights
oscillate around 0 and never reach it. The proximal operator of lr * l1 * |w| is exact,

    prox(w) = sign(w) * max(|w| - lr * l1, 0),

and sets every weight whose magnitude falls below the threshold lr * l1 to exactly 0.0, which
is the point of L1 (sparse, prunable models). It is pure NumPy, needs no autograd, and adds no
term to the loss. With plain SGD (no momentum) "SGD step + L1Proximal.step()" is the
proximal-gradient method (ISTA) for loss + l1 * ||w||_1. With momentum or adaptive optimisers
it is "decoupled" L1, the analogue of AdamW's decoupled L2, and a heuristic: the effective
penalty is no longer l1 * ||w||_1, and a weight is zeroed only if the optimiser's own step for
it stays below lr * l1. Adam moves every weight by about lr per step whatever its gradient,
so with Adam exact zeros are not guaranteed even for l1 = 1; prefer SGD for sparsity.
"""

import math
import numbers

import numpy as np

from juanji.optim.optimizer import Optimizer


def soft_threshold_(array, threshold):
    """In place: array <- sign(array) * max(|array| - threshold, 0). Returns `array`."""
    shrunk = np.abs(array) - threshold
    np.maximum(shrunk, 0, out=shrunk)
    np.copysign(shrunk, array, out=array)
    return array


class L1Proximal:
    """Apply L1 to the weights by soft-thresholding them after each optimiser step.

        optimizer.step()
        l1.step()          # w <- sign(w) * max(|w| - lr * l1, 0)

    Args:
        target: an Optimizer (each group's current lr is used, so lr schedules carry over and
            a group may override the coefficient with an "l1" key, e.g. 0 for biases), or an
            iterable of Parameters (then `lr` is required).
        l1: penalty coefficient, >= 0; the threshold per step is lr * l1.
        lr: step size, only when `target` is a list of parameters.

    Parameters whose grad is None are left alone: the optimiser did not step them either.
    """

    def __init__(self, target, l1, lr=None):
        _check_nonnegative("l1", l1)
        if isinstance(target, Optimizer):
            if lr is not None:
                raise ValueError(
                    f"lr must be None when an optimizer is given (its group lrs are used); "
                    f"got lr={lr!r}"
                )
            self.optimizer = target
            self._params = None
        else:
            if lr is None:
                raise ValueError("lr is required when parameters are given instead of an optimizer")
            _check_nonnegative("lr", lr)
            self.optimizer = None
            self._params = list(target)
            if not self._params:
                raise ValueError("params is empty; expected at least one Parameter")
        self.l1 = l1
        self.lr = lr

    def _groups(self):
        """[(params, threshold)] for this step."""
        if self.optimizer is None:
            return [(self._params, self.lr * self.l1)]
        return [
            (group["params"], group["lr"] * group.get("l1", self.l1))
            for group in self.optimizer.param_groups
        ]

    def step(self):
        """Soft-threshold every parameter that has a gradient, in place."""
        for params, threshold in self._groups():
            if threshold == 0:
                continue
            for p in params:
                if p.grad is not None:
                    soft_threshold_(p.data, threshold)


def _check_nonnegative(name, value):
    if not (isinstance(value, numbers.Real) and math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0; got {name}={value!r}")
