"""Non-finite values: constructors and schedulers refuse them, step() is all or nothing."""

import re

import numpy as np
import pytest
import torch

from juanji.nn import Linear, Parameter
from juanji.optim import (
    OPTIMIZERS,
    SGD,
    Adadelta,
    Adagrad,
    Adam,
    Adamax,
    L1Proximal,
    NAdam,
    NonFiniteStepError,
    RMSprop,
)
from juanji.optim import lr_scheduler as sched
from juanji.optim.optimizer import all_finite

INF = float("inf")


def _params(count=3, seed=0):
    rng = np.random.default_rng(seed)
    params = [Parameter(rng.standard_normal((2, 3)).astype(np.float32)) for _ in range(count)]
    for p in params:
        p.grad = rng.standard_normal((2, 3)).astype(np.float32)
    return params


def _snapshot(optimizer, params):
    """Bytes of every parameter and every state array, and the state's keys."""
    data = [p.data.tobytes() for p in params]
    state = {id(p): {k: np.asarray(v).tobytes() for k, v in s.items()}
             for p, s in optimizer.state.items()}
    return data, state


def _build(name, params):
    kw = {"momentum": 0.9} if name in ("sgd", "rmsprop") else {}
    if name == "rmsprop":
        kw["centered"] = True
    if name == "adam":
        kw["amsgrad"] = True
    return OPTIMIZERS[name](params, lr=0.01, weight_decay=0.01, **kw)


# ---- step(): check before writing ---------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("steps_before", [0, 2])
def test_infinite_lr_raises_and_leaves_params_and_state_bit_identical(name, steps_before):
    """lr = inf (e.g. set by a scheduler) used to write -inf/NaN into the weights at step 1."""
    params = _params()
    optimizer = _build(name, [{"params": params[:2]}, {"params": params[2:]}])
    for _ in range(steps_before):
        optimizer.step()
    arrays = [p.data for p in params]
    before = _snapshot(optimizer, params)
    optimizer.param_groups[1]["lr"] = INF
    with pytest.raises(NonFiniteStepError) as info:
        optimizer.step()
    error = info.value
    assert isinstance(error, FloatingPointError)
    assert (error.group_index, error.param_index, error.param_name) == (1, 0, None)
    assert error.step == steps_before + 1 and error.what == "parameter"
    assert str(error) == (
        f"step {steps_before + 1} would make param_groups[1]['params'][0] (shape (2, 3)) "
        "NaN or Inf with lr=inf; step() changed no parameter or state")
    assert _snapshot(optimizer, params) == before  # group 0 was not stepped either
    assert all(p.data is a for p, a in zip(params, arrays))


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_successful_step_writes_into_the_same_arrays(name):
    params = _params()
    optimizer = _build(name, params)
    arrays = [p.data for p in params]
    old = [a.copy() for a in arrays]
    optimizer.step()
    assert all(p.data is a for p, a in zip(params, arrays))
    assert all(not np.array_equal(p.data, o) for p, o in zip(params, old))


def test_overflowing_state_raises_naming_the_state_and_parameter():
    """grad**2 overflows float32: exp_avg_sq becomes inf while the weight stays finite."""
    model = Linear(3, 2)
    optimizer = Adam(model.named_parameters(), lr=0.1)
    model.weight.grad = np.full((2, 3), 1e30, np.float32)
    model.bias.grad = np.zeros(2, np.float32)
    before = (model.weight.data.copy(), model.bias.data.copy())
    with pytest.raises(NonFiniteStepError, match=re.escape(
            "step 1 would make the optimizer state 'exp_avg_sq' of parameter 'weight' "
            "(param_groups[0]['params'][0], shape (2, 3)) NaN or Inf; step() changed no "
            "parameter or state")) as info:
        optimizer.step()
    assert info.value.what == "state 'exp_avg_sq'" and info.value.param_name == "weight"
    np.testing.assert_array_equal(model.weight.data, before[0])
    np.testing.assert_array_equal(model.bias.data, before[1])
    assert not optimizer.state  # no state was created for either parameter


