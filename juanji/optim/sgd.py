"""Stochastic gradient descent with optional momentum, dampening, Nesterov and weight decay."""

import numpy as np

from juanji.ops import compiled
from juanji.optim.optimizer import Optimizer, check_interval, check_min


class SGD(Optimizer):
    """SGD, as `torch.optim.SGD`.

    With g the gradient (negated when maximize), per step::

        g = g + weight_decay * p
        b = g                                   (first step)
        b = momentum * b + (1 - dampening) * g  (later steps)
        g = g + momentum * b  if nesterov else b   (only when momentum != 0)
        p = p - lr * g

    Args:
        params: iterable of Parameters or param-group dicts.
        lr: learning rate, >= 0.
        momentum: momentum factor in [0, 1) (PyTorch accepts >= 1; juanji does not, since the
            velocity would then never decay).
        dampening: dampening for momentum, in [0, 1].
        weight_decay: L2 penalty coefficient, >= 0.
        nesterov: Nesterov momentum; requires momentum > 0 and dampening == 0.
        maximize: ascend the objective instead of descending.

    State per parameter: "momentum_buffer" (only when momentum != 0).
    """

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
                 nesterov=False, *, maximize=False):
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _validate(self, settings):
        super()._validate(settings)
        check_interval(settings, "momentum", 0.0, 1.0)
        check_interval(settings, "dampening", 0.0, 1.0, include_high=True)
        check_min(settings, "weight_decay", 0.0)
        if settings["nesterov"] and (settings["momentum"] <= 0 or settings["dampening"] != 0):
            raise ValueError(
                "nesterov=True requires momentum > 0 and dampening = 0; "
                f"got momentum={settings['momentum']!r}, dampening={settings['dampening']!r}"
            )

    def _updated(self, data, grad, state, group):
        # The new arrays directly (no copies of the old ones first): the same float operations
        # as updating copies in place; `state` and `data` are not changed. The coefficients
        # act as Python floats, so in the parameter's dtype (as in torch), whatever their type.
        lr, momentum, dampening, decay = (float(group[key]) for key in (
            "lr", "momentum", "dampening", "weight_decay"))
        state = dict(state)
        buf = state.get("momentum_buffer")
        if momentum != 0 and buf is not None and _compiled(data, grad, buf):
            # the NumPy path below in one pass (ops/compiled.py), each coefficient in the
            # dtype NumPy computes it in (a Python float meets a float32 array as float32)
            dtype = data.dtype.type
            new_data, new_buf = np.empty_like(data), np.empty_like(buf)
            finite = compiled.sgd_momentum(
                data.reshape(-1), grad.reshape(-1), buf.reshape(-1), new_data.reshape(-1),
                new_buf.reshape(-1), dtype(lr), dtype(momentum), dtype(1 - dampening),
                dtype(decay), dampening != 0, decay != 0, bool(group["nesterov"]),
                bool(group["maximize"]))
            state["momentum_buffer"] = new_buf
            return new_data, state, finite
        if group["maximize"]:
            grad = -grad
        if decay != 0:
            grad = grad + decay * data
        if momentum != 0:
            if buf is None:
                buf = grad.copy()
            else:
                buf = buf * momentum
                buf += grad if dampening == 0 else (1 - dampening) * grad
            state["momentum_buffer"] = buf
            grad = grad + momentum * buf if group["nesterov"] else buf
        return data - lr * grad, state, False


def _compiled(data, grad, buf):
    """Whether the compiled step runs: numba, and C-contiguous float32/float64 arrays of one
    dtype and shape."""
    return compiled.runs_on(compiled.sgd_momentum, data, grad, buf) and all(
        a.dtype == data.dtype and a.shape == data.shape and a.flags.c_contiguous
        for a in (data, grad, buf))
