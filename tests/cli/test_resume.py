"""Checkpoints as transactions and exact resume, tested with real faults.

Every run here trains simple_convnet on a slice of Fashion-MNIST. "Equal" means the model and
optimizer files of the newest checkpoint are byte-identical and the history agrees in every
field except the timings.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from juanji.cli import main
from juanji.io.checkpoint import CheckpointError, load_run, open_checkpoint, read_run_info

pytestmark = pytest.mark.data
ROOT = Path(__file__).resolve().parents[2]
# 2400 images in batches of 40: 60 steps per epoch, checkpoints every 7 steps inside an epoch
ARGS = ["--model", "simple_convnet", "--limit", "2400", "--batch-size", "40",
        "--save-every", "7", "--no-progress"]
TIMINGS = ("seconds", "images_per_s")


def train(out, name, *extra):
    code = main(["train", *ARGS, "--out", str(out), "--name", name, *extra])
    assert code == 0
    return Path(out) / name


def newest(run_dir):
    folder, state = open_checkpoint(run_dir)
    history = [{k: v for k, v in r.items() if k not in TIMINGS} for r in state["history"]]
    return {"model": (folder / "model.safetensors").read_bytes(),
            "optimizer": (folder / "optimizer.safetensors").read_bytes(),
            "history": history, "epoch": state["epoch"], "step": state["step"],
            "trainer": {k: v for k, v in state["trainer"].items()}}


def assert_same_run(a, b):
    a, b = newest(a), newest(b)
    assert (a["epoch"], a["step"]) == (b["epoch"], b["step"])
    assert a["history"] == b["history"]
    assert a["trainer"] == b["trainer"]
    assert a["model"] == b["model"], "weights differ"
    assert a["optimizer"] == b["optimizer"], "optimizer state differs"


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """Two epochs without a stop: the reference every resumed run must equal."""
    return train(tmp_path_factory.mktemp("full"), "full", "--epochs", "2")


def spawn(out, name, *extra):
    command = [sys.executable, "-m", "juanji", "train", *ARGS, "--out", str(out),
               "--name", name, *extra]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_checkpoint_inside_epoch(process, run_dir, epoch, timeout=120):
    """Poll run.json until a checkpoint inside epoch `epoch + 1` is committed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        try:
            info = json.loads((run_dir / "run.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            info = {}
        if info.get("epoch") == epoch and info.get("step", 0) > 0:
            return info
        time.sleep(0.005)
    process.kill()
    pytest.fail("no checkpoint inside the epoch appeared in time")


def test_kill_9_inside_an_epoch_then_resume_is_bit_identical(uninterrupted, tmp_path):
    process = spawn(tmp_path, "killed", "--epochs", "2")
    info = wait_for_checkpoint_inside_epoch(process, tmp_path / "killed", epoch=1)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert info["epoch"] == 1 and 0 < info["step"] < 60
    train_again = main(["train", "--resume", str(tmp_path / "killed"), "--no-progress"])
    assert train_again == 0
    assert_same_run(tmp_path / "killed", uninterrupted)


def test_sigterm_commits_the_current_step_and_resume_is_bit_identical(uninterrupted, tmp_path,
                                                                      capsys):
    process = spawn(tmp_path, "stopped", "--epochs", "2")
    wait_for_checkpoint_inside_epoch(process, tmp_path / "stopped", epoch=0)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM
    line = err.strip().splitlines()[-1]
    assert "stopped by SIGTERM at epoch 1 step" in line and "juanji train --resume" in line
    info = read_run_info(tmp_path / "stopped")
    assert info["epoch"] == 0 and info["step"] > 0  # the point it stopped at, inside epoch 1
    assert main(["train", "--resume", str(tmp_path / "stopped"), "--no-progress"]) == 0
    assert_same_run(tmp_path / "stopped", uninterrupted)


def test_truncated_latest_checkpoint_falls_back_to_the_previous_one(uninterrupted, tmp_path,
                                                                     capsys):
    run = tmp_path / "run"
    shutil.copytree(uninterrupted, run)
    info = read_run_info(run)
    latest, previous = info["checkpoints"]
    weights = run / latest["dir"] / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    # the previous checkpoint is inside epoch 2; resuming from it redoes the rest exactly
    assert previous["epoch"] == 1 and 0 < previous["step"] < 60
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    err = capsys.readouterr().err
    warning = [line for line in err.splitlines() if "damaged" in line]
    assert len(warning) == 1
    assert "model.safetensors does not match its sha256" in warning[0]
    assert f"using the previous checkpoint {run / previous['dir']}" in warning[0]
    assert_same_run(run, uninterrupted)


def test_files_that_disagree_are_detected(uninterrupted, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(uninterrupted, run)
    latest, previous = read_run_info(run)["checkpoints"]
    # the latest checkpoint's weights replaced by the previous checkpoint's
    shutil.copy(run / previous["dir"] / "model.safetensors",
                run / latest["dir"] / "model.safetensors")
    lines = []
    folder, state = open_checkpoint(run, warn=lines.append)
    assert folder == run / previous["dir"] and state["step"] == previous["step"]
    assert len(lines) == 1 and "does not match its sha256" in lines[0]
    # both damaged: nothing whole is left, and the error says what is wrong with each
    shutil.copy(run / latest["dir"] / "state.json", run / previous["dir"] / "state.json")
    with pytest.raises(CheckpointError, match="has no whole checkpoint"):
        open_checkpoint(run, warn=lines.append)


def test_crash_between_files_leaves_the_previous_checkpoint(uninterrupted, tmp_path,
                                                            monkeypatch):
    from juanji.io import checkpoint

    run = tmp_path / "run"
    shutil.copytree(uninterrupted, run)
    before = read_run_info(run)
    written = []

    def crash_after_first_file(path, data):
        if written:
            raise OSError(28, "No space left on device")
        written.append(path)
        Path(path).write_bytes(data)

    monkeypatch.setattr(checkpoint, "write_file_synced", crash_after_first_file)
    model, _ = load_run(run)
    with pytest.raises(OSError):
        checkpoint.save_run(run, model, before["config"], epoch=3, history=[{}] * 3)
    monkeypatch.undo()
    assert read_run_info(run) == before
    assert newest(run)["model"] == newest(uninterrupted)["model"]
    # the next commit cleans the half-written folder away
    checkpoint.save_run(run, model, before["config"], epoch=2, history=before["history"])
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert len(names) == 2 and not any(n.endswith(".tmp") for n in names)


@pytest.mark.parametrize("edit,match", [
    ({"epoch": 99}, "says epoch 99 step 0 but its latest checkpoint"),
    ({"epoch": "abc"}, "epoch must be an integer >= 0; got 'abc'"),
    ({"epoch": None}, "epoch must be an integer >= 0; got None"),
    ({"config": None}, "config must be an object naming the model"),
    ({"checkpoints": []}, "checkpoints must be a non-empty list"),
    ({"history": [{}]}, "history must be one record per finished epoch (2)"),
])
def test_hand_edited_run_json_is_refused(uninterrupted, tmp_path, capsys, edit, match):
    run = tmp_path / "run"
    shutil.copytree(uninterrupted, run)
    info = json.loads((run / "run.json").read_text())
    info.update(edit)
    (run / "run.json").write_text(json.dumps(info))
    code = main(["train", "--resume", str(run), "--epochs", "3", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and match in err, err
    assert len(err.strip().splitlines()) == 1


def test_fixed_flags_are_refused_on_resume(uninterrupted, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(uninterrupted, run)
    code = main(["train", "--resume", str(run), "--epochs", "3", "--batch-size", "64",
                 "--optimizer", "sgd", "--model", "simple_convnet"])
    err = capsys.readouterr().err
    assert code == 2
    assert "cannot change on --resume: --batch-size 64 (the run has 40)" in err
    assert "--optimizer 'sgd' (the run has 'adam')" in err
    assert "--model" not in err  # the same value as saved is fine
    assert read_run_info(run) == read_run_info(uninterrupted)


def test_extending_a_cosine_run_rebuilds_the_schedule(uninterrupted, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(uninterrupted, run)
    assert main(["train", "--resume", str(run), "--epochs", "3", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "changed: epochs 2 -> 3; the schedule is rebuilt" in out
    history = read_run_info(run)["history"]
    # cosine over 3 epochs, stepped twice: lr 0.002 * (1 + cos(2 pi / 3)) / 2 during epoch 3
    assert history[2]["lr"] == pytest.approx(0.002 * (1 + np.cos(2 * np.pi / 3)) / 2)
    assert history[2]["train_loss"] < history[1]["train_loss"] * 1.1


def test_extending_a_finished_onecycle_run_trains(tmp_path, capsys):
    run = train(tmp_path, "cycle", "--epochs", "1", "--scheduler", "onecycle",
                "--limit", "400")
    assert main(["train", "--resume", str(run), "--epochs", "2", "--no-progress"]) == 0
    info = read_run_info(run)
    assert info["epoch"] == 2 and info["history"][1]["lr"] > 0


def test_resume_of_a_finished_run_says_there_is_nothing_to_do(uninterrupted, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(uninterrupted, run)
    assert main(["train", "--resume", str(run)]) == 0
    assert "has finished 2 of 2 epochs; nothing to train" in capsys.readouterr().out


def test_resume_wants_the_run_folder(uninterrupted, capsys):
    weights = uninterrupted / read_run_info(uninterrupted)["checkpoints"][0]["dir"]
    code = main(["train", "--resume", str(weights / "model.safetensors")])
    err = capsys.readouterr().err
    assert code == 1 and "is a file; give the run folder that holds it" in err


def test_an_existing_run_is_not_overwritten(uninterrupted, capsys):
    code = main(["train", *ARGS, "--out", str(uninterrupted.parent), "--name", "full"])
    assert code == 1 and "already holds a run" in capsys.readouterr().err


def test_divergence_is_one_line_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    code = main(["train", "--model", "simple_convnet", "--limit", "400", "--batch-size", "40",
                 "--optimizer", "sgd", "--lr", "1e30", "--out", str(tmp_path), "--name", "d",
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and "training diverged" in err and "epoch 1 step" in err
    assert "nothing was saved" in err and len(err.strip().splitlines()) == 1


def test_eval_refuses_non_finite_weights(uninterrupted, tmp_path, capsys):
    from safetensors.numpy import load_file, save_file

    run = tmp_path / "run"
    shutil.copytree(uninterrupted, run)
    info = json.loads((run / "run.json").read_text())
    weights = run / info["checkpoints"][0]["dir"] / "model.safetensors"
    state = load_file(str(weights))
    state["conv1.weight"][0, 0, 0, 0] = np.nan
    save_file(state, str(weights))
    import hashlib

    info["checkpoints"][0]["files"]["model.safetensors"] = hashlib.sha256(
        weights.read_bytes()).hexdigest()
    (run / "run.json").write_text(json.dumps(info))
    code = main(["eval", "--checkpoint", str(run)])
    err = capsys.readouterr().err
    assert code == 1 and "conv1.weight holds 1 non-finite values" in err


def test_run_files_honour_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        run = train(tmp_path, "modes", "--epochs", "1", "--limit", "200")
    finally:
        os.umask(old)
    checkpoint = run / read_run_info(run)["checkpoints"][0]["dir"]
    for path in (run / "run.json", run / "history.csv", checkpoint / "model.safetensors"):
        assert path.stat().st_mode & 0o777 == 0o644, path


def test_internal_errors_are_not_disguised(monkeypatch, capsys):
    from juanji.cli import train as train_cli

    def buggy(*args, **kwargs):
        return {}["missing"]  # a programming error, not a user's mistake

    monkeypatch.setattr(train_cli, "load_data", buggy)
    code = main(["train", "--limit", "100"])
    err = capsys.readouterr().err
    assert code == 70
    assert "Traceback" in err and "internal error: KeyError" in err and "bug in juanji" in err
