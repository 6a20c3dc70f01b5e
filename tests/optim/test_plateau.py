"""ReduceLROnPlateau against PyTorch's on a scripted metric, plus its argument checks."""

import re

import numpy as np
import pytest
import torch  # noqa: E402  (a test dependency: its absence is a failure)

import juanji.optim
from juanji.nn import Parameter
from juanji.optim.lr_scheduler import ReduceLROnPlateau

STEPS = 150
SAVE_AT = 70


def _metrics():
    """Falls, stalls with noise, rises, falls again: every branch of the plateau logic."""
    rng = np.random.default_rng(5)
    t = np.arange(STEPS)
    trend = np.where(t < 30, 1.0 - 0.02 * t, 0.4)
    trend = np.where((t >= 60) & (t < 80), 0.4 + 0.01 * (t - 60), trend)
    trend = np.where(t >= 80, 0.6 - 0.003 * (t - 80), trend)
    return (trend + 0.002 * rng.standard_normal(STEPS)).tolist()


CONFIGS = [
    {},
    {"patience": 3},
    {"mode": "max", "patience": 2, "factor": 0.5},
    {"threshold_mode": "abs", "threshold": 0.01, "patience": 2, "cooldown": 3},
    {"patience": 1, "factor": 0.5, "min_lr": [0.01, 0.004]},
    {"patience": 0, "factor": 0.9, "min_lr": 0.005},
    {"patience": 2, "eps": 0.05},
    {"mode": "max", "threshold_mode": "abs", "threshold": 0.0, "patience": 4, "cooldown": 1},
]


def _juanji_optimizer():
    params = [Parameter(np.zeros(2, np.float32)), Parameter(np.zeros(3, np.float32))]
    return juanji.optim.SGD([{"params": [params[0]], "lr": 0.1}, {"params": [params[1]]}],
                            lr=0.02, momentum=0.9)


def _torch_optimizer():
    params = [torch.zeros(2, requires_grad=True), torch.zeros(3, requires_grad=True)]
    return torch.optim.SGD([{"params": [params[0]], "lr": 0.1}, {"params": [params[1]]}],
                           lr=0.02, momentum=0.9)


def _lrs(optimizer):
    return [group["lr"] for group in optimizer.param_groups]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items())
                         or "defaults")
def test_matches_torch_and_resumes(config):
    metrics = _metrics()
    t_opt = _torch_optimizer()
    t_sched = torch.optim.lr_scheduler.ReduceLROnPlateau(t_opt, **config)
    optimizer = _juanji_optimizer()
    scheduler = ReduceLROnPlateau(optimizer, **config)
    resumed = None
    cuts = 0
    for t, value in enumerate(metrics):
        if t == SAVE_AT:
            resumed_opt = _juanji_optimizer()
            resumed = ReduceLROnPlateau(resumed_opt, **config)
            resumed_opt.load_state_dict(optimizer.state_dict())
            resumed.load_state_dict(scheduler.state_dict())
        before = _lrs(optimizer)
        t_sched.step(value)
        scheduler.step(value)
        cuts += _lrs(optimizer) != before
        assert _lrs(optimizer) == pytest.approx(_lrs(t_opt), rel=1e-12), f"step {t}"
        assert scheduler.get_last_lr() == _lrs(optimizer)
        assert scheduler.num_bad_epochs == t_sched.num_bad_epochs
        if resumed is not None:
            resumed.step(value)
            assert _lrs(resumed_opt) == _lrs(optimizer)
    assert cuts > 0  # the metric script really exercises a cut in every configuration


def test_does_not_touch_lr_or_set_initial_lr_on_construction():
    optimizer = _juanji_optimizer()
    ReduceLROnPlateau(optimizer)
    assert _lrs(optimizer) == [0.1, 0.02]
    assert all("initial_lr" not in group for group in optimizer.param_groups)


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"mode": "median"}, "mode must be 'min' or 'max'; got mode='median'"),
        ({"threshold_mode": "pct"},
         "threshold_mode must be 'rel' or 'abs'; got threshold_mode='pct'"),
        ({"factor": 1.0}, "factor must be a number in [0.0, 1.0); got factor=1.0"),
        ({"patience": -1}, "patience must be an int >= 0; got patience=-1"),
        ({"cooldown": 1.5}, "cooldown must be an int >= 0; got cooldown=1.5"),
        ({"threshold": -0.1}, "threshold must be a number in [0.0, inf); got threshold=-0.1"),
        ({"min_lr": [0.1]}, "min_lr has 1 values; expected one per param group (2)"),
        ({"min_lr": -0.1}, "min_lr must be a number in [0.0, inf); got min_lr=-0.1"),
        ({"eps": -1.0}, "eps must be a number in [0.0, inf); got eps=-1.0"),
    ],
)
def test_invalid_arguments_name_the_argument(kw, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        ReduceLROnPlateau(_juanji_optimizer(), **kw)
