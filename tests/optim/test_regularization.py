"""L1 as a proximal step: exact zeros where L2 weight decay leaves small nonzero weights."""

import re

import numpy as np
import pytest

from juanji.nn import Parameter
from juanji.optim import SGD, L1Proximal, soft_threshold_

N, FEATURES = 200, 10
TRUE_WEIGHT = np.array([2.0, -3.0, 1.5, 0, 0, 0, 0, 0, 0, 0], np.float32)  # 3 inputs matter


def _data():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((N, FEATURES)).astype(np.float32)
    y = x @ TRUE_WEIGHT + 0.5 + 0.1 * rng.standard_normal(N).astype(np.float32)
    return x, y


def _train(weight_decay=0.0, l1=None, steps=400, lr=0.05):
    """Least squares y ~ x @ w + b by full-batch SGD; gradients of the mean squared error."""
    x, y = _data()
    weight = Parameter(np.zeros(FEATURES, np.float32))
    bias = Parameter(np.zeros((), np.float32))
    optimizer = SGD([{"params": [weight], "weight_decay": weight_decay},
                     {"params": [bias], "weight_decay": 0.0, "l1": 0.0}], lr=lr)
    proximal = None if l1 is None else L1Proximal(optimizer, l1)
    for _ in range(steps):
        residual = x @ weight.data + bias.data - y  # (N,)
        weight.grad = (2.0 / N) * (x.T @ residual)  # (FEATURES,)
        bias.grad = np.asarray((2.0 / N) * residual.sum(), np.float32)
        optimizer.step()
        if proximal is not None:
            proximal.step()
    return weight.data, bias.data


def test_l1_gives_exact_zeros_and_l2_does_not():
    # Threshold per step: lr * l1 = 0.05 * 0.1 = 0.005. The 7 irrelevant inputs have a
    # gradient far below l1 = 0.1 at the optimum, so soft-thresholding pins them at 0.0.
    l1_weight, l1_bias = _train(l1=0.1)
    assert np.all(l1_weight[3:] == 0.0)
    assert np.all(np.abs(l1_weight[:3]) > 1.0)
    assert abs(float(l1_bias) - 0.5) < 0.1  # "l1": 0 in the bias group: not shrunk

    l2_weight, _ = _train(weight_decay=0.1)
    assert np.count_nonzero(l2_weight == 0.0) == 0
    assert np.all(np.abs(l2_weight[3:]) < 0.05)  # small, but never exactly zero

    plain_weight, _ = _train()
    assert np.count_nonzero(plain_weight == 0.0) == 0


def test_soft_threshold_by_hand():
    values = np.array([-2.0, -0.3, 0.0, 0.1, 0.5, 3.0], np.float32)
    out = soft_threshold_(values, 0.5)
    assert out is values
    np.testing.assert_array_equal(values, np.array([-1.5, 0.0, 0.0, 0.0, 0.0, 2.5], np.float32))


def test_params_form_and_params_without_grad_are_left_alone():
    a = Parameter(np.array([1.0, -0.01, 0.02], np.float32))
    b = Parameter(np.array([0.01, 5.0], np.float32))
    a.grad = np.zeros(3, np.float32)
    L1Proximal([a, b], l1=0.5, lr=0.1).step()  # threshold 0.05
    np.testing.assert_allclose(a.data, [0.95, 0.0, 0.0])
    np.testing.assert_array_equal(b.data, np.array([0.01, 5.0], np.float32))


def test_threshold_follows_the_group_lr():
    p = Parameter(np.array([1.0], np.float32))
    p.grad = np.zeros(1, np.float32)
    optimizer = SGD([p], lr=0.1)
    proximal = L1Proximal(optimizer, 1.0)
    proximal.step()
    optimizer.param_groups[0]["lr"] = 0.5
    proximal.step()
    np.testing.assert_allclose(p.data, [0.4], rtol=1e-6)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: L1Proximal([p], l1=-0.1, lr=0.1),
         "l1 must be a finite number >= 0; got l1=-0.1"),
        (lambda p: L1Proximal([p], l1=0.1), "lr is required when parameters are given"),
        (lambda p: L1Proximal([p], l1=0.1, lr=-1.0),
         "lr must be a finite number >= 0; got lr=-1.0"),
        (lambda p: L1Proximal(SGD([p], lr=0.1), l1=0.1, lr=0.1),
         "lr must be None when an optimizer is given"),
        (lambda p: L1Proximal([], l1=0.1, lr=0.1), "params is empty"),
    ],
)
def test_invalid_arguments_name_the_argument(make, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        make(Parameter(np.ones(2, np.float32)))
