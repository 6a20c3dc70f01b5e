"""Every optimiser and option against torch.optim: same start, same gradients, same parameters.

Each case runs 24 steps on four float32 parameters in two param groups (the second group has
its own lr and, per case, another override); parameter 1 has no gradient on every third step.
Parameters must equal PyTorch's after every step (rtol 1e-5, atol 1e-6: float32 rounding, as
PyTorch's CPU kernels fuse some multiply-adds), and a run restored from `state_dict()` at step
12 must continue bit-for-bit like the uninterrupted one.
"""

import numpy as np
import pytest
import torch  # noqa: E402  (a test dependency: its absence is a failure)

import juanji.optim
from juanji.nn import Parameter

SHAPES = [(4, 3), (5,), (2, 2, 3), (3,)]
STEPS = 24
SAVE_AT = 12
RTOL, ATOL = 1e-5, 1e-6

# (optimizer, constructor keywords, overrides for param group 1)
CASES = [
    ("SGD", {"lr": 0.1}, {"lr": 0.05}),
    ("SGD", {"lr": 0.1, "momentum": 0.9}, {"lr": 0.05, "momentum": 0.5}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "dampening": 0.5}, {"dampening": 0.1}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True}, {"lr": 0.02}),
    ("SGD", {"lr": 0.1, "weight_decay": 0.1}, {"weight_decay": 0.0}),
    ("SGD", {"lr": 0.1, "momentum": 0.8, "weight_decay": 0.05, "nesterov": True},
     {"weight_decay": 0.2}),
    ("SGD", {"lr": 0.1, "maximize": True}, {"maximize": False}),
    ("Adam", {"lr": 0.01}, {"lr": 0.03}),
    ("Adam", {"lr": 0.01, "amsgrad": True}, {"amsgrad": False}),
    ("Adam", {"lr": 0.01, "weight_decay": 0.1}, {"weight_decay": 0.3}),
    ("Adam", {"lr": 0.01, "betas": (0.5, 0.8), "eps": 1e-3}, {"betas": (0.95, 0.99)}),
    ("Adam", {"lr": 0.01, "maximize": True}, {"amsgrad": True}),
    ("Adam", {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True}, {"lr": 0.02}),
    ("AdamW", {"lr": 0.01}, {"lr": 0.03}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True}, {"weight_decay": 0.0}),
    ("AdamW", {"lr": 0.01, "maximize": True}, {"betas": (0.6, 0.7)}),
    ("Adagrad", {"lr": 0.1}, {"lr": 0.05}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.05}, {"lr_decay": 0.5}),
    ("Adagrad", {"lr": 0.1, "weight_decay": 0.1}, {"eps": 1e-3}),
    ("Adagrad", {"lr": 0.1, "initial_accumulator_value": 0.5}, {"maximize": True}),
    ("RMSprop", {"lr": 0.01}, {"lr": 0.005}),
    ("RMSprop", {"lr": 0.01, "momentum": 0.9}, {"momentum": 0.0}),
    ("RMSprop", {"lr": 0.01, "centered": True}, {"alpha": 0.5}),
    ("RMSprop", {"lr": 0.01, "centered": True, "momentum": 0.5}, {"weight_decay": 0.1}),
    ("RMSprop", {"lr": 0.01, "maximize": True}, {"eps": 1e-2}),
    ("Adadelta", {}, {"lr": 0.5}),
    ("Adadelta", {"rho": 0.5}, {"rho": 0.99}),
    ("Adadelta", {"lr": 0.5, "weight_decay": 0.1}, {"maximize": True}),
    ("Adamax", {"lr": 0.01}, {"lr": 0.05}),
    ("Adamax", {"lr": 0.01, "weight_decay": 0.1}, {"betas": (0.5, 0.9)}),
    ("Adamax", {"lr": 0.01, "maximize": True}, {"eps": 1e-3}),
    ("NAdam", {"lr": 0.01}, {"lr": 0.03}),
    ("NAdam", {"lr": 0.01, "weight_decay": 0.1}, {"momentum_decay": 0.1}),
    ("NAdam", {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True},
     {"betas": (0.5, 0.9)}),
    ("NAdam", {"lr": 0.01, "maximize": True}, {"weight_decay": 0.2}),
]


def _case_id(case):
    name, kw, override = case
    options = ",".join(f"{k}={v}" for k, v in kw.items()) or "defaults"
    return f"{name}[{options}|g1:{','.join(override)}]"


def _initial_arrays():
    rng = np.random.default_rng(1234)
    return [rng.standard_normal(shape).astype(np.float32) for shape in SHAPES]


