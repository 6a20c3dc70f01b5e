"""`filter_bytes` by hand, and `apply_kernel` refusing what cannot fit before allocating."""

import re

import numpy as np
import pytest

from juanji import memory
from juanji.viz.kernels import apply_kernel, filter_bytes


def test_filter_bytes_by_hand():
    # 10x8 RGB, 3x3 kernel, stride 2, padding 1: padded 12x10, response 5x4
    nchw, padded, response = 3 * 10 * 8, 3 * 12 * 10, 5 * 4
    assert filter_bytes((10, 8, 3), (3, 3), "sum", 2, 1) == \
        4 * (nchw + padded) + (4 + 16) * response
    # depthwise keeps the 3 channels in the response; (H, W) pairs for stride and padding
    assert filter_bytes((10, 8, 3), (3, 3), "depthwise", (2, 2), (1, 1)) == \
        4 * (nchw + padded) + (4 + 16) * 3 * response


def test_apply_kernel_refuses_before_allocating(monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda: 20 * 2**20)
    image = np.zeros((8, 8), np.float32)
    # padded 1608x1608 floats and a 1606x1606 response: 59.1 MiB
    need = filter_bytes((8, 8, 1), (3, 3), "sum", 1, 800)
    with pytest.raises(ValueError, match=re.escape(
            f"filtering a 8x8x1 image (256 B) with padding 800 would need "
            f"{memory.human_bytes(need)}, have 20.00 MiB available")):
        apply_kernel(image, "sobel-x", padding=800)
    # padding 450: 18.8 MiB fits
    assert apply_kernel(image, "sobel-x", padding=450).shape == (906, 906)


@pytest.mark.parametrize("kwargs, message", [
    ({"stride": 0}, "stride must be an int >= 1 or a pair of them; got stride=0"),
    ({"padding": -1}, "padding must be an int >= 0 or a pair of them; got padding=-1"),
    ({"padding": 1.5}, "padding must be an int >= 0 or a pair of them; got padding=1.5"),
    ({"stride": (1, 2, 3)}, "got stride=(1, 2, 3)"),
])
def test_apply_kernel_checks_stride_and_padding(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        apply_kernel(np.zeros((8, 8)), "edge", **kwargs)
