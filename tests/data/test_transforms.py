import numpy as np
import pytest

from juanji.data.transforms import (
    Compose,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    ToFloat,
    Transform,
)


def test_to_float_scales_uint8_and_adds_channel():
    out = ToFloat()(np.array([[0, 51], [255, 102]], dtype=np.uint8))
    assert out.dtype == np.float32 and out.shape == (1, 2, 2)
    np.testing.assert_array_equal(out, np.float32([[[0.0, 0.2], [1.0, 0.4]]]))


def test_to_float_layout_rule():
    hwc = np.arange(2 * 4 * 3, dtype=np.uint8).reshape(2, 4, 3)
    chw = ToFloat()(hwc)
    assert chw.shape == (3, 2, 4) and chw.flags.c_contiguous
    assert chw[2, 1, 3] == np.float32(hwc[1, 3, 2] / 255)
    assert ToFloat()(np.zeros((5, 6, 1), np.uint8)).shape == (1, 5, 6)  # HWC, one channel
    assert ToFloat()(np.zeros((3, 5, 6), np.uint8)).shape == (3, 5, 6)  # CHW
    assert ToFloat()(np.zeros((1, 5, 6), np.uint8)).shape == (1, 5, 6)  # CHW, one channel
    assert ToFloat()(np.zeros((3, 5, 3), np.uint8)).shape == (3, 5, 3)  # first dim 3: CHW


def test_to_float_batch_matches_per_sample():
    rng = np.random.default_rng(0)
    for shape in [(4, 5, 6), (4, 5, 6, 3), (4, 3, 5, 6)]:
        xs = rng.integers(0, 256, size=shape, dtype=np.uint8)
        expected = np.stack([ToFloat()(x) for x in xs])
        np.testing.assert_array_equal(ToFloat().batch(xs), expected)
    assert ToFloat().batch(np.zeros((4, 5, 6), np.uint8)).shape == (4, 1, 5, 6)


def test_to_float_casts_floats_and_rejects_the_rest():
    out = ToFloat()(np.full((2, 2), 3.5, dtype=np.float64))
    assert out.dtype == np.float32 and np.all(out == 3.5)  # floats are cast, not scaled
    with pytest.raises(TypeError, match="uint8 or floating images; got dtype int32"):
        ToFloat()(np.zeros((2, 2), np.int32))
    with pytest.raises(ValueError, match=r"got shape \(5,\)"):
        ToFloat()(np.zeros(5, np.uint8))


def test_normalize_by_hand():
    x = np.full((2, 1, 2), 0.5, dtype=np.float32)
    out = Normalize(mean=(0.25, 0.5), std=(0.5, 0.25))(x)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[[0.5, 0.5]], [[0.0, 0.0]]])
    batch = Normalize(0.5, 0.25).batch(np.float32([[[[1.0, 0.0]]], [[[0.25, 0.5]]]]))
    np.testing.assert_array_equal(batch, [[[[2.0, -2.0]]], [[[-1.0, 0.0]]]])


def test_normalize_validates():
    with pytest.raises(ValueError, match=r"std must be positive and finite; got std=\[1.0, 0.0\]"):
        Normalize((0, 0), (1, 0))
    with pytest.raises(ValueError, match="len\\(mean\\)=3, len\\(std\\)=1"):
        Normalize((0, 0, 0), 1)
    norm = Normalize((0, 0, 0), (1, 1, 1))
    with pytest.raises(ValueError, match=r"3 channels .* got shape \(1, 4, 4\)"):
        norm(np.zeros((1, 4, 4), np.float32))
    with pytest.raises(TypeError, match="apply ToFloat first"):
        norm(np.zeros((3, 4, 4), np.uint8))


def test_compose_applies_in_order():
    pipeline = Compose([ToFloat(), Normalize(0.5, 0.5)])
    out = pipeline(np.array([[0, 255]], dtype=np.uint8))
    np.testing.assert_array_equal(out, [[[-1.0, 1.0]]])
    xs = np.random.default_rng(1).integers(0, 256, size=(3, 4, 4), dtype=np.uint8)
    np.testing.assert_array_equal(pipeline.batch(xs), np.stack([pipeline(x) for x in xs]))
    with pytest.raises(TypeError, match=r"transforms\[1\] is int"):
        Compose([ToFloat(), 3])


