"""AdamW (Loshchilov & Hutter, 2019): Adam with weight decay decoupled from the gradient."""

from juanji.optim.adam import Adam


class AdamW(Adam):
    """AdamW, as `torch.optim.AdamW`: Adam with `decoupled_weight_decay=True`.

    Each step first shrinks the weights, p = p * (1 - lr * weight_decay), then takes the Adam
    step on the raw gradient, so the decay never enters the moment estimates.

    Args:
        params: iterable of Parameters or param-group dicts.
        lr: learning rate, >= 0.
        betas: (beta1, beta2), each in [0, 1).
        eps: added to the denominator, >= 0.
        weight_decay: decoupled decay rate, >= 0 (default 1e-2, unlike Adam's 0).
        amsgrad: use the running maximum of the second moment.
        maximize: ascend the objective instead of descending.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                         decoupled_weight_decay=True)

    def load_state_dict(self, state_dict):
        """As `Optimizer.load_state_dict`, but decay stays decoupled whatever the dict says."""
        super().load_state_dict(state_dict)
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True
