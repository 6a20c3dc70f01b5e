"""Memory checks: available memory, the refusal message, and trace/summary refusing a batch."""

import re

import pytest

from juanji import memory
from juanji.analysis import summary
from juanji.analysis.trace import forward_bytes, trace
from juanji.models import MODELS

GIB = 2**30

MEMINFO = """MemTotal:       65838372 kB
MemFree:         1230000 kB
MemAvailable:   20055332 kB
Buffers:          123456 kB
"""

# simple_convnet on 1x28x28, per sample (see test_summary.test_simple_convnet_by_hand):
# input 784 floats, leaf outputs 2 x 17280 + 2 x 4320 + 2 x 100 + 10 floats, and the float64
# draw of the input (8 bytes per value) before it is cast to float32
PER_SAMPLE = 4 * 784 + 4 * (2 * 17280 + 2 * 4320 + 2 * 100 + 10) + 8 * 784


@pytest.fixture
def available(monkeypatch):
    """Set the available memory the checks see."""
    def set_to(nbytes):
        monkeypatch.setattr(memory, "available_bytes", lambda: nbytes)
    return set_to


def test_parse_meminfo():
    assert memory.parse_meminfo(MEMINFO) == 20055332 * 1024
    assert memory.parse_meminfo("MemTotal: 100 kB\n") is None


def test_cgroup_headroom(tmp_path):
    assert memory.cgroup_headroom(tmp_path) is None  # no cgroup v2 files
    (tmp_path / "memory.max").write_text("max\n")
    (tmp_path / "memory.current").write_text("1000\n")
    assert memory.cgroup_headroom(tmp_path) is None  # no limit
    (tmp_path / "memory.max").write_text("4096\n")
    assert memory.cgroup_headroom(tmp_path) == 3096


def test_available_bytes_on_this_machine():
    available = memory.available_bytes()
    assert isinstance(available, int) and available > 0


def test_human_bytes():
    assert memory.human_bytes(512) == "512 B"
    assert memory.human_bytes(1536) == "1.50 KiB"
    assert memory.human_bytes(3 * GIB) == "3.00 GiB"
    assert memory.human_bytes(2**50) == "1.00 PiB"


def test_check_fits(available):
    available(8 * GIB)
    memory.check_bytes(8 * GIB, "exactly enough")
    with pytest.raises(ValueError, match=re.escape(
            "a thing would need 8.00 GiB, have 8.00 GiB available; try less")):
        memory.check_bytes(8 * GIB + 1, "a thing", "try less")
    available(None)  # unknown: never refuse
    memory.check_bytes(2**60, "anything")


def test_small_requests_are_never_refused(available):
    available(0)  # MemAvailable can read 0 for a moment on a busy machine
    memory.check_bytes(memory.ALWAYS_ALLOWED, "a small thing")
    with pytest.raises(ValueError, match="would need 16.00 MiB, have 0 B available"):
        memory.check_bytes(memory.ALWAYS_ALLOWED + 1, "a larger thing")


def test_forward_bytes_is_input_plus_leaf_outputs():
    tr = trace(MODELS["simple_convnet"](), (1, 28, 28))
    assert forward_bytes(tr) == PER_SAMPLE - 8 * 784


def test_summary_refuses_a_batch_that_cannot_fit(available):
    available(8 * GIB)
    with pytest.raises(ValueError, match=re.escape(
            "tracing SimpleConvNet on a batch of 100000 x [1, 28, 28] (178.76 KiB of input and "
            "activations per sample) would need 17.05 GiB, have 8.00 GiB available; use a "
            "smaller batch size")):
        summary(MODELS["simple_convnet"](), (1, 28, 28), batch_size=100_000)
    assert PER_SAMPLE * 100_000 / GIB == pytest.approx(17.05, abs=0.005)


def test_estimate_is_exactly_the_scaled_batch_one_trace(available):
    """At exactly the estimate the summary runs; one byte less and it is refused."""
    model = MODELS["simple_convnet"]()
    batch = 100  # 17.5 MiB, above memory.ALWAYS_ALLOWED
    available(batch * PER_SAMPLE)
    s = summary(model, (1, 28, 28), batch_size=batch)
    assert s.batch_size == batch and s.rows[0].output_shape == (batch, 30, 24, 24)
    available(batch * PER_SAMPLE - 1)
    with pytest.raises(ValueError, match="would need"):
        summary(model, (1, 28, 28), batch_size=batch)


def test_batch_one_checks_the_input(available):
    available(8 * GIB)
    # 1 x 100000 x 100000 values: a float64 draw and a float32 copy, 12 bytes each
    with pytest.raises(ValueError, match=re.escape(
            "a random input of shape [1, 1, 100000, 100000] would need 111.76 GiB, have "
            "8.00 GiB available; use a smaller batch or input size")):
        trace(MODELS["simple_convnet"](), (1, 100_000, 100_000))


def test_a_failing_forward_is_reported_with_the_batch_asked_for(available):
    available(8 * GIB)
    model = MODELS["simple_convnet"]()  # sized for 28x28
    with pytest.raises(ValueError, match=re.escape(
            "SimpleConvNet cannot run on an input of shape [4, 1, 28, 30]")):
        trace(model, (1, 28, 30), batch_size=4)
