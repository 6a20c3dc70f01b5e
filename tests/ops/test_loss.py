"""Losses: PyTorch parity (forward and backward, float32) over options and reductions, float64
gradient checks, numerical stability at extreme inputs, and error paths."""

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from gradcheck import assert_close, gradcheck, to_torch

import juanji
import juanji.nn as nn
import juanji.nn.functional as F

REDUCTIONS = ["mean", "sum", "none"]


def _parity(jfn, tfn, arrays, grad=None, rtol=1e-5, atol=1e-6, seed=0):
    """jfn(*tensors) vs tfn(*torch tensors): value and the gradients of the inputs in `grad`."""
    grad = [a.dtype.kind == "f" for a in arrays] if grad is None else grad
    js = [juanji.tensor(a, requires_grad=g) for a, g in zip(arrays, grad)]
    ts = [to_torch(a, requires_grad=g) for a, g in zip(arrays, grad)]
    yj, yt = jfn(*js), tfn(*ts)
    assert_close(yj, yt, rtol, atol, "loss value")
    up = np.random.default_rng(seed).standard_normal(yj.shape).astype(np.float32)
    (yj * juanji.tensor(up)).sum().backward()
    (yt * torch.tensor(up)).sum().backward()
    for i, (j, t) in enumerate(zip(js, ts)):
        if grad[i]:
            assert_close(j.grad, t.grad, rtol, atol, f"gradient of input {i}")
    return yj


def _logits(shape, seed=0, scale=2.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def _labels(shape, c, seed=1, ignore=None, fraction=0.3):
    rng = np.random.default_rng(seed)
    t = rng.integers(0, c, shape).astype(np.int64)
    if ignore is not None:
        t[rng.random(shape) < fraction] = ignore
    return t


# ---- cross-entropy ---------------------------------------------------------------------------
CE_SHAPES = [((6, 5), (6,)), ((3, 4, 2, 3), (3, 2, 3)), ((1, 3), (1,)), ((2, 3, 5), (2, 5))]
CE_OPTIONS = [{}, {"weight": True}, {"ignore_index": -100}, {"ignore_index": 2},
              {"label_smoothing": 0.1}, {"label_smoothing": 0.5, "weight": True},
              {"label_smoothing": 0.2, "weight": True, "ignore_index": 1}]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("options", CE_OPTIONS)
@pytest.mark.parametrize("shapes", CE_SHAPES)
def test_cross_entropy_class_targets_match_torch(shapes, options, reduction):
    (shape, tshape), c = shapes, shapes[0][1]
    ignore = options.get("ignore_index")
    x, t = _logits(shape), _labels(tshape, c, ignore=ignore if ignore is not None else None)
    kw = dict(reduction=reduction, label_smoothing=options.get("label_smoothing", 0.0),
              ignore_index=ignore if ignore is not None else -100)
    w = np.random.default_rng(2).uniform(0.2, 2.0, c).astype(np.float32)
    wj, wt = (juanji.tensor(w), torch.tensor(w)) if options.get("weight") else (None, None)
    _parity(lambda a, b: F.cross_entropy(a, b, wj, **kw),
            lambda a, b: TF.cross_entropy(a, b, wt, **kw), [x, t])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("options", [{}, {"weight": True}, {"label_smoothing": 0.3},
                                     {"label_smoothing": 0.1, "weight": True}])
@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 2, 2)])
def test_cross_entropy_probability_targets_match_torch(shape, options, reduction):
    x = _logits(shape, seed=3)
    q = np.random.default_rng(4).random(shape).astype(np.float32)
    q /= q.sum(axis=1, keepdims=True)
    w = np.random.default_rng(5).uniform(0.2, 2.0, shape[1]).astype(np.float32)
    wj, wt = (juanji.tensor(w), torch.tensor(w)) if options.get("weight") else (None, None)
    s = options.get("label_smoothing", 0.0)
    _parity(lambda a, b: F.cross_entropy(a, b, wj, reduction=reduction, label_smoothing=s),
            lambda a, b: TF.cross_entropy(a, b, wt, reduction=reduction, label_smoothing=s),
            [x, q], grad=[True, False])


