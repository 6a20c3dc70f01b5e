"""`juanji train / eval / models` end to end on real Fashion-MNIST (small settings)."""

import json

import numpy as np
import pytest
from PIL import Image

from juanji.cli import main
from juanji.io.checkpoint import load_run

pytestmark = pytest.mark.data


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    code = main(["train", "--model", "simple_convnet", "--epochs", "1", "--limit", "1200",
                 "--batch-size", "100", "--out", str(out), "--name", "small", "--no-progress"])
    assert code == 0
    return out / "small"


def test_train_writes_a_complete_run_folder(small_run):
    names = {p.name for p in small_run.iterdir()}
    assert {"checkpoints", "run.json", "history.csv", "curves.png", "filters.png",
            "filters_initial.png"} <= names
    info = json.loads((small_run / "run.json").read_text())
    assert info["epoch"] == 1 and info["config"]["model"] == "simple_convnet"
    checkpoint = small_run / info["checkpoints"][0]["dir"]
    assert {p.name for p in checkpoint.iterdir()} == {"model.safetensors",
                                                      "optimizer.safetensors", "state.json"}
    assert 0.1 < info["history"][0]["test_acc"] <= 1.0
    pixels = np.asarray(Image.open(small_run / "curves.png").convert("L"))
    assert pixels.std() > 5  # a drawn plot, not a blank image
    assert (small_run / "history.csv").read_text().startswith("epoch,train_loss,train_acc")
    before = np.asarray(Image.open(small_run / "filters_initial.png").convert("L"))
    after = np.asarray(Image.open(small_run / "filters.png").convert("L"))
    assert before.std() > 5 and after.std() > 5
    assert before.shape == after.shape  # one tile per filter in both


def test_eval_reproduces_the_saved_accuracy(small_run, capsys):
    _, info = load_run(small_run)
    code, out, _ = run_cli(capsys, "eval", "--checkpoint", str(small_run))
    assert code == 0
    assert "200 images" in out  # the run's own test set (--limit 1200 -> 200 test images)
    saved = info["history"][-1]
    assert f"accuracy {saved['test_acc']:.4f}, loss {saved['test_loss']:.4f}" in out


def test_resume_continues_the_epoch_count(small_run, tmp_path, capsys):
    import shutil

    copy = tmp_path / "resumed"
    shutil.copytree(small_run, copy)
    code, out, _ = run_cli(capsys, "train", "--resume", str(copy), "--epochs", "2",
                           "--no-progress")
    assert code == 0
    info = json.loads((copy / "run.json").read_text())
    assert [r["epoch"] for r in info["history"]] == [1, 2]


def test_models_lists_the_registry(capsys):
    code, out, _ = run_cli(capsys, "models")
    assert code == 0
    assert "lenet5" in out and "61,706" in out and "simple_convnet" in out
    assert "11,689,512" in out and "138,357,544" in out  # resnet18, vgg16 (torchvision's)


@pytest.mark.parametrize("argv,match,status", [
    (["train", "--model", "nope", "--limit", "100"], "unknown model 'nope'", 1),
    (["eval", "--checkpoint", "/nonexistent/run"], "not a juanji run folder", 1),
])
def test_bad_input_is_one_line_without_traceback(capsys, argv, match, status):
    code, out, err = run_cli(capsys, *argv)
    assert code == status
    assert match in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("argv,match", [
    (["train", "--epochs", "0"], "argument --epochs: must be a finite number > 0; got 0"),
    (["train", "--lr", "inf"], "argument --lr: must be a finite number > 0; got inf"),
    (["train", "--momentum", "nan"], "argument --momentum: must be a finite number >= 0"),
    (["train", "--batch-size", "x"], "argument --batch-size: expected an integer; got 'x'"),
])
def test_bad_flag_values_are_usage_errors(capsys, argv, match):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2
    assert match in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_one_epoch_of_lenet5_reaches_84_percent(tmp_path, capsys):
    code, out, _ = run_cli(capsys, "train", "--epochs", "1", "--out", str(tmp_path),
                           "--name", "lenet", "--no-progress")
    assert code == 0
    info = json.loads((tmp_path / "lenet" / "run.json").read_text())
    assert info["history"][0]["test_acc"] >= 0.84, info["history"]


def test_optimizer_scheduler_and_regularisation_flags(tmp_path, capsys):
    code, out, err = run_cli(capsys, "train", "--model", "simple_convnet", "--epochs", "1",
                             "--limit", "600", "--batch-size", "100", "--optimizer", "sgd",
                             "--lr", "0.05", "--momentum", "0.9", "--weight-decay", "1e-4",
                             "--l1", "1e-4", "--scheduler", "onecycle", "--clip-grad", "1.0",
                             "--out", str(tmp_path), "--name", "flags", "--no-progress")
    assert code == 0, err
    info = json.loads((tmp_path / "flags" / "run.json").read_text())
    assert info["config"]["optimizer"] == "sgd" and info["config"]["l1"] == 1e-4
    assert info["optimizer"]["param_groups"][0]["momentum"] != 0.9  # onecycle cycles momentum
    assert "scheduler" in info


def test_lr_plot_draws_the_schedule(tmp_path, capsys):
    path = tmp_path / "lr.png"
    code, out, _ = run_cli(capsys, "lr-plot", "--scheduler", "cyclic", "--out", str(path))
    assert code == 0 and str(path) in out
    pixels = np.asarray(Image.open(path).convert("L"))
    assert pixels.std() > 5
    code, _, err = run_cli(capsys, "lr-plot", "--scheduler", "bogus")
    assert code == 1 and "unknown scheduler 'bogus'" in err
