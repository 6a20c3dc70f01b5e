"""Every scheduler against torch.optim.lr_scheduler over 120 steps, lr_at, and save / load.

Both libraries get an optimiser with two param groups (lr 0.1 and 0.02) and the same scheduler
arguments; after every step the groups' lrs (and momentum or beta1, which the cyclic schedules
move) must equal PyTorch's to 1e-12 relative. A scheduler and optimiser restored from their
state dicts at step 50 must then produce exactly the uninterrupted sequence.
"""

import math
import re
import warnings

import numpy as np
import pytest
import torch  # noqa: E402  (a test dependency: its absence is a failure)

import juanji.optim
from juanji.nn import Parameter
from juanji.optim import lr_scheduler as jsched

tsched = torch.optim.lr_scheduler

STEPS = 120
SAVE_AT = 50
LRS = (0.1, 0.02)


def _juanji_optimizer(kind="SGD"):
    params = [Parameter(np.zeros(2, np.float32)), Parameter(np.zeros(3, np.float32))]
    groups = [{"params": [params[0]], "lr": LRS[0]}, {"params": [params[1]], "lr": LRS[1]}]
    if kind == "SGD":
        return juanji.optim.SGD(groups, lr=0.5, momentum=0.9)
    if kind == "Adam":
        return juanji.optim.Adam(groups, lr=0.5)
    return juanji.optim.Adagrad(groups, lr=0.5)


def _torch_optimizer(kind="SGD"):
    params = [torch.zeros(2, requires_grad=True), torch.zeros(3, requires_grad=True)]
    groups = [{"params": [params[0]], "lr": LRS[0]}, {"params": [params[1]], "lr": LRS[1]}]
    if kind == "SGD":
        return torch.optim.SGD(groups, lr=0.5, momentum=0.9)
    if kind == "Adam":
        return torch.optim.Adam(groups, lr=0.5)
    return torch.optim.Adagrad(groups, lr=0.5)


def _snapshot(optimizer):
    """lr and momentum (or beta1) of each group."""
    values = []
    for group in optimizer.param_groups:
        momentum = group["betas"][0] if "betas" in group else group.get("momentum", 0.0)
        values.append((group["lr"], momentum))
    return values


def _run_torch(make, kind):
    optimizer = _torch_optimizer(kind)
    scheduler = make(tsched, optimizer)
    record = [_snapshot(optimizer)]
    for _ in range(STEPS):
        optimizer.step()  # no gradients: keeps torch's call-order check quiet
        scheduler.step()
        record.append(_snapshot(optimizer))
    return record


def _triangle_scale(x):
    return 1.0 / (1.0 + 0.1 * x)