def test_cross_entropy_unbatched_matches_torch():
    x = _logits((5,), seed=6)
    for reduction in REDUCTIONS:
        _parity(lambda a, b, r=reduction: F.cross_entropy(a, b, reduction=r),
                lambda a, b, r=reduction: TF.cross_entropy(a, b, reduction=r),
                [x, np.array(3, dtype=np.int64)])


def test_cross_entropy_gradcheck():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, 3, 2))
    t = np.array([[0, 2], [1, -100], [2, 2], [-100, 0]])
    w = np.array([0.5, 1.0, 2.0])
    for reduction in REDUCTIONS:
        gradcheck(lambda a, r=reduction: F.cross_entropy(a, t, w, reduction=r,
                                                         label_smoothing=0.2), [x])
    q = rng.random((4, 3, 2))
    q /= q.sum(axis=1, keepdims=True)
    gradcheck(lambda a: F.cross_entropy(a, q, w, label_smoothing=0.1), [x])


def test_cross_entropy_stable_for_logits_of_magnitude_1e4():
    x = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4 + 5], [1e4, 1e4, -1e4]], np.float32)
    t = np.array([1, 2, 0])
    for kw in ({}, {"label_smoothing": 0.1}):
        y = _parity(lambda a, b, k=kw: F.cross_entropy(a, b, **k),
                    lambda a, b, k=kw: TF.cross_entropy(a, b, **k), [x, t])
        assert np.isfinite(y.data)
    q = np.array([[0.2, 0.3, 0.5]] * 3, np.float32)
    _parity(F.cross_entropy, TF.cross_entropy, [x, q], grad=[True, False])


def test_cross_entropy_all_ignored_mean_is_nan_like_torch():
    x, t = _logits((2, 3)), np.array([-100, -100])
    assert np.isnan(F.cross_entropy(juanji.tensor(x), juanji.tensor(t)).item())
    assert torch.isnan(TF.cross_entropy(torch.tensor(x), torch.tensor(t)))


def test_cross_entropy_errors():
    x = juanji.tensor(_logits((2, 3)))
    with pytest.raises(ValueError, match=r"\[0, 2\].*got 3"):
        F.cross_entropy(x, juanji.tensor(np.array([0, 3])))
    with pytest.raises(ValueError, match="got -1"):
        F.cross_entropy(x, juanji.tensor(np.array([-1, 0])))
    with pytest.raises(ValueError, match="got -100"):  # -100 is a label once ignore_index moves
        F.cross_entropy(x, juanji.tensor(np.array([-100, 0])), ignore_index=1)
    with pytest.raises(ValueError, match="reduction must be one of"):
        F.cross_entropy(x, juanji.tensor(np.array([0, 1])), reduction="avg")
    with pytest.raises(ValueError, match="label_smoothing"):
        nn.CrossEntropyLoss(label_smoothing=1.5)
    with pytest.raises(ValueError, match="target of shape"):
        F.cross_entropy(x, juanji.tensor(np.array([0, 1, 2])))
    with pytest.raises(ValueError, match="shaped like input"):
        F.cross_entropy(x, juanji.tensor(np.ones((2, 4), np.float32)))
    with pytest.raises(ValueError, match="one entry per class"):
        F.cross_entropy(x, juanji.tensor(np.array([0, 1])), weight=juanji.tensor(np.ones(4)))


