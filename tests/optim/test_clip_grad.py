"""clip_grad_norm_ and clip_grad_value_ against torch.nn.utils."""

import math
import re

import numpy as np
import pytest
import torch  # noqa: E402  (a test dependency: its absence is a failure)

from juanji.nn import Parameter
from juanji.nn.utils import clip_grad_norm_, clip_grad_value_

SHAPES = [(4, 5), (7,), (2, 3, 3), (6,)]


def _pair(scale=1.0, none_at=(3,)):
    """juanji and torch parameters with equal gradients; None where listed."""
    rng = np.random.default_rng(11)
    ours, theirs = [], []
    for i, shape in enumerate(SHAPES):
        data = rng.standard_normal(shape).astype(np.float32)
        grad = None if i in none_at else (scale * rng.standard_normal(shape)).astype(np.float32)
        p = Parameter(data.copy())
        p.grad = None if grad is None else grad.copy()
        t = torch.tensor(data, requires_grad=True)
        t.grad = None if grad is None else torch.tensor(grad)
        ours.append(p)
        theirs.append(t)
    return ours, theirs


def _assert_grads_equal(ours, theirs):
    for p, t in zip(ours, theirs):
        if t.grad is None:
            assert p.grad is None
        else:
            np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf, 3.0, 0.5])
@pytest.mark.parametrize("max_norm", [0.5, 5.0, 1e4])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    ours, theirs = _pair()
    total = clip_grad_norm_(ours, max_norm, norm_type=norm_type)
    expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type=norm_type,
                                              foreach=False)
    assert isinstance(total, float)
    assert total == pytest.approx(float(expected), rel=1e-6)
    _assert_grads_equal(ours, theirs)


def test_clipped_norm_is_max_norm():
    ours, _ = _pair(scale=10.0)
    before = clip_grad_norm_(ours, 1.0)
    assert before > 1.0
    after = math.sqrt(sum(float((p.grad.astype(np.float64) ** 2).sum())
                          for p in ours if p.grad is not None))
    assert after == pytest.approx(1.0, rel=1e-5)


def test_single_parameter_and_no_gradients():
    p = Parameter(np.ones(3, np.float32))
    p.grad = np.array([3.0, 4.0, 0.0], np.float32)
    assert clip_grad_norm_(p, 1.0) == pytest.approx(5.0)
    np.testing.assert_allclose(p.grad, [0.6, 0.8, 0.0], rtol=1e-5)
    q = Parameter(np.ones(3, np.float32))
    assert clip_grad_norm_([q], 1.0) == 0.0


def test_non_finite_norm_raises_or_propagates_like_torch():
    ours, theirs = _pair()
    ours[0].grad[0, 0] = np.inf
    theirs[0].grad[0, 0] = float("inf")
    with pytest.raises(RuntimeError, match=re.escape("the total gradient norm (norm_type=2.0) "
                                                     "is inf, so it cannot be clipped")):
        clip_grad_norm_(ours, 1.0, error_if_nonfinite=True)
    assert np.isfinite(ours[1].grad).all()  # nothing was scaled
    total = clip_grad_norm_(ours, 1.0)
    expected = torch.nn.utils.clip_grad_norm_(theirs, 1.0, foreach=False)
    assert math.isinf(total) and math.isinf(float(expected))
    for p, t in zip(ours[:3], theirs[:3]):
        np.testing.assert_array_equal(np.isnan(p.grad), torch.isnan(t.grad).numpy())


@pytest.mark.parametrize("clip_value", [0.0, 0.3, 2.0])
def test_clip_grad_value_matches_torch(clip_value):
    ours, theirs = _pair()
    arrays = [p.grad for p in ours]
    clip_grad_value_(ours, clip_value)
    torch.nn.utils.clip_grad_value_(theirs, clip_value, foreach=False)
    _assert_grads_equal(ours, theirs)
    assert all(p.grad is a for p, a in zip(ours, arrays))  # in place


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda ps: clip_grad_norm_(ps, -1.0),
         "max_norm must be a number >= 0.0; got max_norm=-1.0"),
        (lambda ps: clip_grad_norm_(ps, 1.0, norm_type=0),
         "norm_type must be a number > 0.0; got norm_type=0"),
        (lambda ps: clip_grad_value_(ps, -0.5),
         "clip_value must be a number >= 0.0; got clip_value=-0.5"),
    ],
)
def test_invalid_arguments_name_the_argument(call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call(_pair()[0])
