"""build_optimizer / build_scheduler: names, defaults, per_batch, errors that list the names."""

import re

import numpy as np
import pytest

from juanji.nn import Parameter
from juanji.optim import (
    OPTIMIZERS,
    SCHEDULERS,
    SGD,
    Adam,
    AdamW,
    build_optimizer,
    build_scheduler,
)
from juanji.optim import lr_scheduler as sched


def _params():
    return [Parameter(np.zeros((2, 2), np.float32)), Parameter(np.zeros(3, np.float32))]


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_every_optimizer_builds_with_lr_and_weight_decay(name):
    optimizer = build_optimizer(name, _params(), lr=0.03, weight_decay=0.01)
    assert type(optimizer) is OPTIMIZERS[name]
    assert optimizer.param_groups[0]["lr"] == 0.03
    assert optimizer.param_groups[0]["weight_decay"] == 0.01


def test_momentum_and_extra_keywords_are_passed_on():
    sgd = build_optimizer("sgd", _params(), lr=0.1, momentum=0.9, nesterov=True)
    assert isinstance(sgd, SGD) and sgd.defaults["momentum"] == 0.9 and sgd.defaults["nesterov"]
    rms = build_optimizer("rmsprop", _params(), lr=0.01, momentum=0.5, centered=True)
    assert rms.defaults["momentum"] == 0.5 and rms.defaults["centered"] is True
    adam = build_optimizer("adam", _params(), lr=1e-3, betas=(0.8, 0.99), amsgrad=True)
    assert isinstance(adam, Adam) and adam.defaults["betas"] == (0.8, 0.99)
    adamw = build_optimizer("adamw", _params(), lr=1e-3)
    assert isinstance(adamw, AdamW) and adamw.defaults["weight_decay"] == 0.0


def test_unknown_optimizer_lists_the_names():
    with pytest.raises(ValueError, match=re.escape(
            "unknown optimizer 'lbfgs'; expected one of sgd, adam, adamw, rmsprop, adagrad, "
            "adadelta, adamax, nadam")):
        build_optimizer("lbfgs", _params(), lr=0.1)


def test_momentum_for_an_optimizer_without_it_is_an_error():
    with pytest.raises(ValueError, match=re.escape(
            "momentum applies to sgd and rmsprop only; got momentum=0.9 for 'adam'")):
        build_optimizer("adam", _params(), lr=0.1, momentum=0.9)


EXPECTED_TYPES = {
    "step": sched.StepLR,
    "multistep": sched.MultiStepLR,
    "exponential": sched.ExponentialLR,
    "cosine": sched.CosineAnnealingLR,
    "cosine-restarts": sched.CosineAnnealingWarmRestarts,
    "plateau": sched.ReduceLROnPlateau,
    "cyclic": sched.CyclicLR,
    "onecycle": sched.OneCycleLR,
    "linear": sched.LinearLR,
}


@pytest.mark.parametrize("optimizer_name", ["sgd", "adam", "adagrad"])
@pytest.mark.parametrize("name", list(EXPECTED_TYPES))
def test_every_scheduler_builds_and_runs_a_whole_training(name, optimizer_name):
    optimizer = build_optimizer(optimizer_name, _params(), lr=0.1)
    scheduler = build_scheduler(name, optimizer, steps_per_epoch=7, epochs=12)
    assert type(scheduler) is EXPECTED_TYPES[name]
    assert scheduler.per_batch is (name in ("cyclic", "onecycle"))
    assert scheduler.per_batch is SCHEDULERS[name][1]
    for _epoch in range(12):
        for _batch in range(7):
            if scheduler.per_batch:
                scheduler.step()
        if name == "plateau":
            scheduler.step(1.0)  # a flat metric: cut after patience epochs
        elif not scheduler.per_batch:
            scheduler.step()
    lr = optimizer.param_groups[0]["lr"]
    assert 0.0 <= lr <= 0.1 + 1e-12


def test_defaults_follow_the_run_length():
    optimizer = build_optimizer("sgd", _params(), lr=0.1, momentum=0.9)
    cosine = build_scheduler("cosine", optimizer, steps_per_epoch=10, epochs=30)
    assert cosine.T_max == 30
    onecycle = build_scheduler("onecycle", build_optimizer("sgd", _params(), lr=0.1,
                                                           momentum=0.9), 10, 30)
    assert onecycle.total_steps == 300 and onecycle.cycle_momentum
    cyclic = build_scheduler("cyclic", build_optimizer("adagrad", _params(), lr=0.1), 10, 30)
    assert cyclic.cycle_momentum is False and cyclic.base_lrs == [pytest.approx(0.01)]
    step = build_scheduler("step", build_optimizer("sgd", _params(), lr=0.1), 10, 30, gamma=0.5)
    assert step.step_size == 10 and step.gamma == 0.5


def test_none_returns_none():
    assert build_scheduler("none", build_optimizer("sgd", _params(), lr=0.1), 5, 3) is None


def test_unknown_scheduler_and_bad_sizes():
    optimizer = build_optimizer("sgd", _params(), lr=0.1)
    with pytest.raises(ValueError, match=re.escape(
            "unknown scheduler 'poly'; expected one of none, step, multistep, exponential, "
            "cosine, cosine-restarts, plateau, cyclic, onecycle, linear")):
        build_scheduler("poly", optimizer, 5, 3)
    with pytest.raises(ValueError, match=re.escape("epochs must be an int >= 1; got epochs=0")):
        build_scheduler("cosine", optimizer, 5, 0)
    with pytest.raises(ValueError, match="steps_per_epoch must be an int >= 1"):
        build_scheduler("cosine", optimizer, 0, 3)