# ---- nll -------------------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("shape,tshape", [((6, 5), (6,)), ((2, 4, 3, 3), (2, 3, 3))])
def test_nll_matches_torch(shape, tshape, weighted, reduction):
    x = TF.log_softmax(torch.tensor(_logits(shape, seed=8)), 1).numpy()
    t = _labels(tshape, shape[1], seed=9, ignore=-100)
    w = np.random.default_rng(10).uniform(0.2, 2.0, shape[1]).astype(np.float32)
    wj, wt = (juanji.tensor(w), torch.tensor(w)) if weighted else (None, None)
    _parity(lambda a, b: F.nll_loss(a, b, wj, reduction=reduction),
            lambda a, b: TF.nll_loss(a, b, wt, reduction=reduction), [x, t])


def test_nll_gradcheck_and_errors():
    x = np.random.default_rng(11).standard_normal((4, 3))
    t = np.array([0, 2, -100, 1])
    gradcheck(lambda a: F.nll_loss(a, t, np.array([1.0, 2.0, 0.5])), [x])
    with pytest.raises(ValueError, match=r"\[0, 2\].*got 5"):
        F.nll_loss(juanji.tensor(x), juanji.tensor(np.array([0, 5, 1, 1])))
    with pytest.raises(ValueError, match="integer class targets"):
        F.nll_loss(juanji.tensor(x), juanji.tensor(np.zeros(4, np.float32)))


# ---- binary cross-entropy --------------------------------------------------------------------
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weight", [None, "row", "full"])
def test_bce_matches_torch(weight, reduction):
    rng = np.random.default_rng(12)
    p = rng.uniform(0.02, 0.98, (5, 4)).astype(np.float32)
    p[0, :4] = [0.0, 1.0, 0.0, 1.0]  # the log clamp at -100
    y = rng.random((5, 4)).astype(np.float32)
    y[0, :4] = [0.0, 1.0, 1.0, 0.0]
    w = {None: None, "row": rng.uniform(0.5, 2, 4), "full": rng.uniform(0.5, 2, (5, 4))}[weight]
    wj = None if w is None else juanji.tensor(w.astype(np.float32))
    wt = None if w is None else torch.tensor(w.astype(np.float32))
    # the target gradient is +-inf at p = 0 or 1 (in torch too); compare it on the rest
    _parity(lambda a, b: F.binary_cross_entropy(a, b, wj, reduction=reduction),
            lambda a, b: TF.binary_cross_entropy(a, b, wt, reduction=reduction),
            [p, y], grad=[True, False])
    q = p[1:]
    _parity(lambda a, b: F.binary_cross_entropy(a, b, reduction=reduction),
            lambda a, b: TF.binary_cross_entropy(a, b, reduction=reduction),
            [q, y[1:]])


def test_bce_is_finite_at_zero_and_one():
    p = juanji.tensor(np.array([0.0, 1.0, 0.0, 1.0], np.float32), requires_grad=True)
    y = juanji.tensor(np.array([1.0, 0.0, 0.0, 1.0], np.float32))
    loss = F.binary_cross_entropy(p, y, reduction="none")
    np.testing.assert_array_equal(loss.data, [100, 100, 0, 0])
    loss.sum().backward()
    assert np.isfinite(p.grad).all()


def test_bce_gradcheck():
    rng = np.random.default_rng(13)
    p, y = rng.uniform(0.1, 0.9, (3, 4)), rng.random((3, 4))
    gradcheck(lambda a, b: F.binary_cross_entropy(a, b, np.full(4, 1.5)), [p, y])


def test_bce_errors():
    with pytest.raises(ValueError, match=r"in \[0, 1\].*got 1.5"):
        F.binary_cross_entropy(juanji.tensor([0.5, 1.5]), juanji.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match="target of the input's size"):
        F.binary_cross_entropy(juanji.tensor([0.5, 0.5]), juanji.tensor([1.0]))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("options", [{}, {"pos_weight": True}, {"weight": True},
                                     {"pos_weight": True, "weight": True}])