def test_compose_batch_falls_back_for_plain_callables():
    pipeline = Compose([ToFloat(), lambda x: x * 2])
    out = pipeline.batch(np.full((2, 3, 3), 255, np.uint8))
    assert out.shape == (2, 1, 3, 3) and np.all(out == 2.0)


def test_transform_base_batch_loops_over_samples():
    class AddIndexShape(Transform):
        def __call__(self, x):
            return x + x.shape[0]

    np.testing.assert_array_equal(AddIndexShape().batch(np.zeros((2, 3))), np.full((2, 3), 3))


def test_horizontal_flip_extremes():
    x = np.array([[[1, 2, 3], [4, 5, 6]]])
    np.testing.assert_array_equal(RandomHorizontalFlip(p=1.0)(x), [[[3, 2, 1], [6, 5, 4]]])
    np.testing.assert_array_equal(RandomHorizontalFlip(p=0.0)(x), x)
    with pytest.raises(ValueError, match=r"p must lie in \[0, 1\]; got p=1.5"):
        RandomHorizontalFlip(p=1.5)


def test_horizontal_flip_batch_is_per_sample_and_seeded():
    xs = np.arange(200 * 2 * 3, dtype=np.float32).reshape(200, 1, 2, 3)
    original = xs.copy()
    out = RandomHorizontalFlip(p=0.5, seed=3).batch(xs)
    flipped = np.all(out == xs[..., ::-1], axis=(1, 2, 3))
    kept = np.all(out == xs, axis=(1, 2, 3))
    assert np.all(flipped ^ kept)  # each sample is either mirrored or untouched
    assert 60 < flipped.sum() < 140
    np.testing.assert_array_equal(xs, original)  # input not modified
    np.testing.assert_array_equal(RandomHorizontalFlip(p=0.5, seed=3).batch(xs), out)


def windows_of(padded, h, w):
    """Every (h, w) window of padded (..., H, W), by explicit loops."""
    return [padded[..., i:i + h, j:j + w]
            for i in range(padded.shape[-2] - h + 1) for j in range(padded.shape[-1] - w + 1)]


def test_random_crop_picks_every_window_of_the_padded_image():
    x = np.arange(1, 10, dtype=np.float32).reshape(1, 3, 3)
    padded = np.zeros((1, 5, 5), np.float32)
    padded[:, 1:4, 1:4] = x
    candidates = windows_of(padded, 3, 3)
    out = RandomCrop(3, padding=1, seed=0).batch(np.repeat(x[None], 400, axis=0))
    assert out.shape == (400, 1, 3, 3)
    hits = [next(k for k, c in enumerate(candidates) if np.array_equal(o, c)) for o in out]
    assert sorted(set(hits)) == list(range(9))


def test_random_crop_same_window_for_all_channels():
    xs = np.random.default_rng(2).random((20, 3, 6, 7)).astype(np.float32)
    out = RandomCrop((4, 5), seed=1).batch(xs)
    assert out.shape == (20, 3, 4, 5)
    for x, o in zip(xs, out):
        assert any(np.array_equal(o, c) for c in windows_of(x, 4, 5))


def test_random_crop_shapes_and_validation():
    assert RandomCrop(2, seed=0)(np.zeros((5, 5), np.uint8)).shape == (2, 2)
    assert RandomCrop(2, seed=0).batch(np.zeros((4, 5, 5), np.uint8)).shape == (4, 2, 2)
    x = np.arange(12).reshape(1, 3, 4)
    np.testing.assert_array_equal(RandomCrop((3, 4))(x), x)  # full-size crop is the identity
    with pytest.raises(ValueError, match=r"size=\(5, 5\) does not fit .* \(4, 4\) \(padding=1\)"):
        RandomCrop(5, padding=1)(np.zeros((1, 2, 2)))
    with pytest.raises(ValueError, match=r"size must be a positive int .*; got size=\(0, 0\)"):
        RandomCrop(0)
    with pytest.raises(ValueError, match="padding must be a non-negative int; got padding=-1"):
        RandomCrop(3, padding=-1)
