"""Batch augmentations: torchvision's semantics checked by hand, masks moved with images,
randomness from juanji's generator (or a given one), and the CLI's name table."""

import numpy as np
import pytest

import juanji
from juanji.data.transforms import (
    AUGMENTATIONS,
    CenterCrop,
    ColorJitter,
    Compose,
    Normalize,
    RandomCrop,
    RandomErasing,
    RandomHorizontalFlip,
    RandomResizedCrop,
    RandomRotation,
    RandomVerticalFlip,
    Resize,
    ToFloat,
    Transform,
    build_augmentation,
)


def batch(n=8, c=1, h=6, w=7, seed=0):
    return np.random.default_rng(seed).random((n, c, h, w)).astype(np.float32)


def index_masks(n=8, h=6, w=7):
    """Masks whose value at each pixel is unique: (N, H, W) = pixel number (mod 251)."""
    return (np.arange(n * h * w).reshape(n, h, w) % 251).astype(np.int64)


def test_flips_are_exact_and_move_masks():
    x, m = batch(), index_masks()
    out, mo = RandomHorizontalFlip(p=1.0).batch(x, m)
    np.testing.assert_array_equal(out, x[..., ::-1])
    np.testing.assert_array_equal(mo, m[..., ::-1])
    out, mo = RandomVerticalFlip(p=1.0).batch(x, m)
    np.testing.assert_array_equal(out, x[..., ::-1, :])
    np.testing.assert_array_equal(mo, m[:, ::-1, :])
    out, mo = RandomVerticalFlip(p=0.0).batch(x, m)
    np.testing.assert_array_equal(out, x)
    np.testing.assert_array_equal(mo, m)


def test_flip_is_per_sample_with_mask_following_image():
    x = batch(n=300)
    m = index_masks(n=300)
    out, mo = RandomHorizontalFlip(p=0.5).batch(x, m)
    flipped = np.all(out == x[..., ::-1], axis=(1, 2, 3))
    assert np.all(flipped == np.all(mo == m[..., ::-1], axis=(1, 2)))
    assert np.all(flipped | np.all(out == x, axis=(1, 2, 3)))
    assert 100 < flipped.sum() < 200


def test_same_seed_same_batch_and_default_is_juanjis_generator():
    x = batch(n=50)
    aug = Compose([RandomCrop(5, padding=2), RandomHorizontalFlip(), RandomRotation(30),
                   RandomResizedCrop(6), ColorJitter(0.3, 0.3), RandomErasing()])
    juanji.manual_seed(5)
    first = aug.batch(x)
    juanji.manual_seed(5)
    np.testing.assert_array_equal(aug.batch(x), first)
    assert not np.array_equal(aug.batch(x), first)  # the generator moved on
    # an explicit generator (or seed) is used instead of the global one
    a = RandomCrop(5, padding=2, generator=np.random.default_rng(1)).batch(x)
    b = RandomCrop(5, padding=2, generator=np.random.default_rng(1)).batch(x)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="give seed or generator, not both"):
        RandomCrop(5, seed=1, generator=np.random.default_rng(1))
    with pytest.raises(TypeError, match="generator must be a numpy.random.Generator"):
        RandomHorizontalFlip(generator=3)


def test_resume_draws_the_same_augmentations_from_the_saved_generator_state():
    x = batch(n=20)
    aug = build_augmentation("crop,flip,erase", (6, 7))
    aug.batch(x)
    state = juanji.random.default_generator().bit_generator.state
    expected = aug.batch(x)
    juanji.manual_seed(123)  # a fresh process would have another state
    juanji.random.default_generator().bit_generator.state = state
    np.testing.assert_array_equal(aug.batch(x), expected)


def windows(padded, h, w):
    return [padded[..., i:i + h, j:j + w]
            for i in range(padded.shape[-2] - h + 1) for j in range(padded.shape[-1] - w + 1)]


@pytest.mark.parametrize("mode", ["constant", "edge", "reflect", "symmetric"])
def test_random_crop_picks_windows_of_the_padded_image_with_the_mask(mode):
    x = np.arange(1, 13, dtype=np.float32).reshape(1, 1, 3, 4)
    m = np.arange(12).reshape(1, 3, 4)
    widths = [(0, 0), (0, 0), (2, 2), (1, 1)]  # padding=(1, 2): left/right 1, top/bottom 2
    padded = np.pad(x, widths, mode=mode) if mode != "constant" else np.pad(x, widths)
    padded_m = np.pad(m, widths[1:], mode=mode) if mode != "constant" else np.pad(m, widths[1:])
    crop = RandomCrop((3, 4), padding=(1, 2), padding_mode=mode)
    out, mo = crop.batch(np.repeat(x, 300, 0), np.repeat(m, 300, 0))
    cands = {c.tobytes() for c in windows(padded[0], 3, 4)}
    assert {o.tobytes() for o in out} == cands  # every window of the 7x6 padded image
    mask_cands = {c.tobytes() for c in windows(padded_m, 3, 4)}
    assert {o.tobytes() for o in mo} <= mask_cands
    # the image is the mask + 1, so the mask crop is the same window (0 where padded with 0)
    assert np.all(np.where(out[:, 0] == 0, mo == 0, mo == out[:, 0] - 1))