def test_bce_with_logits_matches_torch(options, reduction):
    rng = np.random.default_rng(14)
    x = (rng.standard_normal((6, 3)) * 4).astype(np.float32)
    x[0] = [1e4, -1e4, 0.0]
    x[1] = [-1e4, 1e4, 30.0]
    y = rng.random((6, 3)).astype(np.float32)
    y[0], y[1] = [1.0, 0.0, 1.0], [1.0, 0.0, 0.0]
    pw = rng.uniform(0.5, 3, 3).astype(np.float32) if options.get("pos_weight") else None
    w = rng.uniform(0.5, 2, (6, 1)).astype(np.float32) if options.get("weight") else None

    def wrap(v, lib):
        return None if v is None else (juanji.tensor(v) if lib == "j" else torch.tensor(v))

    y_j = _parity(lambda a, b: F.binary_cross_entropy_with_logits(
                      a, b, wrap(w, "j"), reduction=reduction, pos_weight=wrap(pw, "j")),
                  lambda a, b: TF.binary_cross_entropy_with_logits(
                      a, b, wrap(w, "t"), reduction=reduction, pos_weight=wrap(pw, "t")),
                  [x, y])
    assert np.isfinite(y_j.data).all()


def test_bce_with_logits_gradcheck():
    rng = np.random.default_rng(15)
    x, y = rng.standard_normal((3, 4)) * 3, rng.random((3, 4))
    gradcheck(lambda a, b: F.binary_cross_entropy_with_logits(
        a, b, pos_weight=np.array([0.5, 1.0, 2.0, 3.0])), [x, y])
    gradcheck(lambda a, b: F.binary_cross_entropy_with_logits(a, b, reduction="sum"), [x, y])


# ---- regression losses -----------------------------------------------------------------------
def _regression_inputs(seed=16, shape=(4, 5)):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32) * 2
    y = rng.standard_normal(shape).astype(np.float32) * 2
    y[0, :4] = x[0, :4] + np.array([0.0, 1.0, -1.0, 0.5], np.float32)  # 0, +-beta, inside
    return x, y


REGRESSION = [
    ("mse", F.mse_loss, TF.mse_loss, {}),
    ("l1", F.l1_loss, TF.l1_loss, {}),
    ("smooth_l1", F.smooth_l1_loss, TF.smooth_l1_loss, {}),
    ("smooth_l1_b0.5", F.smooth_l1_loss, TF.smooth_l1_loss, {"beta": 0.5}),
    ("smooth_l1_b0", F.smooth_l1_loss, TF.smooth_l1_loss, {"beta": 0.0}),
    ("smooth_l1_b2", F.smooth_l1_loss, TF.smooth_l1_loss, {"beta": 2.0}),
    ("huber", F.huber_loss, TF.huber_loss, {}),
    ("huber_d0.5", F.huber_loss, TF.huber_loss, {"delta": 0.5}),
    ("huber_d3", F.huber_loss, TF.huber_loss, {"delta": 3.0}),
]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name,jfn,tfn,kw", REGRESSION, ids=[r[0] for r in REGRESSION])
def test_regression_losses_match_torch_with_target_grad(name, jfn, tfn, kw, reduction):
    _parity(lambda a, b: jfn(a, b, reduction=reduction, **kw),
            lambda a, b: tfn(a, b, reduction=reduction, **kw), list(_regression_inputs()))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name,jfn,tfn", [("mse", F.mse_loss, TF.mse_loss),
                                          ("l1", F.l1_loss, TF.l1_loss),
                                          ("huber", F.huber_loss, TF.huber_loss)])
def test_weighted_regression_losses_match_torch(name, jfn, tfn, reduction):
    x, y = _regression_inputs(17)
    w = np.random.default_rng(18).uniform(0.1, 3, x.shape).astype(np.float32)
    _parity(lambda a, b: jfn(a, b, reduction=reduction, weight=juanji.tensor(w)),
            lambda a, b: tfn(a, b, reduction=reduction, weight=torch.tensor(w)), [x, y])


