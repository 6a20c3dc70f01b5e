"""Optimizer base behaviour: param groups, validation messages, zero_grad, NaN policy, loading."""

import re

import numpy as np
import pytest

from juanji.nn import Parameter
from juanji.optim import (
    SGD,
    Adadelta,
    Adagrad,
    Adam,
    Adamax,
    AdamW,
    NAdam,
    Optimizer,
    RMSprop,
)


def _params(count=3, seed=0):
    rng = np.random.default_rng(seed)
    return [Parameter(rng.standard_normal((2, 3)).astype(np.float32)) for _ in range(count)]


def _with_grads(params, seed=1):
    rng = np.random.default_rng(seed)
    for p in params:
        p.grad = rng.standard_normal(p.data.shape).astype(np.float32)
    return params


# ---- construction and param groups ------------------------------------------------------------
def test_single_list_becomes_one_group_with_defaults():
    params = _params()
    optimizer = SGD(params, lr=0.1, momentum=0.9)
    assert len(optimizer.param_groups) == 1
    group = optimizer.param_groups[0]
    assert len(group["params"]) == 3
    assert all(a is b for a, b in zip(group["params"], params))
    assert group["lr"] == 0.1 and group["momentum"] == 0.9 and group["nesterov"] is False
    assert optimizer.defaults["lr"] == 0.1


def test_groups_take_defaults_for_missing_settings():
    a, b, c = _params()
    optimizer = Adam([{"params": [a, b]}, {"params": c, "lr": 0.5, "amsgrad": True}], lr=0.01)
    first, second = optimizer.param_groups
    assert first["lr"] == 0.01 and first["amsgrad"] is False
    assert second["lr"] == 0.5 and second["amsgrad"] is True and second["params"][0] is c
    assert second["betas"] == (0.9, 0.999)


def test_generator_of_parameters_is_accepted():
    params = _params()
    optimizer = SGD(iter(params), lr=0.1)
    assert len(optimizer.param_groups[0]["params"]) == 3


def test_add_param_group_later_and_its_validation():
    a, b, c = _params()
    optimizer = SGD([a], lr=0.1)
    optimizer.add_param_group({"params": [b], "lr": 0.01})
    assert optimizer.param_groups[1]["lr"] == 0.01
    assert optimizer.param_groups[1]["momentum"] == 0
    with pytest.raises(ValueError,
                       match=re.escape("param_groups[2]: lr must be a finite number >= 0")):
        optimizer.add_param_group({"params": [c], "lr": -1.0})
    assert len(optimizer.param_groups) == 2


def test_adagrad_creates_state_for_groups_added_later():
    a, b = _params(2)
    optimizer = Adagrad([a], lr=0.1, initial_accumulator_value=0.25)
    optimizer.add_param_group({"params": [b], "initial_accumulator_value": 0.5})
    np.testing.assert_array_equal(optimizer.state[a]["sum"], np.full((2, 3), 0.25, np.float32))
    np.testing.assert_array_equal(optimizer.state[b]["sum"], np.full((2, 3), 0.5, np.float32))
    _with_grads([a, b])
    optimizer.step()
    assert float(optimizer.state[b]["step"]) == 1.0


def test_repr_lists_groups_and_settings():
    text = repr(SGD(_params(), lr=0.1))
    assert text.startswith("SGD (") and "Parameter Group 0" in text and "lr: 0.1" in text