def _gradients():
    """STEPS lists of gradients; None for parameter 1 on every third step."""
    rng = np.random.default_rng(99)
    steps = []
    for t in range(STEPS):
        grads = [rng.standard_normal(shape).astype(np.float32) for shape in SHAPES]
        if t % 3 == 1:
            grads[1] = None
        steps.append(grads)
    return steps


def _groups(params, override):
    return [{"params": params[:2]}, {"params": params[2:], **override}]


def _juanji_optimizer(name, kw, override, arrays):
    params = [Parameter(a.copy()) for a in arrays]
    return getattr(juanji.optim, name)(_groups(params, override), **kw), params


def _torch_optimizer(name, kw, override, arrays):
    params = [torch.tensor(a.copy(), requires_grad=True) for a in arrays]
    optimizer = getattr(torch.optim, name)(_groups(params, override), foreach=False, **kw)
    return optimizer, params


def _set_grads(j_params, t_params, grads):
    for jp, tp, g in zip(j_params, t_params, grads):
        jp.grad = None if g is None else g.copy()
        if tp is not None:
            tp.grad = None if g is None else torch.tensor(g)


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_matches_torch_every_step_and_resumes_from_state_dict(case):
    name, kw, override = case
    arrays, gradients = _initial_arrays(), _gradients()
    j_opt, j_params = _juanji_optimizer(name, kw, override, arrays)
    t_opt, t_params = _torch_optimizer(name, kw, override, arrays)
    resumed = None
    for t, grads in enumerate(gradients):
        if t == SAVE_AT:
            saved = j_opt.state_dict()
            resumed_opt, resumed_params = _juanji_optimizer(
                name, kw, override, [p.data for p in j_params]
            )
            resumed_opt.load_state_dict(saved)
            resumed = (resumed_opt, resumed_params)
        _set_grads(j_params, t_params, grads)
        j_opt.step()
        t_opt.step()
        if resumed is not None:
            _set_grads(resumed[1], [None] * len(SHAPES), grads)
            resumed[0].step()
            for jp, rp in zip(j_params, resumed[1]):
                np.testing.assert_array_equal(rp.data, jp.data)
        for i, (jp, tp) in enumerate(zip(j_params, t_params)):
            np.testing.assert_allclose(
                jp.data, tp.detach().numpy(), rtol=RTOL, atol=ATOL,
                err_msg=f"parameter {i} after step {t + 1}",
            )
    _assert_same_state_dict(j_opt.state_dict(), t_opt.state_dict())


def _assert_same_state_dict(ours, theirs):
    """Same indices and state names as PyTorch, equal values; our group keys are a subset."""
    assert sorted(ours["state"]) == sorted(theirs["state"])
    for index, state in ours["state"].items():
        assert sorted(state) == sorted(theirs["state"][index])
        for key, value in state.items():
            np.testing.assert_allclose(
                np.asarray(value), theirs["state"][index][key].numpy(), rtol=RTOL, atol=ATOL,
                err_msg=f"state[{index}][{key!r}]",
            )
    assert len(ours["param_groups"]) == len(theirs["param_groups"])
    for mine, torchs in zip(ours["param_groups"], theirs["param_groups"]):
        assert set(mine) <= set(torchs)
        for key, value in mine.items():
            assert value == torchs[key], key


def test_state_dict_arrays_are_snapshots():
    arrays = _initial_arrays()
    optimizer, params = _juanji_optimizer("Adam", {"lr": 0.01}, {}, arrays)
    _set_grads(params, [None] * len(params), _gradients()[0])
    optimizer.step()
    saved = optimizer.state_dict()
    before = saved["state"][0]["exp_avg"].copy()
    optimizer.step()
    np.testing.assert_array_equal(saved["state"][0]["exp_avg"], before)
    assert float(saved["state"][0]["step"]) == 1.0


def test_torch_state_dict_loads_and_continues_identically():
    """A torch.optim state dict (tensors) loads into the juanji optimiser and keeps parity."""
    arrays, gradients = _initial_arrays(), _gradients()
    kw = {"lr": 0.01, "amsgrad": True}
    t_opt, t_params = _torch_optimizer("Adam", kw, {}, arrays)
    for grads in gradients[:5]:
        _set_grads([Parameter(np.zeros(s, np.float32)) for s in SHAPES], t_params, grads)
        t_opt.step()
    current = [p.detach().numpy().copy() for p in t_params]
    j_opt, j_params = _juanji_optimizer("Adam", kw, {}, current)
    j_opt.load_state_dict(t_opt.state_dict())
    for grads in gradients[5:]:
        _set_grads(j_params, t_params, grads)
        j_opt.step()
        t_opt.step()
    for jp, tp in zip(j_params, t_params):
        np.testing.assert_allclose(jp.data, tp.detach().numpy(), rtol=RTOL, atol=ATOL)