def test_regression_broadcast_warns_and_matches_torch():
    x, y = _regression_inputs(19)
    with pytest.warns(UserWarning, match="broadcast"):
        _parity(F.mse_loss, TF.mse_loss, [x, y[:1]])


@pytest.mark.parametrize("name,jfn,tfn,kw", REGRESSION, ids=[r[0] for r in REGRESSION])
def test_regression_gradcheck(name, jfn, tfn, kw):
    rng = np.random.default_rng(20)
    x, y = rng.standard_normal((3, 4)) * 2, rng.standard_normal((3, 4)) * 2
    gradcheck(lambda a, b: jfn(a, b, **kw), [x, y])


def test_regression_errors():
    a = juanji.tensor([1.0, 2.0])
    with pytest.raises(ValueError, match="beta >= 0"):
        F.smooth_l1_loss(a, a, beta=-1.0)
    with pytest.raises(ValueError, match="delta > 0"):
        F.huber_loss(a, a, delta=0.0)
    with pytest.raises(ValueError, match="beta >= 0"):
        nn.SmoothL1Loss(beta=-0.5)
    with pytest.raises(ValueError, match="delta > 0"):
        nn.HuberLoss(delta=-1.0)
    with pytest.raises(ValueError, match="weight must have the input's size"):
        F.mse_loss(a, a, weight=juanji.tensor([1.0]))
    with pytest.raises(ValueError, match="reduction must be one of"):
        nn.MSELoss(reduction="max")


# ---- ranking and embedding losses ------------------------------------------------------------
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("margin", [0.0, 0.5, -0.2])
def test_margin_ranking_matches_torch(margin, reduction):
    rng = np.random.default_rng(21)
    x1, x2 = rng.standard_normal(8).astype(np.float32), rng.standard_normal(8).astype(np.float32)
    x2[:2] = x1[:2]  # ties: with margin 0 the hinge sits exactly at 0
    y = rng.choice([-1.0, 1.0], 8).astype(np.float32)
    _parity(lambda a, b, c: F.margin_ranking_loss(a, b, c, margin, reduction=reduction),
            lambda a, b, c: TF.margin_ranking_loss(a, b, c, margin, reduction=reduction),
            [x1, x2, y], grad=[True, True, False])


def test_margin_ranking_gradcheck():
    rng = np.random.default_rng(22)
    y = np.array([1.0, -1.0, 1.0, -1.0, 1.0])
    gradcheck(lambda a, b: F.margin_ranking_loss(a, b, y, 0.3),
              [rng.standard_normal(5), rng.standard_normal(5)])


TRIPLET = [{}, {"margin": 0.3}, {"p": 1.0}, {"p": 3.0}, {"p": 1.5, "eps": 1e-3},
           {"swap": True}, {"swap": True, "margin": 2.0, "p": 1.0}]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kw", TRIPLET)
@pytest.mark.parametrize("shape", [(6, 4), (5,)])
def test_triplet_margin_matches_torch(shape, kw, reduction):
    rng = np.random.default_rng(23)
    a, p, n = (rng.standard_normal(shape).astype(np.float32) for _ in range(3))
    _parity(lambda *t: F.triplet_margin_loss(*t, reduction=reduction, **kw),
            lambda *t: TF.triplet_margin_loss(*t, reduction=reduction, **kw), [a, p, n])


def test_triplet_and_pairwise_distance_gradcheck():
    rng = np.random.default_rng(24)
    a, p, n = (rng.standard_normal((4, 3)) for _ in range(3))
    for kw in ({}, {"p": 1.0}, {"p": 3.0}, {"swap": True, "margin": 3.0}):
        gradcheck(lambda x, y, z, k=kw: F.triplet_margin_loss(x, y, z, **k), [a, p, n])
    gradcheck(lambda x, y: F.pairwise_distance(x, y, 2.5, keepdim=True), [a, p])
    _parity(lambda x, y: F.pairwise_distance(x, y, 2.5, 1e-4, True),
            lambda x, y: TF.pairwise_distance(x, y, 2.5, 1e-4, True),
            [a.astype(np.float32), p.astype(np.float32)])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("margin", [0.0, 0.5, -0.3])
