"""Stochastic gradient descent with optional momentum, dampening, Nesterov and weight decay."""

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

    def _update(self, param, grad, state, group):
        new_param, new_state = self._updated(param, grad, state, group)
        param[...] = new_param
        state.update(new_state)

    def _updated(self, data, grad, state, group):
        # the new arrays directly (no copies of the old ones first): the same float operations
        # as updating copies in place; `state` and `data` are not changed
        momentum = group["momentum"]
        if group["maximize"]:
            grad = -grad
        if group["weight_decay"] != 0:
            grad = grad + group["weight_decay"] * data
        state = dict(state)
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = grad.copy()
            else:
                buf = buf * momentum
                buf += grad if group["dampening"] == 0 else (1 - group["dampening"]) * grad
            state["momentum_buffer"] = buf
            grad = grad + momentum * buf if group["nesterov"] else buf
        return data - group["lr"] * grad, state