# name -> (factory(module, optimizer) -> scheduler, optimiser kind)
SCHEDULES = {
    "LambdaLR": (lambda m, o: m.LambdaLR(o, lambda step: 0.97**step + 0.01 * (step % 7)), "SGD"),
    "LambdaLR-per-group": (
        lambda m, o: m.LambdaLR(o, [lambda s: 1.0 / (1 + s), lambda s: math.cos(s / 20) ** 2]),
        "SGD",
    ),
    "StepLR": (lambda m, o: m.StepLR(o, step_size=7, gamma=0.5), "SGD"),
    "MultiStepLR": (lambda m, o: m.MultiStepLR(o, milestones=[60, 10, 25, 25], gamma=0.3), "SGD"),
    "ExponentialLR": (lambda m, o: m.ExponentialLR(o, gamma=0.97), "SGD"),
    "LinearLR-warmup": (lambda m, o: m.LinearLR(o, start_factor=0.25, total_iters=20), "SGD"),
    "LinearLR-decay": (
        lambda m, o: m.LinearLR(o, start_factor=1.0, end_factor=0.0, total_iters=100), "SGD"
    ),
    "CosineAnnealingLR": (lambda m, o: m.CosineAnnealingLR(o, T_max=30, eta_min=0.001), "SGD"),
    "CosineAnnealingLR-T1": (lambda m, o: m.CosineAnnealingLR(o, T_max=1), "SGD"),
    "CosineAnnealingWarmRestarts": (
        lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=10, T_mult=2, eta_min=0.001), "SGD"
    ),
    "CosineAnnealingWarmRestarts-Tmult1": (
        lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=7), "SGD"
    ),
    "SequentialLR-warmup-cosine": (
        lambda m, o: m.SequentialLR(
            o,
            [m.LinearLR(o, start_factor=0.1, total_iters=10), m.CosineAnnealingLR(o, T_max=90)],
            milestones=[10],
        ),
        "SGD",
    ),
    "SequentialLR-three": (
        lambda m, o: m.SequentialLR(
            o,
            [m.ExponentialLR(o, gamma=0.9), m.StepLR(o, step_size=5, gamma=0.5),
             m.MultiStepLR(o, milestones=[3, 40])],
            milestones=[20, 50],
        ),
        "SGD",
    ),
    "CyclicLR-triangular": (
        lambda m, o: m.CyclicLR(o, base_lr=[0.01, 0.005], max_lr=[0.1, 0.05], step_size_up=10,
                                step_size_down=15),
        "SGD",
    ),
    "CyclicLR-triangular2": (
        lambda m, o: m.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=8,
                                mode="triangular2"),
        "SGD",
    ),
    "CyclicLR-exp_range-adam": (
        lambda m, o: m.CyclicLR(o, base_lr=0.001, max_lr=0.01, step_size_up=12,
                                mode="exp_range", gamma=0.99, base_momentum=0.85,
                                max_momentum=0.95),
        "Adam",
    ),
    "CyclicLR-scale_fn-iterations": (
        lambda m, o: m.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=6,
                                scale_fn=_triangle_scale, scale_mode="iterations"),
        "SGD",
    ),
    "CyclicLR-no-momentum": (
        lambda m, o: m.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=9,
                                cycle_momentum=False),
        "Adagrad",
    ),
    "OneCycleLR-cos": (lambda m, o: m.OneCycleLR(o, max_lr=[0.1, 0.05], total_steps=120), "SGD"),
    "OneCycleLR-linear-three-phase-adam": (
        lambda m, o: m.OneCycleLR(o, max_lr=0.01, epochs=6, steps_per_epoch=21,
                                  anneal_strategy="linear", three_phase=True, pct_start=0.25,
                                  div_factor=10.0, final_div_factor=100.0),
        "Adam",
    ),
    "OneCycleLR-no-momentum": (
        lambda m, o: m.OneCycleLR(o, max_lr=0.1, total_steps=130, cycle_momentum=False),
        "Adagrad",
    ),
}
CLOSED_FORM = [
    name for name in SCHEDULES
    if not name.startswith("SequentialLR")
]


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_matches_torch_every_step(name):
    make, kind = SCHEDULES[name]
    expected = _run_torch(make, kind)
    optimizer = _juanji_optimizer(kind)
    scheduler = make(jsched, optimizer)
    got = [_snapshot(optimizer)]
    for _ in range(STEPS):
        scheduler.step()
        got.append(_snapshot(optimizer))
        assert scheduler.get_last_lr() == [group["lr"] for group in optimizer.param_groups]
    np.testing.assert_allclose(np.array(got), np.array(expected), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", CLOSED_FORM)
def test_lr_at_matches_torch_sequence(name):
    make, kind = SCHEDULES[name]
    expected = np.array(_run_torch(make, kind))[:, :, 0]  # (STEPS + 1, groups)
    scheduler = make(jsched, _juanji_optimizer(kind))
    closed = np.array([scheduler.lr_at(t) for t in range(STEPS + 1)])
    np.testing.assert_allclose(closed, expected, rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_resumes_identically_from_state_dicts(name):
    make, kind = SCHEDULES[name]
    optimizer = _juanji_optimizer(kind)
    scheduler = make(jsched, optimizer)
    for _ in range(SAVE_AT):
        scheduler.step()
    saved_optimizer, saved_scheduler = optimizer.state_dict(), scheduler.state_dict()
    resumed_optimizer = _juanji_optimizer(kind)
    resumed = make(jsched, resumed_optimizer)
    resumed_optimizer.load_state_dict(saved_optimizer)
    resumed.load_state_dict(saved_scheduler)
    for _ in range(STEPS - SAVE_AT):
        scheduler.step()
        resumed.step()
        assert _snapshot(resumed_optimizer) == _snapshot(optimizer)
        assert resumed.get_last_lr() == scheduler.get_last_lr()


def test_initial_lr_is_set_and_base_lrs_come_from_it():
    optimizer = _juanji_optimizer()
    scheduler = jsched.StepLR(optimizer, step_size=3)
    assert [g["initial_lr"] for g in optimizer.param_groups] == list(LRS)
    assert scheduler.base_lrs == list(LRS)
    assert scheduler.last_epoch == 0


def test_resuming_with_last_epoch_needs_initial_lr():
    with pytest.raises(ValueError, match=re.escape(
            "last_epoch=5 resumes a schedule, but param_groups[0] has no 'initial_lr'")):
        jsched.StepLR(_juanji_optimizer(), step_size=3, last_epoch=5)


def test_last_epoch_resume_matches_torch():
    expected_opt = _torch_optimizer()
    for group in expected_opt.param_groups:
        group["initial_lr"] = group["lr"]
    expected = tsched.StepLR(expected_opt, step_size=3, gamma=0.5, last_epoch=5)
    optimizer = _juanji_optimizer()
    for group in optimizer.param_groups:
        group["initial_lr"] = group["lr"]
    scheduler = jsched.StepLR(optimizer, step_size=3, gamma=0.5, last_epoch=5)
    for _ in range(10):
        assert scheduler.get_last_lr() == pytest.approx(expected.get_last_lr(), rel=1e-12)
        expected_opt.step()
        expected.step()
        scheduler.step()


def test_warm_restarts_fractional_epochs_match_torch():
    expected_opt = _torch_optimizer()
    expected = tsched.CosineAnnealingWarmRestarts(expected_opt, T_0=4, T_mult=2, eta_min=0.001)
    optimizer = _juanji_optimizer()
    scheduler = jsched.CosineAnnealingWarmRestarts(optimizer, T_0=4, T_mult=2, eta_min=0.001)
    for epoch in np.arange(0.0, 25.0, 0.25):
        epoch = float(epoch)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected.step(epoch)
        scheduler.step(epoch)
        assert scheduler.get_last_lr() == pytest.approx(expected.get_last_lr(), rel=1e-12)
        assert scheduler.lr_at(epoch) == pytest.approx(expected.get_last_lr(), rel=1e-12)


def test_warm_restarts_closed_form_at_exact_restart_boundaries():
    scheduler = jsched.CosineAnnealingWarmRestarts(_juanji_optimizer(), T_0=3, T_mult=2)
    # Restarts at 3, 3 + 6 = 9, 9 + 12 = 21, 21 + 24 = 45: the lr is back at its base there.
    for restart in (3, 9, 21, 45, 93):
        assert scheduler.lr_at(restart) == pytest.approx(list(LRS), rel=1e-15)
        assert scheduler.lr_at(restart - 1)[0] < LRS[0] * 0.3  # just before: near the bottom


def test_one_cycle_refuses_to_step_past_total_steps():
    scheduler = jsched.OneCycleLR(_juanji_optimizer(), max_lr=0.1, total_steps=5)
    for _ in range(5):
        scheduler.step()
    with pytest.raises(ValueError, match=re.escape("OneCycleLR has total_steps=5; got step 6")):
        scheduler.step()


def test_lr_at_is_pure():
    optimizer = _juanji_optimizer()
    scheduler = jsched.OneCycleLR(optimizer, max_lr=0.1, total_steps=50)
    before = _snapshot(optimizer)
    scheduler.lr_at(20)
    assert _snapshot(optimizer) == before and scheduler.last_epoch == 0


def test_closed_form_values_by_hand():
    optimizer = _juanji_optimizer()
    step = jsched.StepLR(optimizer, step_size=10, gamma=0.5)
    assert step.lr_at(25) == pytest.approx([0.1 * 0.25, 0.02 * 0.25])
    cosine = jsched.CosineAnnealingLR(_juanji_optimizer(), T_max=10, eta_min=0.0)
    assert cosine.lr_at(5) == pytest.approx([0.05, 0.01])
    assert cosine.lr_at(10) == pytest.approx([0.0, 0.0], abs=1e-18)
    linear = jsched.LinearLR(_juanji_optimizer(), start_factor=0.5, total_iters=4)
    assert linear.lr_at(2) == pytest.approx([0.075, 0.015])


def test_schedulers_without_closed_form_say_so():
    optimizer = _juanji_optimizer()
    sequential = jsched.SequentialLR(
        optimizer, [jsched.ExponentialLR(optimizer, 0.9), jsched.StepLR(optimizer, 2)], [3]
    )
    with pytest.raises(NotImplementedError, match="SequentialLR has no closed form"):
        sequential.lr_at(4)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda o: jsched.StepLR(o, step_size=0), "step_size must be an int >= 1; got step_size=0"),
        (lambda o: jsched.StepLR(o, step_size=2, gamma=-0.1),
         "gamma must be a number in [0.0, inf); got gamma=-0.1"),
        (lambda o: jsched.MultiStepLR(o, milestones=[3, -1]),
         "milestones must be ints >= 0; got milestones=[3, -1]"),
        (lambda o: jsched.ExponentialLR(o, gamma=float("nan")),
         "gamma must be a number in [0.0, inf); got gamma=nan"),
        (lambda o: jsched.CosineAnnealingLR(o, T_max=0), "T_max must be an int >= 1; got T_max=0"),
        (lambda o: jsched.CosineAnnealingLR(o, T_max=5, eta_min=-1.0),
         "eta_min must be a number in [0.0, inf); got eta_min=-1.0"),
        (lambda o: jsched.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=0),
         "T_mult must be an int >= 1; got T_mult=0"),
        (lambda o: jsched.LinearLR(o, start_factor=0.0),
         "start_factor must be a number in (0.0, 1.0]; got start_factor=0.0"),
        (lambda o: jsched.LinearLR(o, end_factor=1.5),
         "end_factor must be a number in [0.0, 1.0]; got end_factor=1.5"),
        (lambda o: jsched.LambdaLR(o, [lambda s: 1.0]),
         "lr_lambda has 1 functions; expected one per param group (2)"),
        (lambda o: jsched.StepLR(o, step_size=2, last_epoch=-2),
         "last_epoch must be an int >= -1; got last_epoch=-2"),
        (lambda o: jsched.CyclicLR(o, base_lr=0.01, max_lr=0.1, mode="square"),
         "mode must be 'triangular', 'triangular2' or 'exp_range' when scale_fn is None; "
         "got mode='square'"),
        (lambda o: jsched.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=0),
         "step_size_up must be a number in (0.0, inf); got step_size_up=0"),
        (lambda o: jsched.CyclicLR(o, base_lr=[0.01], max_lr=0.1),
         "base_lr has 1 values; expected one per param group (2)"),
        (lambda o: jsched.OneCycleLR(o, max_lr=0.1),
         "give either total_steps or both epochs and steps_per_epoch"),
        (lambda o: jsched.OneCycleLR(o, max_lr=0.1, total_steps=10, pct_start=1.5),
         "pct_start must be a number in [0.0, 1.0]; got pct_start=1.5"),
        (lambda o: jsched.OneCycleLR(o, max_lr=0.1, total_steps=10, anneal_strategy="exp"),
         "anneal_strategy must be 'cos' or 'linear'; got anneal_strategy='exp'"),
        (lambda o: jsched.SequentialLR(o, [jsched.StepLR(o, 2)], milestones=[3]),
         "milestones has 1 values; expected one fewer than the 1 schedulers"),
        (lambda o: jsched.SequentialLR(
            o, [jsched.StepLR(o, 2), jsched.StepLR(o, 3), jsched.StepLR(o, 4)], [5, 2]),
         "milestones must be increasing ints >= 1; got milestones=[5, 2]"),
        (lambda o: jsched.SequentialLR(o, [jsched.StepLR(o, 2), jsched.ReduceLROnPlateau(o)],
                                       [5]),
         "schedulers[1] is ReduceLROnPlateau"),
        (lambda o: jsched.SequentialLR(
            o, [jsched.StepLR(o, 2), jsched.StepLR(_juanji_optimizer(), 2)], [5]),
         "schedulers[1] is attached to a different optimizer"),
    ],
)
def test_invalid_arguments_name_the_argument(make, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        make(_juanji_optimizer())


def test_cycle_momentum_needs_momentum_or_betas():
    with pytest.raises(ValueError, match="cycle_momentum=True needs an optimizer with 'momentum'"):
        jsched.CyclicLR(_juanji_optimizer("Adagrad"), base_lr=0.01, max_lr=0.1)
    with pytest.raises(ValueError, match="Adagrad has neither"):
        jsched.OneCycleLR(_juanji_optimizer("Adagrad"), max_lr=0.1, total_steps=10)


def test_scheduler_needs_a_juanji_optimizer():
    with pytest.raises(TypeError, match="optimizer must be a juanji Optimizer; got list"):
        jsched.StepLR([], step_size=2)
