"""The conv animation, read back from the GIF and checked cell by cell."""

import numpy as np
import pytest
from PIL import Image

from juanji.arithmetic import conv_output_size, conv_transpose_output_size
from juanji.viz.conv_animation import PALETTE, conv_animation, save_conv_animation


def gif_frames(path):
    with Image.open(path) as im:
        frames = []
        for i in range(im.n_frames):
            im.seek(i)
            frames.append(np.asarray(im.convert("RGB")))
    return frames


def colour_at(frame, anim, grid, r, c):
    x, y = anim.centre(grid, r, c)
    return tuple(int(v) for v in frame[y, x])


def test_frames_follow_the_kernel(tmp_path):
    path, anim = save_conv_animation(tmp_path / "c.gif", (5, 5), 3, stride=2, padding=1)
    frames = gif_frames(path)
    out = conv_output_size(5, 3, 2, 1)
    assert len(frames) == anim.frame_count == out * out == 9
    for t, frame in enumerate(frames):
        i, j = divmod(t, out)
        taps = {(r, c) for r in range(7) for c in range(7)
                if colour_at(frame, anim, "input", r, c) == PALETTE["tap"]}
        # a 3x3 window whose top-left cell is (2i, 2j) of the padded 7x7 grid
        assert taps == {(2 * i + a, 2 * j + b) for a in range(3) for b in range(3)}
        assert colour_at(frame, anim, "output", i, j) == PALETTE["current"]
        done = [colour_at(frame, anim, "output", *divmod(n, out)) for n in range(t)]
        assert all(c == PALETTE["done"] for c in done)
    # padding ring and input cells where the kernel is not
    last = frames[-1]
    assert colour_at(last, anim, "input", 0, 0) == PALETTE["padding"]
    assert colour_at(last, anim, "input", 1, 1) == PALETTE["input"]


def test_dilation_spreads_the_taps():
    anim = conv_animation((7, 7), 3, dilation=2)
    assert anim.out_shape == (3, 3)
    assert anim.taps(0) == [(r, c) for r in (0, 2, 4) for c in (0, 2, 4)]


def test_transposed_inserts_zeros(tmp_path):
    path, anim = save_conv_animation(tmp_path / "t.gif", (3, 3), 3, stride=2, padding=1,
                                     transposed=True, output_padding=1)
    size = conv_transpose_output_size(3, 3, 2, 1, 1)
    assert anim.out_shape == (size, size) == (6, 6)
    frames = gif_frames(path)
    assert len(frames) == 36
    kinds = anim.kinds
    assert (kinds == "input").sum() == 9 and (kinds == "zero").sum() == 25 - 9
    first = frames[0]
    colours = {colour_at(first, anim, "input", r, c) for r in range(kinds.shape[0])
               for c in range(kinds.shape[1])}
    assert {PALETTE["zero"], PALETTE["input"], PALETTE["padding"], PALETTE["tap"]} <= colours


@pytest.mark.parametrize("kwargs, message", [
    (dict(input_size=(3, 3), kernel_size=5), "kernel 5 .* does not fit the input height 3"),
    (dict(input_size=(40, 5)), "at most 32x32"),
    (dict(kernel_size=3, padding=3, transposed=True), "padding 3 is larger than"),
    (dict(stride=0), "stride must be an int >= 1"),
])
def test_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        conv_animation(**kwargs)


def test_only_gif(tmp_path):
    with pytest.raises(ValueError, match="must end in .gif"):
        conv_animation().save(tmp_path / "x.png")