def test_random_crop_padding_forms_and_pad_if_needed():
    x = np.ones((2, 1, 3, 3), np.float32)
    assert RandomCrop(3, padding=(1, 0, 0, 0)).batch(x).shape == (2, 1, 3, 3)
    out = RandomCrop((5, 3), pad_if_needed=True, fill=0.5).batch(x)
    assert out.shape == (2, 1, 5, 3)
    assert set(np.unique(out)) <= {0.5, 1.0} and (out == 1).sum() == 2 * 9
    with pytest.raises(ValueError, match=r"padding must be a non-negative int or a sequence of "
                                         r"2 or 4 of them; got padding=\(1, 2, 3\)"):
        RandomCrop(3, padding=(1, 2, 3))
    with pytest.raises(ValueError, match="padding_mode must be one of constant, edge, reflect, "
                                         "symmetric; got padding_mode='wrap'"):
        RandomCrop(3, padding_mode="wrap")


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_rotation_by_90_degrees_is_rot90_counter_clockwise(interpolation):
    x = batch(n=3, c=2, h=5, w=5)
    m = index_masks(n=3, h=5, w=5)
    out, mo = RandomRotation((90, 90), interpolation=interpolation).batch(x, m)
    np.testing.assert_allclose(out, np.rot90(x, 1, axes=(2, 3)), atol=1e-6)
    np.testing.assert_array_equal(mo, np.rot90(m, 1, axes=(1, 2)))
    out = RandomRotation((0, 0), interpolation=interpolation).batch(x)
    np.testing.assert_allclose(out, x, atol=1e-6)


def test_rotation_fills_uncovered_corners_and_draws_angles_in_range():
    x = np.ones((1, 1, 9, 9), np.float32)
    out = RandomRotation((45, 45), fill=0.25).batch(x)
    assert out[0, 0, 0, 0] == 0.25 and out[0, 0, 4, 4] == 1.0  # corner uncovered, centre kept
    rotation = RandomRotation(10)
    assert rotation.degrees == (-10.0, 10.0)
    with pytest.raises(ValueError, match="degrees must be non-negative when a single number"):
        RandomRotation(-5)


def test_random_resized_crop_boxes_follow_the_area_and_ratio_ranges():
    crop = RandomResizedCrop(8, scale=(0.2, 0.6), ratio=(0.5, 2.0))
    top, left, h, w = crop.boxes(2000, 40, 50)
    area = h * w / (40 * 50)
    assert np.all((area > 0.2 * 0.9) & (area < 0.6 * 1.1))  # rounding of h and w
    aspect = w / h
    assert np.all((aspect > 0.5 * 0.85) & (aspect < 2.0 * 1.15))
    assert np.all((top >= 0) & (top + h <= 40) & (left >= 0) & (left + w <= 50))
    assert area.min() < 0.25 and area.max() > 0.55  # spread over the range


def test_random_resized_crop_resamples_images_and_masks_together():
    x = np.arange(36, dtype=np.float32).reshape(1, 1, 6, 6) / 36
    # the whole square image at its own size: the identity
    out = RandomResizedCrop(6, scale=(1, 1), ratio=(1, 1)).batch(x)
    np.testing.assert_allclose(out, x, atol=1e-6)
    # nearest on an image equal to the mask gives the mask's values
    m = index_masks(n=40, h=10, w=12)
    xs = m[:, None].astype(np.float32)
    out, mo = RandomResizedCrop((5, 4), interpolation="nearest").batch(xs, m)
    assert out.shape == (40, 1, 5, 4) and mo.shape == (40, 5, 4)
    np.testing.assert_array_equal(out[:, 0], mo)
    # the fallback, when no try fits: the centre crop with the ratio clamped
    top, left, h, w = RandomResizedCrop(4, scale=(1, 1), ratio=(3, 4)).boxes(3, 10, 10)
    assert (h.tolist(), w.tolist()) == ([3] * 3, [10] * 3) and top.tolist() == [3] * 3