def test_non_finite_gradient_names_the_parameter_and_step():
    model = Linear(3, 2)
    optimizer = SGD(model.named_parameters(), lr=0.1)
    model.weight.grad = np.zeros((2, 3), np.float32)
    model.bias.grad = np.zeros(2, np.float32)
    optimizer.step()
    model.bias.grad[1] = np.nan
    with pytest.raises(FloatingPointError, match=re.escape(
            "gradient of parameter 'bias' (param_groups[0]['params'][1], shape (2,)) contains "
            "NaN or Inf at step 2; step() changed no parameter or state")) as info:
        optimizer.step()
    assert (info.value.param_index, info.value.step, info.value.what) == (1, 2, "gradient")


@pytest.mark.parametrize("values, finite", [
    ([1.0, -2.0], True),
    ([3e38, 3e38], True),  # the sum overflows; the elements do not
    ([np.nan, 1.0], False),
    ([np.inf, -np.inf], False),
    ([-np.inf, 1.0], False),
])
def test_all_finite(values, finite):
    assert all_finite(np.array(values, dtype=np.float32)) is finite


def test_huge_but_finite_weights_still_step():
    (p,) = _params(1)
    p.data[...] = 3e38
    SGD([p], lr=0.0).step()
    assert (p.data == np.float32(3e38)).all()


def test_parameter_already_non_finite_is_said_so():
    (p,) = _params(1)
    p.data[0, 0] = np.nan
    with pytest.raises(NonFiniteStepError, match=re.escape(
            "NaN or Inf with lr=0.1 (it already held NaN or Inf before this step)")):
        SGD([p], lr=0.1).step()


def test_step_count_continues_after_load_state_dict():
    params = _params(1)
    optimizer = Adam(params, lr=0.1)
    for _ in range(3):
        optimizer.step()
    resumed = Adam(params, lr=0.1)
    resumed.load_state_dict(optimizer.state_dict())
    resumed.param_groups[0]["lr"] = INF
    with pytest.raises(NonFiniteStepError, match="^step 4 would make"):
        resumed.step()


# ---- named parameters, as PyTorch >= 2.6 -------------------------------------------------------
def test_named_parameters_are_kept_in_param_names_like_torch():
    model = Linear(3, 2)
    optimizer = SGD(model.named_parameters(), lr=0.1, momentum=0.9)
    tmodel = torch.nn.Linear(3, 2)
    toptimizer = torch.optim.SGD(tmodel.named_parameters(), lr=0.1, momentum=0.9)
    assert optimizer.param_groups[0]["param_names"] == ["weight", "bias"]
    assert optimizer.param_groups[0]["params"] == [model.weight, model.bias]
    saved = optimizer.state_dict()["param_groups"][0]
    assert saved["param_names"] == toptimizer.state_dict()["param_groups"][0]["param_names"]
    again = SGD(Linear(3, 2).named_parameters(), lr=0.5)
    again.load_state_dict(optimizer.state_dict())
    assert again.param_groups[0]["param_names"] == ["weight", "bias"]


def test_names_must_be_given_for_all_or_none():
    a, b = _params(2)
    with pytest.raises(TypeError, match=re.escape(
            "param_groups[0]['params'] must hold only Parameters or only (name, Parameter) "
            "pairs")):
        SGD([("a", a), b], lr=0.1)
    with pytest.raises(ValueError, match=re.escape(
            "param_groups[1] is not named but param_groups[0] is named; give names for every "
            "group or for none")):
        SGD([{"params": [("a", a)]}, {"params": [b]}], lr=0.1)
    with pytest.raises(ValueError, match=re.escape(
            "param_groups[0] has 1 param_names for 2 params")):
        SGD([{"params": [a, b], "param_names": ["a"]}], lr=0.1)


