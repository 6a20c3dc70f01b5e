"""lr_sequence and plot_lr_schedule: values, untouched training state, a real PNG."""

import os
import re

import numpy as np
import pytest
from matplotlib.image import imread

from juanji.nn import Parameter
from juanji.optim import SGD
from juanji.optim import lr_scheduler as sched
from juanji.viz.schedules import lr_sequence, plot_lr_schedule


def _optimizer():
    params = [Parameter(np.zeros(2, np.float32)), Parameter(np.zeros(2, np.float32))]
    return SGD([{"params": [params[0]]}, {"params": [params[1]], "lr": 0.01}], lr=0.1,
               momentum=0.9)


def test_sequence_from_a_factory():
    lrs = lr_sequence(lambda opt: sched.StepLR(opt, step_size=3, gamma=0.5), 7, lr=1.0)
    assert lrs == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25]


def test_sequence_from_a_scheduler_leaves_it_and_its_optimizer_as_they_were():
    optimizer = _optimizer()
    scheduler = sched.OneCycleLR(optimizer, max_lr=[0.1, 0.01], total_steps=50)
    scheduler.step()
    before_groups = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
    before_epoch = scheduler.last_epoch
    lrs = lr_sequence(scheduler, 40, group=1)
    assert len(lrs) == 40 and lrs[0] == before_groups[1]["lr"]
    assert max(lrs) == pytest.approx(0.01)
    assert scheduler.last_epoch == before_epoch
    after_groups = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
    assert after_groups == before_groups


def test_plateau_needs_metrics():
    optimizer = _optimizer()
    plateau = sched.ReduceLROnPlateau(optimizer, patience=1)
    lrs = lr_sequence(plateau, 6, metrics=[1.0, 1.0, 1.0, 1.0, 1.0])
    assert lrs == pytest.approx([0.1, 0.1, 0.1, 0.01, 0.01, 0.001])  # cut after 2 bad steps
    with pytest.raises(ValueError, match=re.escape(
            "ReduceLROnPlateau needs metrics with at least steps - 1 = 5 values; got None")):
        lr_sequence(plateau, 6)


def test_bad_arguments():
    with pytest.raises(ValueError, match=re.escape("steps must be an int >= 1; got steps=0")):
        lr_sequence(lambda opt: sched.StepLR(opt, 2), 0)
    with pytest.raises(TypeError, match="scheduler must be an LRScheduler or a function"):
        lr_sequence(object(), 5)


def test_plot_writes_a_png_with_a_visible_curve(tmp_path):
    path = tmp_path / "cosine.png"
    factory = lambda opt: sched.CosineAnnealingWarmRestarts(opt, T_0=20, T_mult=2)
    returned = plot_lr_schedule(factory, 150, str(path))
    assert returned == str(path)
    with open(path, "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    pixels = imread(str(path))  # (H, W, 4) floats
    assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert pixels.std() > 0.01 and np.unique(pixels.reshape(-1, pixels.shape[2]), axis=0).size > 8
    assert [name for name in os.listdir(tmp_path)] == ["cosine.png"]  # no temporary left


def test_plot_of_several_groups_replaces_an_existing_file(tmp_path):
    path = tmp_path / "cyclic.png"
    path.write_bytes(b"old")
    scheduler = sched.CyclicLR(_optimizer(), base_lr=[0.01, 0.001], max_lr=[0.1, 0.01],
                               step_size_up=10)
    plot_lr_schedule(scheduler, 60, str(path), title="two groups")
    assert imread(str(path)).std() > 0.01