# ---- validation -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: SGD(p, lr=-0.1), "lr must be a finite number >= 0.0; got lr=-0.1"),
        (lambda p: SGD(p, lr=float("nan")), "lr must be a finite number >= 0.0; got lr=nan"),
        (lambda p: SGD(p, momentum=-0.5), "momentum must be in [0.0, 1.0); got momentum=-0.5"),
        (lambda p: SGD(p, momentum=1.0), "momentum must be in [0.0, 1.0); got momentum=1.0"),
        (lambda p: SGD(p, dampening=1.5), "dampening must be in [0.0, 1.0]; got dampening=1.5"),
        (lambda p: SGD(p, weight_decay=-1e-4),
         "weight_decay must be a finite number >= 0.0; got weight_decay=-0.0001"),
        (lambda p: SGD(p, nesterov=True),
         "nesterov=True requires momentum > 0 and dampening = 0; got momentum=0, dampening=0"),
        (lambda p: SGD(p, momentum=0.9, dampening=0.1, nesterov=True),
         "nesterov=True requires momentum > 0 and dampening = 0; got momentum=0.9, "
         "dampening=0.1"),
        (lambda p: Adam(p, betas=(1.0, 0.999)),
         "betas[0] must be in [0, 1); got betas=(1.0, 0.999)"),
        (lambda p: Adam(p, betas=(0.9, -0.1)),
         "betas[1] must be in [0, 1); got betas=(0.9, -0.1)"),
        (lambda p: Adam(p, betas=(0.9,)), "betas must be a pair (beta1, beta2); got betas=(0.9,)"),
        (lambda p: Adam(p, eps=-1e-8), "eps must be a finite number >= 0.0; got eps=-1e-08"),
        (lambda p: AdamW(p, weight_decay=-0.01),
         "weight_decay must be a finite number >= 0.0; got weight_decay=-0.01"),
        (lambda p: Adamax(p, betas=(0.9, 1.0)),
         "betas[1] must be in [0, 1); got betas=(0.9, 1.0)"),
        (lambda p: NAdam(p, momentum_decay=-1.0),
         "momentum_decay must be a finite number >= 0.0; got momentum_decay=-1.0"),
        (lambda p: NAdam(p, eps=-1.0), "eps must be a finite number >= 0.0; got eps=-1.0"),
        (lambda p: Adagrad(p, lr_decay=-0.1),
         "lr_decay must be a finite number >= 0.0; got lr_decay=-0.1"),
        (lambda p: Adagrad(p, initial_accumulator_value=-1),
         "initial_accumulator_value must be a finite number >= 0.0; "
         "got initial_accumulator_value=-1"),
        (lambda p: RMSprop(p, momentum=1.2), "momentum must be in [0.0, 1.0); got momentum=1.2"),
        (lambda p: RMSprop(p, alpha=1.5), "alpha must be in [0.0, 1.0]; got alpha=1.5"),
        (lambda p: RMSprop(p, eps=-1.0), "eps must be a finite number >= 0.0; got eps=-1.0"),
        (lambda p: Adadelta(p, rho=1.1), "rho must be in [0.0, 1.0]; got rho=1.1"),
        (lambda p: Adadelta(p, weight_decay=-2),
         "weight_decay must be a finite number >= 0.0; got weight_decay=-2"),
    ],
)
def test_invalid_settings_name_the_argument_and_value(make, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        make(_params())


def test_invalid_group_override_names_the_group():
    a, b = _params(2)
    with pytest.raises(ValueError, match=re.escape(
            "param_groups[1]: momentum must be in [0.0, 1.0); got momentum=1.5")):
        SGD([{"params": [a]}, {"params": [b], "momentum": 1.5}], lr=0.1)


def test_empty_params_are_rejected():
    with pytest.raises(ValueError, match=re.escape("params is empty; expected at least one")):
        SGD([], lr=0.1)
    with pytest.raises(ValueError, match=re.escape("param_groups[1]['params'] is empty")):
        SGD([{"params": _params(1)}, {"params": []}], lr=0.1)


def test_duplicate_parameters_are_rejected():
    a, b = _params(2)
    with pytest.raises(ValueError, match=re.escape(
            "param_groups[1]['params'][0] is already in param_groups[0]")):
        SGD([{"params": [a, b]}, {"params": [a]}], lr=0.1)
    with pytest.raises(ValueError, match=re.escape(
            "param_groups[0]['params'][1] is already in param_groups[0]")):
        SGD([a, a], lr=0.1)
    optimizer = SGD([a], lr=0.1)
    with pytest.raises(ValueError, match=re.escape("is already in param_groups[0]")):
        optimizer.add_param_group({"params": [b, a]})


def test_bad_params_types_are_rejected():
    p = _params(1)[0]
    with pytest.raises(TypeError, match="got a single Parameter"):
        SGD(p, lr=0.1)
    with pytest.raises(TypeError, match=re.escape("param_groups[0]['params'][1] must be a")):
        SGD([p, np.zeros(3)], lr=0.1)
    with pytest.raises(TypeError, match="is a set"):
        SGD([{"params": {p}}], lr=0.1)


def test_non_leaf_tensor_is_rejected():
    p = _params(1)[0]
    with pytest.raises(ValueError, match="not a leaf tensor"):
        SGD([p * 2.0], lr=0.1)


# ---- stepping ---------------------------------------------------------------------------------
def test_step_updates_in_place_and_skips_params_without_grad():
    a, b = _params(2)
    a_array, b_before = a.data, b.data.copy()
    a.grad = np.ones_like(a.data)
    optimizer = SGD([a, b], lr=0.5)
    expected = a.data - 0.5
    optimizer.step()
    assert a.data is a_array
    np.testing.assert_array_equal(a.data, expected)
    np.testing.assert_array_equal(b.data, b_before)
    assert b not in optimizer.state or not optimizer.state[b]


def test_step_does_not_modify_the_gradient():
    params = _with_grads(_params())
    grads = [p.grad.copy() for p in params]
    optimizer = Adam(params, lr=0.1, weight_decay=0.1, maximize=True)
    optimizer.step()
    for p, g in zip(params, grads):
        np.testing.assert_array_equal(p.grad, g)


def test_step_returns_closure_loss():
    params = _params(1)

    def closure():
        params[0].grad = np.ones_like(params[0].data)
        return 3.5

    assert SGD(params, lr=0.1).step(closure) == 3.5
    assert SGD(params, lr=0.1).step() is None


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_gradient_raises_and_changes_nothing(bad):
    a, b, c = _with_grads(_params())
    optimizer = Adam([{"params": [a, b]}, {"params": [c], "lr": 0.5}], lr=0.1)
    optimizer.step()
    data = [p.data.copy() for p in (a, b, c)]
    state = optimizer.state_dict()
    _with_grads([a, b, c], seed=7)
    c.grad[1, 2] = bad
    with pytest.raises(FloatingPointError, match=re.escape(
            "gradient of param_groups[1]['params'][0] (shape (2, 3)) contains NaN or Inf")):
        optimizer.step()
    for p, before in zip((a, b, c), data):
        np.testing.assert_array_equal(p.data, before)
    after = optimizer.state_dict()
    for index, entries in state["state"].items():
        for key, value in entries.items():
            np.testing.assert_array_equal(after["state"][index][key], value)


def test_gradient_with_wrong_shape_is_rejected():
    p = _params(1)[0]
    p.grad = np.zeros((3, 2), np.float32)
    with pytest.raises(ValueError, match=re.escape(
            "gradient of param_groups[0]['params'][0] has shape (3, 2); expected the "
            "parameter's shape (2, 3)")):
        SGD([p], lr=0.1).step()


def test_zero_grad_sets_none_or_zeros_in_place():
    params = _with_grads(_params())
    optimizer = SGD(params, lr=0.1)
    arrays = [p.grad for p in params]
    optimizer.zero_grad(set_to_none=False)
    for p, array in zip(params, arrays):
        assert p.grad is array and not p.grad.any()
    optimizer.zero_grad()
    assert all(p.grad is None for p in params)


def test_state_created_after_group_gains_momentum():
    """A scheduler may switch momentum or amsgrad on mid-run; the state follows."""
    params = _with_grads(_params(1))
    optimizer = RMSprop(params, lr=0.01)
    optimizer.step()
    optimizer.param_groups[0]["momentum"] = 0.5
    optimizer.param_groups[0]["centered"] = True
    optimizer.step()
    assert {"momentum_buffer", "grad_avg"} <= set(optimizer.state[params[0]])
    adam = Adam(params, lr=0.01)
    adam.step()
    adam.param_groups[0]["amsgrad"] = True
    adam.step()
    assert "max_exp_avg_sq" in adam.state[params[0]]


def test_base_class_update_is_abstract():
    class Plain(Optimizer):
        pass

    params = _with_grads(_params(1))
    with pytest.raises(NotImplementedError):
        Plain(params, {"lr": 0.1}).step()


# ---- state_dict -------------------------------------------------------------------------------
def test_state_dict_layout_matches_pytorch():
    a, b, c = _with_grads(_params())
    optimizer = SGD([{"params": [a, b]}, {"params": [c], "lr": 0.01}], lr=0.1, momentum=0.9)
    optimizer.step()
    saved = optimizer.state_dict()
    assert set(saved) == {"state", "param_groups"}
    assert [g["params"] for g in saved["param_groups"]] == [[0, 1], [2]]
    assert saved["param_groups"][1]["lr"] == 0.01
    assert set(saved["state"]) == {0, 1, 2}
    assert set(saved["state"][2]) == {"momentum_buffer"}
    assert isinstance(saved["state"][2]["momentum_buffer"], np.ndarray)


def test_load_state_dict_restores_group_settings():
    params = _params()
    optimizer = SGD(params, lr=0.1)
    saved = optimizer.state_dict()
    saved["param_groups"][0]["lr"] = 0.025
    optimizer.load_state_dict(saved)
    assert optimizer.param_groups[0]["lr"] == 0.025
    assert optimizer.param_groups[0]["params"][0] is params[0]


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda s: s.pop("state"), "state_dict has no 'state' key"),
        (lambda s: s["param_groups"].append({"params": [9]}),
         "state_dict has 2 param groups; this optimizer has 1"),
        (lambda s: s["param_groups"][0]["params"].pop(),
         "state_dict param_groups[0] has 2 params; this optimizer's has 3"),
        (lambda s: s["state"].update({7: {}}), "state_dict['state'] has index 7"),
        (lambda s: s["state"][0].update({"momentum_buffer": np.zeros((5,), np.float32)}),
         "state_dict['state'][0]['momentum_buffer'] has shape (5,); expected the parameter's "
         "shape (2, 3)"),
        (lambda s: s["param_groups"][0].update({"lr": -3.0}),
         "state_dict param_groups[0]: lr must be a finite number >= 0.0; got lr=-3.0"),
    ],
)
def test_load_state_dict_rejects_mismatches(edit, message):
    params = _with_grads(_params())
    optimizer = SGD(params, lr=0.1, momentum=0.9)
    optimizer.step()
    saved = optimizer.state_dict()
    edit(saved)
    before = optimizer.state_dict()
    with pytest.raises(ValueError, match=re.escape(message)):
        optimizer.load_state_dict(saved)
    assert optimizer.param_groups[0]["lr"] == before["param_groups"][0]["lr"]


def test_loaded_state_is_a_copy():
    params = _with_grads(_params())
    optimizer = SGD(params, lr=0.1, momentum=0.9)
    optimizer.step()
    saved = optimizer.state_dict()
    buffer = saved["state"][0]["momentum_buffer"].copy()
    optimizer.load_state_dict(saved)
    optimizer.step()
    np.testing.assert_array_equal(saved["state"][0]["momentum_buffer"], buffer)


def test_adamw_stays_decoupled_after_loading():
    params = _params()
    optimizer = AdamW(params)
    saved = optimizer.state_dict()
    saved["param_groups"][0]["decoupled_weight_decay"] = False
    optimizer.load_state_dict(saved)
    assert optimizer.param_groups[0]["decoupled_weight_decay"] is True
