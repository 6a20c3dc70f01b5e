"""juanji.ops.memory: the bytes an output needs against the memory available."""

import numpy as np
import pytest

from juanji.ops import memory


def test_output_bytes_is_elements_times_itemsize():
    assert memory.output_bytes((2, 3, 4), np.float32) == 96
    assert memory.output_bytes((2, 3, 4), np.float64) == 192
    assert memory.output_bytes((0, 3), np.float32) == 0
    assert memory.output_bytes((), np.int64) == 8


def test_check_fits_names_the_parameter_the_shape_and_both_sizes():
    with pytest.raises(ValueError, match=r"^padding=100000 would make a 200002x200002 output "
                                         r"\(149.01 GiB\); have 23.00 GiB$"):
        memory.check_fits((200002, 200002), np.float32, "padding=100000", available=23 << 30)
    memory.check_fits((1000, 1000), np.float32, "padding=1", available=4 * 10**6)  # just fits
    with pytest.raises(ValueError, match="weight"):
        memory.check_fits((10, 10), np.float32, "kernel_size=10", available=100, kind="weight")


def test_small_outputs_are_not_checked_against_the_machine(monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda: 0)
    memory.check_fits((1024, 1024), np.float32, "size=1024")  # 4 MiB: under ALWAYS_FITS
    with pytest.raises(ValueError, match="have 0 B"):
        memory.check_fits((1 << 16, 1 << 16), np.float32, "size=65536")  # 16 GiB


def test_unknown_available_memory_checks_nothing(monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda: None)
    memory.check_fits((1 << 20, 1 << 20), np.float32, "size=huge")


def test_available_bytes_reads_a_positive_number_on_this_machine():
    have = memory.available_bytes()
    assert have is None or have > 0
