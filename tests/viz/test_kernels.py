"""Hand-set kernels through juanji's conv2d: the seeds' edge detector, RGB summing, parity."""

import numpy as np
import pytest
import torch

from juanji.viz.images import half_white, synthetic_photo
from juanji.viz.kernels import KERNELS, apply_kernel, get_kernel, parse_weights


def test_seed_edge_detector_fires_only_at_the_boundary():
    # 50x50, white (1) left of column 30, black (0) from it; kernel [1, 0, -1] (1x3)
    img = half_white(50, 50, 30)
    out = apply_kernel(img, "edge")
    assert out.shape == (50, 48)
    # out[:, j] = x[:, j] - x[:, j + 2]: non-zero only where j < 30 <= j + 2, i.e. j = 28, 29
    columns = np.nonzero(np.abs(out).sum(axis=0))[0]
    assert columns.tolist() == [28, 29]
    assert np.all(out[:, 28:30] == 1.0)
    assert np.all(out[:, :28] == 0) and np.all(out[:, 30:] == 0)


def test_rgb_is_one_kernel_per_channel_summed_like_the_seeds():
    photo = synthetic_photo(40, 50)
    w = get_kernel("laplacian")
    out = apply_kernel(photo, w)
    per_channel = sum(apply_kernel(photo[..., c], w) for c in range(3))
    np.testing.assert_allclose(out, per_channel, atol=1e-5)
    # oracle: torch with the seeds' np.repeat(w, 3, axis=1) weight
    x = torch.tensor(photo.transpose(2, 0, 1)[None])
    weight = torch.tensor(np.repeat(w[None, None], 3, axis=1))
    expected = torch.nn.functional.conv2d(x, weight)[0, 0].numpy()
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_depthwise_mean_blur_keeps_colour():
    photo = synthetic_photo(40, 50)
    blurred = apply_kernel(photo, "mean", mode="depthwise")
    assert blurred.shape == (36, 46, 3)
    flat = np.full((12, 12, 3), (0.2, 0.5, 0.9), dtype=np.float32)
    np.testing.assert_allclose(apply_kernel(flat, "mean", mode="depthwise"),
                               np.broadcast_to((0.2, 0.5, 0.9), (8, 8, 3)), atol=1e-6)
    # blurring lowers the pixel-to-pixel variation
    assert np.abs(np.diff(blurred, axis=1)).mean() < np.abs(np.diff(photo, axis=1)).mean()


def test_sobel_signs_and_padding():
    step = np.zeros((8, 8), np.float32)
    step[:, 4:] = 1.0  # dark left, bright right
    gx = apply_kernel(step, "sobel-x", padding=1)
    assert gx.shape == (8, 8)
    assert np.all(gx[1:-1, 3:5] == 4.0) and np.all(gx[:, :3] == 0)
    assert np.all(apply_kernel(step, "sobel-y")[:, :] == 0)


def test_kernels_are_the_classic_ones():
    assert KERNELS["edge"].tolist() == [[1, 0, -1]]
    assert KERNELS["laplacian"].sum() == 0 and KERNELS["laplacian"][1, 1] == 1.0
    for name in ("mean", "gaussian", "sharpen"):
        assert KERNELS[name].sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="unknown kernel 'blur'; choose one of edge"):
        get_kernel("blur")


def test_parse_weights():
    assert parse_weights("1,0,-1").tolist() == [[1, 0, -1]]
    assert parse_weights("1,0,-1;2,0,-2").shape == (2, 3)
    with pytest.raises(ValueError, match="numbers separated by ','"):
        parse_weights("1,a,-1")
    with pytest.raises(ValueError, match="must form a rectangle"):
        parse_weights("1,0;1")


def test_kernel_must_fit():
    with pytest.raises(ValueError, match="kernel 5x5 does not fit the image 3x3"):
        apply_kernel(np.zeros((3, 3)), "mean")