# ---- constructors --------------------------------------------------------------------------------
@pytest.mark.parametrize("build, message", [
    (lambda p: SGD(p, lr=INF), "lr must be a finite number >= 0.0; got lr=inf"),
    (lambda p: SGD(p, lr=0.1, momentum=INF), "momentum must be in [0.0, 1.0); got momentum=inf"),
    (lambda p: SGD(p, lr=0.1, momentum=0.5, dampening=INF),
     "dampening must be in [0.0, 1.0]; got dampening=inf"),
    (lambda p: SGD(p, lr=0.1, weight_decay=INF),
     "weight_decay must be a finite number >= 0.0; got weight_decay=inf"),
    (lambda p: Adam(p, eps=INF), "eps must be a finite number >= 0.0; got eps=inf"),
    (lambda p: Adam(p, betas=(INF, 0.999)), "betas[0] must be in [0, 1); got betas=(inf, 0.999)"),
    (lambda p: Adam(p, betas=(0.9, INF)), "betas[1] must be in [0, 1); got betas=(0.9, inf)"),
    (lambda p: Adamax(p, weight_decay=INF), "weight_decay must be a finite number >= 0.0"),
    (lambda p: NAdam(p, momentum_decay=INF),
     "momentum_decay must be a finite number >= 0.0; got momentum_decay=inf"),
    (lambda p: Adagrad(p, lr_decay=INF), "lr_decay must be a finite number >= 0.0"),
    (lambda p: Adagrad(p, initial_accumulator_value=INF),
     "initial_accumulator_value must be a finite number >= 0.0"),
    (lambda p: Adadelta(p, rho=INF), "rho must be in [0.0, 1.0]; got rho=inf"),
    (lambda p: RMSprop(p, alpha=-INF), "alpha must be in [0.0, 1.0]; got alpha=-inf"),
    (lambda p: L1Proximal(p, l1=INF, lr=0.1), "l1 must be a finite number >= 0; got l1=inf"),
    (lambda p: L1Proximal(p, l1=0.1, lr=INF), "lr must be a finite number >= 0; got lr=inf"),
])
def test_constructors_refuse_infinite_settings(build, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        build(_params(1))


def test_param_group_with_infinite_lr_is_refused():
    a, b = _params(2)
    with pytest.raises(ValueError, match=re.escape(
            "param_groups[1]: lr must be a finite number >= 0.0; got lr=inf")):
        Adam([{"params": [a]}, {"params": [b], "lr": INF}])


# ---- schedulers ----------------------------------------------------------------------------------
@pytest.mark.parametrize("build, message", [
    (lambda o: sched.OneCycleLR(o, max_lr=INF, total_steps=10),
     "max_lr must be a number in [0.0, inf); got max_lr=inf"),
    (lambda o: sched.CyclicLR(o, base_lr=0.01, max_lr=INF),
     "max_lr must be a number in [0.0, inf); got max_lr=inf"),
    (lambda o: sched.CyclicLR(o, base_lr=INF, max_lr=0.1), "got base_lr=inf"),
    (lambda o: sched.CyclicLR(o, base_lr=0.01, max_lr=0.1, mode="exp_range", gamma=INF),
     "gamma must be a number in [0.0, inf); got gamma=inf"),
    (lambda o: sched.CyclicLR(o, base_lr=0.01, max_lr=0.1, max_momentum=INF),
     "max_momentum must be a number in [0.0, 1.0); got max_momentum=inf"),
    (lambda o: sched.OneCycleLR(o, max_lr=0.1, total_steps=10, base_momentum=float("nan")),
     "base_momentum must be a number in [0.0, 1.0); got base_momentum=nan"),
    (lambda o: sched.OneCycleLR(o, max_lr=0.1, total_steps=10, div_factor=INF),
     "div_factor must be a number in (0.0, inf); got div_factor=inf"),
    (lambda o: sched.StepLR(o, step_size=2, gamma=INF), "gamma must be a number in [0.0, inf)"),
    (lambda o: sched.CosineAnnealingLR(o, T_max=5, eta_min=INF), "got eta_min=inf"),
    (lambda o: sched.ReduceLROnPlateau(o, min_lr=INF), "got min_lr=inf"),
    (lambda o: sched.ReduceLROnPlateau(o, threshold=INF), "got threshold=inf"),
])
def test_schedulers_refuse_infinite_numbers(build, message):
    optimizer = SGD(_params(1), lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match=re.escape(message)):
        build(optimizer)
    assert optimizer.param_groups[0]["momentum"] == 0.9


def test_schedule_that_overflows_raises_before_setting_the_lr():
    optimizer = SGD(_params(1), lr=1.0)
    scheduler = sched.ExponentialLR(optimizer, gamma=1e30)
    for _ in range(10):  # 1e300
        scheduler.step()
    lr = optimizer.param_groups[0]["lr"]
    with pytest.raises(ValueError, match=re.escape(
            "ExponentialLR computed lr=inf for param_groups[0] at step 11; a learning rate "
            "must be a finite number")):
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == lr