@pytest.mark.parametrize("shape", [(7, 4), (4,)])
def test_cosine_embedding_matches_torch(shape, margin, reduction):
    rng = np.random.default_rng(25)
    x1, x2 = (rng.standard_normal(shape).astype(np.float32) for _ in range(2))
    y = rng.choice([-1, 1], shape[:-1]).astype(np.int64)
    _parity(lambda a, b, c: F.cosine_embedding_loss(a, b, c, margin, reduction=reduction),
            lambda a, b, c: TF.cosine_embedding_loss(a, b, c, margin, reduction=reduction),
            [x1, x2, y])


def test_cosine_embedding_gradcheck():
    rng = np.random.default_rng(26)
    y = np.array([1, -1, -1, 1, -1])
    gradcheck(lambda a, b: F.cosine_embedding_loss(a, b, y, -0.5),
              [rng.standard_normal((5, 3)), rng.standard_normal((5, 3))])


def _contrastive_by_hand(x1, x2, y, margin):
    out = []
    for a, b, label in zip(x1, x2, y):
        d = np.sqrt(sum((ai - bi) ** 2 for ai, bi in zip(a, b)))
        similar = 0.5 * d**2
        dissimilar = 0.5 * max(0.0, margin - d) ** 2
        out.append(similar if label == 1 else dissimilar)
    return np.array(out)


@pytest.mark.parametrize("margin", [1.0, 2.5])
def test_contrastive_loss_by_hand(margin):
    rng = np.random.default_rng(27)
    x1, x2 = rng.standard_normal((8, 3)), rng.standard_normal((8, 3))
    x2[0] = x1[0]  # identical pair, d = 0
    y = np.array([1, 0, 1, 0, 0, 1, 0, 1])
    expected = _contrastive_by_hand(x1, x2, y, margin)
    loss = nn.ContrastiveLoss(margin, reduction="none")
    np.testing.assert_allclose(loss(juanji.tensor(x1), juanji.tensor(x2), juanji.tensor(y)).data,
                               expected, rtol=1e-12)
    assert F.contrastive_loss(x1, x2, y, margin).item() == pytest.approx(expected.mean())
    assert F.contrastive_loss(x1, x2, y, margin, "sum").item() == pytest.approx(expected.sum())
    one = F.contrastive_loss(x1[1], x2[1], np.array(0), margin, "none")
    assert one.shape == () and one.item() == pytest.approx(expected[1])


def test_contrastive_loss_gradcheck_and_zero_distance():
    rng = np.random.default_rng(28)
    x1, x2 = rng.standard_normal((6, 3)), rng.standard_normal((6, 3))
    y = np.array([1, 0, 1, 0, 0, 1])
    gradcheck(lambda a, b: F.contrastive_loss(a, b, y, 2.0), [x1, x2])
    gradcheck(lambda a, b: F.contrastive_loss(a, b, y, 0.5, "none"), [x1, x2])
    a = juanji.tensor(np.ones((2, 3)), requires_grad=True)
    F.contrastive_loss(a, np.ones((2, 3)), np.array([0, 1])).backward()
    np.testing.assert_array_equal(a.grad, 0)  # d = 0: no direction, no gradient