def test_color_jitter_brightness_and_contrast_by_hand():
    x = batch(n=4, c=3)
    np.testing.assert_allclose(ColorJitter(brightness=(2, 2)).batch(x), np.clip(2 * x, 0, 1))
    grey = 0.2989 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    means = grey.mean(axis=(1, 2))[:, None, None, None]
    out = ColorJitter(contrast=(0, 0)).batch(x)
    np.testing.assert_allclose(out, np.broadcast_to(means, x.shape), rtol=1e-5)
    np.testing.assert_allclose(ColorJitter().batch(x), x)  # factors of exactly 1
    assert ColorJitter(brightness=0.4).brightness == (0.6, 1.4)
    m = index_masks(n=4)
    assert ColorJitter(0.5, 0.5).batch(x, m)[1] is m
    with pytest.raises(TypeError, match="apply ToFloat first"):
        ColorJitter(0.5).batch(np.zeros((1, 1, 2, 2), np.uint8))


def test_random_erasing_erases_one_rectangle_of_the_stated_area():
    x = np.ones((500, 2, 20, 30), np.float32)
    out = RandomErasing(p=1.0, scale=(0.05, 0.2), ratio=(0.5, 2.0), value=(3, 4)).batch(x)
    for sample in out:
        erased = sample[0] == 3
        np.testing.assert_array_equal(sample[1] == 4, erased)  # one value per channel
        rows, cols = np.nonzero(erased)
        h, w = np.ptp(rows) + 1, np.ptp(cols) + 1
        assert erased.sum() == h * w  # a filled rectangle
        assert 0.05 * 0.85 < h * w / 600 < 0.2 * 1.15
        assert 0.5 * 0.7 < h / w < 2.0 * 1.4
    assert np.array_equal(RandomErasing(p=0.0).batch(x), x)
    half = RandomErasing(p=0.5).batch(x)
    erased = np.any(half != 1, axis=(1, 2, 3))
    assert 180 < erased.sum() < 320
    noise = RandomErasing(p=1.0, value="random").batch(x)
    assert np.any(noise < 0)


def test_resize_and_center_crop_by_hand():
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    # bilinear 2x down with align_corners=False: the mean of each 2x2 block
    expected = x.reshape(1, 1, 2, 2, 2, 2).mean(axis=(3, 5))
    np.testing.assert_allclose(Resize((2, 2)).batch(x), expected)
    np.testing.assert_array_equal(Resize((2, 2), "nearest").batch(x), x[..., ::2, ::2])
    m = np.arange(16).reshape(1, 4, 4)
    np.testing.assert_array_equal(Resize((2, 2)).batch(x, m)[1], m[:, ::2, ::2])
    assert Resize(10).batch(np.zeros((1, 3, 20, 45), np.float32)).shape == (1, 3, 10, 22)
    y = np.arange(30).reshape(1, 5, 6)
    np.testing.assert_array_equal(CenterCrop((2, 3)).batch(y), y[:, 2:4, 2:5])  # round(1.5) = 2
    padded = CenterCrop(4).batch(np.ones((1, 1, 2, 3)))
    # torchvision puts the odd pixel of padding after: right and bottom
    np.testing.assert_array_equal(padded[0, 0], [[0, 0, 0, 0], [1, 1, 1, 0], [1, 1, 1, 0],
                                                 [0, 0, 0, 0]])


def test_compose_passes_masks_through_the_non_geometric_transforms():
    u8 = (batch(n=3) * 255).astype(np.uint8)[:, 0]  # (N, H, W) uint8
    m = index_masks(n=3)
    aug = Compose([ToFloat(), RandomHorizontalFlip(p=1.0), Normalize(0.5, 0.5)])
    out, mo = aug.batch(u8, m)
    np.testing.assert_allclose(out[:, 0], (u8[..., ::-1] / 255 - 0.5) / 0.5, atol=1e-6)
    np.testing.assert_array_equal(mo, m[..., ::-1])

    class PerSample(Transform):
        def __call__(self, x):
            return x

    with pytest.raises(TypeError, match="PerSample does not transform masks"):
        Compose([PerSample()]).batch(u8, m)
    with pytest.raises(ValueError, match=r"masks \(N, H, W\) = \(3, 6, 7\) matching"):
        RandomHorizontalFlip().batch(out, m[:, :5])


def test_name_table_builds_the_cli_presets():
    assert set(AUGMENTATIONS) == {"crop", "flip", "vflip", "rotate", "resized-crop", "jitter",
                                  "erase"}
    aug = build_augmentation("crop, flip", 28)
    crop, flip = aug.transforms
    assert isinstance(crop, RandomCrop) and crop.size == (28, 28) and crop.padding == 2
    assert isinstance(flip, RandomHorizontalFlip)
    assert build_augmentation("none", (8, 8)).transforms == []
    everything = build_augmentation(",".join(AUGMENTATIONS), (8, 10))
    assert everything.batch(batch(h=8, w=10)).shape == (8, 1, 8, 10)
    with pytest.raises(ValueError, match="unknown augmentation 'blur' in 'crop,blur'; choose "
                                         "from crop, flip"):
        build_augmentation("crop,blur", 28)
