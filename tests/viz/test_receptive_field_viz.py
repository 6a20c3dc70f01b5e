"""Receptive-field pictures: the field is bright and outlined, the rest dimmed."""

import numpy as np
import pytest

from juanji.analysis.receptive_field import ReceptiveField, compose
from juanji.viz.receptive_field import CENTRE, OUTLINE, clipped_box, draw_receptive_field


def test_box_is_bright_and_outlined():
    rf = compose(compose(ReceptiveField.input(), 3), 2, 2)  # 4x4, jump 2, start 1.5
    white = np.ones((12, 12), np.float32)
    pic, unit, box = draw_receptive_field(white, rf, (5, 5), min_px=120)
    assert unit == (2, 2)
    # centre 1.5 + 2*2 = 5.5, half-width 1.5: pixels 4..7
    assert box == (4, 4, 7, 7)
    factor = 10
    assert pic.shape == (120, 120, 3)
    inside = pic[4 * factor + 5, 4 * factor + 5]
    outside = pic[1 * factor, 1 * factor]
    assert inside.tolist() == [255, 255, 255]
    assert outside.tolist() == [89, 89, 89]  # 0.35 * 255
    assert pic[4 * factor, 6 * factor].tolist() == list(OUTLINE)
    assert pic[8 * factor - 1, 6 * factor].tolist() == list(OUTLINE)
    y = x = int(5.5 * factor + 4.5)
    assert pic[y, x].tolist() == list(CENTRE)


def test_field_beyond_the_image_is_clipped():
    rf = compose(ReceptiveField.input(), 5, padding=2)
    assert clipped_box(rf, (0, 0), (10, 10)) == (0, 0, 2, 2)
    assert clipped_box(rf, (9, 9), (10, 10)) == (7, 7, 9, 9)


def test_refuses_global_fields_and_bad_units():
    with pytest.raises(ValueError, match="covers the whole input"):
        draw_receptive_field(np.ones((4, 4)), ReceptiveField.whole(), (1, 1))
    with pytest.raises(ValueError, match=r"unit must lie in the layer's 2x2 output"):
        draw_receptive_field(np.ones((4, 4)), compose(ReceptiveField.input(), 3), (2, 2),
                             unit=(2, 0))