def test_pair_loss_errors():
    a = juanji.tensor(np.ones((3, 2), np.float32))
    with pytest.raises(ValueError, match="target values 1 or -1; got 0"):
        F.cosine_embedding_loss(a, a, juanji.tensor(np.array([1, 0, -1])))
    with pytest.raises(ValueError, match=r"margin in \[-1, 1\]"):
        nn.CosineEmbeddingLoss(margin=1.5)
    with pytest.raises(ValueError, match=r"1 \(similar\) or 0 \(dissimilar\); got -1"):
        F.contrastive_loss(a, a, juanji.tensor(np.array([1, 0, -1])))
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError, match="margin > 0"):
            nn.ContrastiveLoss(margin=bad)
        with pytest.raises(ValueError, match="margin > 0"):
            nn.TripletMarginLoss(margin=bad)
        with pytest.raises(ValueError, match="margin > 0"):
            F.triplet_margin_loss(a, a, a, margin=bad)
    with pytest.raises(ValueError, match="norm degree"):
        F.pairwise_distance(a, a, p=0.0)
    with pytest.raises(ValueError, match="target of shape"):
        F.contrastive_loss(a, a, juanji.tensor(np.array([1, 0])))


# ---- layers ----------------------------------------------------------------------------------
def test_loss_layers_match_torch_modules():
    rng = np.random.default_rng(29)
    x = rng.standard_normal((6, 4)).astype(np.float32)
    t = rng.integers(0, 4, 6)
    w = rng.uniform(0.5, 2, 4).astype(np.float32)
    p = rng.uniform(0.1, 0.9, (6, 4)).astype(np.float32)
    y = rng.random((6, 4)).astype(np.float32)
    cases = [
        (nn.CrossEntropyLoss(juanji.tensor(w), label_smoothing=0.1),
         torch.nn.CrossEntropyLoss(torch.tensor(w), label_smoothing=0.1), [x, t]),
        (nn.NLLLoss(reduction="sum"), torch.nn.NLLLoss(reduction="sum"), [x, t]),
        (nn.BCELoss(), torch.nn.BCELoss(), [p, y]),
        (nn.BCEWithLogitsLoss(pos_weight=juanji.tensor(w)),
         torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(w)), [x, y]),
        (nn.MSELoss(), torch.nn.MSELoss(), [x, y]), (nn.L1Loss(), torch.nn.L1Loss(), [x, y]),
        (nn.SmoothL1Loss(beta=0.3), torch.nn.SmoothL1Loss(beta=0.3), [x, y]),
        (nn.HuberLoss(delta=0.7), torch.nn.HuberLoss(delta=0.7), [x, y]),
        (nn.MarginRankingLoss(0.2), torch.nn.MarginRankingLoss(0.2), [x[:, 0], y[:, 0],
                                                                      np.sign(x[:, 1])]),
        (nn.TripletMarginLoss(0.5, swap=True), torch.nn.TripletMarginLoss(0.5, swap=True),
         [x, y, p]),
        (nn.CosineEmbeddingLoss(0.1), torch.nn.CosineEmbeddingLoss(0.1),
         [x, y, np.sign(x[:, 0]).astype(np.int64)]),
    ]
    for layer, ref, arrays in cases:
        _parity(layer, ref, arrays, grad=[a.dtype.kind == "f" and i < 2
                                          for i, a in enumerate(arrays)])


def test_loss_layer_state_and_legacy_reduction():
    w = juanji.tensor(np.ones(3, np.float32))
    assert list(nn.CrossEntropyLoss(w).state_dict()) == list(
        torch.nn.CrossEntropyLoss(torch.ones(3)).state_dict())
    assert list(nn.BCEWithLogitsLoss(w, pos_weight=w).state_dict()) == ["weight", "pos_weight"]
    assert nn.CrossEntropyLoss().state_dict() == {}
    assert nn.MSELoss(size_average=False).reduction == "sum"
    assert nn.MSELoss(reduce=False).reduction == "none"
    assert nn.L1Loss(size_average=True, reduce=True).reduction == "mean"
    x = juanji.tensor(_logits((3, 4)))
    t = juanji.tensor(np.array([0, 1, 2]))
    assert F.cross_entropy(x, t, size_average=False).item() == pytest.approx(
        F.cross_entropy(x, t, reduction="sum").item())
