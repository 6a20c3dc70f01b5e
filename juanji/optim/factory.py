"""Build optimisers and schedulers by name, for the command line.

`build_optimizer("sgd", model.parameters(), lr=0.1, momentum=0.9)` and
`build_scheduler("cosine", optimizer, steps_per_epoch=len(loader), epochs=30)`; any extra
keyword goes to the constructor and overrides the defaults listed in `SCHEDULERS`.

When to step: every scheduler returned has `per_batch` set. `per_batch = True` (cyclic,
onecycle) means call `scheduler.step()` after every optimizer step; `False` means once per
epoch (`plateau`: `scheduler.step(validation_loss)`). "none" returns None.
"""

from juanji.optim.adadelta import Adadelta
from juanji.optim.adagrad import Adagrad
from juanji.optim.adam import Adam
from juanji.optim.adamax import Adamax
from juanji.optim.adamw import AdamW
from juanji.optim.lr_scheduler import (
    CosineAnnealingLR,
    CosineAnnealingWarmRestarts,
    CyclicLR,
    ExponentialLR,
    LinearLR,
    MultiStepLR,
    OneCycleLR,
    ReduceLROnPlateau,
    StepLR,
)
from juanji.optim.nadam import NAdam
from juanji.optim.rmsprop import RMSprop
from juanji.optim.scheduler import check_int
from juanji.optim.sgd import SGD

OPTIMIZERS = {
    "sgd": SGD,
    "adam": Adam,
    "adamw": AdamW,
    "rmsprop": RMSprop,
    "adagrad": Adagrad,
    "adadelta": Adadelta,
    "adamax": Adamax,
    "nadam": NAdam,
}
_WITH_MOMENTUM = ("sgd", "rmsprop")


def build_optimizer(name, params, lr, momentum=0.0, weight_decay=0.0, **kw):
    """The optimizer called `name` (a key of OPTIMIZERS) over `params`.

    `momentum` goes to sgd and rmsprop only; a nonzero momentum for another optimizer is an
    error (Adam-style optimizers take `betas=(beta1, beta2)` in kw). `weight_decay` is passed
    as given, so the default 0.0 also turns off AdamW's own 1e-2.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}")
    if name in _WITH_MOMENTUM:
        kw["momentum"] = momentum
    elif momentum != 0:
        raise ValueError(
            f"momentum applies to {' and '.join(_WITH_MOMENTUM)} only; got momentum={momentum!r} "
            f"for {name!r} (pass betas=(beta1, beta2) instead)"
        )
    return OPTIMIZERS[name](params, lr=lr, weight_decay=weight_decay, **kw)


def _cycles_momentum(optimizer):
    """Default for cycle_momentum: on when the optimizer has betas or a nonzero momentum."""
    return "betas" in optimizer.defaults or optimizer.defaults.get("momentum", 0) > 0


def _step(optimizer, steps_per_epoch, epochs, **kw):
    kw.setdefault("step_size", max(1, epochs // 3))
    return StepLR(optimizer, **kw)


def _multistep(optimizer, steps_per_epoch, epochs, **kw):
    kw.setdefault("milestones", [max(1, epochs // 2), max(1, epochs * 3 // 4)])
    return MultiStepLR(optimizer, **kw)


def _exponential(optimizer, steps_per_epoch, epochs, **kw):
    kw.setdefault("gamma", 0.95)
    return ExponentialLR(optimizer, **kw)


def _cosine(optimizer, steps_per_epoch, epochs, **kw):
    kw.setdefault("T_max", epochs)
    return CosineAnnealingLR(optimizer, **kw)


def _cosine_restarts(optimizer, steps_per_epoch, epochs, **kw):
    kw.setdefault("T_0", max(1, epochs // 3))
    return CosineAnnealingWarmRestarts(optimizer, **kw)


def _plateau(optimizer, steps_per_epoch, epochs, **kw):
    return ReduceLROnPlateau(optimizer, **kw)


def _cyclic(optimizer, steps_per_epoch, epochs, **kw):
    lrs = [group["lr"] for group in optimizer.param_groups]
    kw.setdefault("base_lr", [lr / 10 for lr in lrs])
    kw.setdefault("max_lr", lrs)
    kw.setdefault("step_size_up", max(1, steps_per_epoch * epochs // 4))  # two cycles in the run
    kw.setdefault("cycle_momentum", _cycles_momentum(optimizer))
    return CyclicLR(optimizer, **kw)


def _onecycle(optimizer, steps_per_epoch, epochs, **kw):
    kw.setdefault("max_lr", [group["lr"] for group in optimizer.param_groups])
    kw.setdefault("total_steps", steps_per_epoch * epochs)
    kw.setdefault("cycle_momentum", _cycles_momentum(optimizer))
    return OneCycleLR(optimizer, **kw)


def _linear(optimizer, steps_per_epoch, epochs, **kw):
    kw.setdefault("start_factor", 1.0)
    kw.setdefault("end_factor", 0.0)
    kw.setdefault("total_iters", epochs)
    return LinearLR(optimizer, **kw)


# name -> (builder, per_batch). Defaults: step: step_size=epochs//3, gamma 0.1; multistep: drops
# at 1/2 and 3/4 of the epochs; exponential: gamma 0.95; cosine: T_max=epochs; cosine-restarts:
# T_0=epochs//3; plateau: PyTorch's; cyclic: lr/10 .. lr, two cycles; onecycle: peak at lr;
# linear: decay from lr to 0 over the epochs.
SCHEDULERS = {
    "none": (None, False),
    "step": (_step, False),
    "multistep": (_multistep, False),
    "exponential": (_exponential, False),
    "cosine": (_cosine, False),
    "cosine-restarts": (_cosine_restarts, False),
    "plateau": (_plateau, False),
    "cyclic": (_cyclic, True),
    "onecycle": (_onecycle, True),
    "linear": (_linear, False),
}


def build_scheduler(name, optimizer, steps_per_epoch, epochs, **kw):
    """The scheduler called `name` (a key of SCHEDULERS) on `optimizer`, or None for "none".

    The result has `per_batch`: True to step after every batch, False to step once per epoch.
    """
    if name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; expected one of {', '.join(SCHEDULERS)}")
    check_int("steps_per_epoch", steps_per_epoch, 1)
    check_int("epochs", epochs, 1)
    builder, per_batch = SCHEDULERS[name]
    if builder is None:
        return None
    scheduler = builder(optimizer, steps_per_epoch, epochs, **kw)
    scheduler.per_batch = per_batch
    return scheduler
