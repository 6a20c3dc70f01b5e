"""`juanji train` over MPI: the same command with and without `mpiexec -n 2` ends equal."""

import json

import numpy as np
import pytest

from juanji.cli import main
from juanji.io.checkpoint import load_run, read_run_info

pytestmark = pytest.mark.data
# 401 images in global batches of 41: shards of 21 and 20, and a short last batch of 32
ARGS = ["--model", "simple_convnet", "--limit", "401", "--batch-size", "41", "--optimizer",
        "sgd", "--lr", "0.05", "--momentum", "0.9", "--save-every", "4", "--no-progress"]


def weights(run):
    model, state = load_run(run)
    return model.state_dict(), state


def assert_close_runs(a, b):
    (wa, sa), (wb, sb) = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        np.testing.assert_allclose(wa[key], wb[key], rtol=1e-4, atol=1e-4, err_msg=key)
    assert [r["test_acc"] for r in sa["history"]] == [r["test_acc"] for r in sb["history"]]


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    out = tmp_path_factory.mktemp("one")
    assert main(["train", *ARGS, "--epochs", "2", "--out", str(out), "--name", "run"]) == 0
    return out / "run"


def test_two_ranks_equal_one_process(run_mpi, one_process, tmp_path):
    done = run_mpi(2, "-m", ["juanji", "train", *ARGS, "--epochs", "2", "--out", tmp_path,
                             "--name", "run"], timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("done: test accuracy") == 1  # rank 0 prints, rank 1 does not
    assert read_run_info(tmp_path / "run")["config"]["world_size"] == 2
    assert_close_runs(tmp_path / "run", one_process)


def test_a_two_rank_run_resumes_with_one_and_with_three(run_mpi, one_process, tmp_path):
    done = run_mpi(2, "-m", ["juanji", "train", *ARGS, "--epochs", "1", "--out", tmp_path,
                             "--name", "run"], timeout=120)
    assert done.returncode == 0, done.stderr
    run = tmp_path / "run"
    assert main(["train", "--resume", str(run), "--epochs", "2", "--no-progress"]) == 0
    assert_close_runs(run, one_process)
    info = json.loads((run / "run.json").read_text())
    assert info["config"]["world_size"] == 1
    done = run_mpi(3, "-m", ["juanji", "train", "--resume", run, "--epochs", "3",
                             "--no-progress"], timeout=120)
    assert done.returncode == 0, done.stderr
    assert read_run_info(run)["epoch"] == 3


def test_an_error_on_one_rank_ends_the_job(run_mpi, one_process):
    # the run folder exists: rank 0 refuses to overwrite it while rank 1 goes on
    done = run_mpi(2, "-m", ["juanji", "train", *ARGS, "--epochs", "1", "--out",
                             one_process.parent, "--name", "run"], timeout=30)
    assert done.returncode != 0
    assert "already holds a run" in done.stderr


def test_workers_relaunches_under_mpiexec(run_mpi, one_process, tmp_path, capfd):
    code = main(["train", *ARGS, "--epochs", "2", "--workers", "2", "--out", str(tmp_path),
                 "--name", "run"])
    assert code == 0
    assert "running 2 ranks:" in capfd.readouterr().out
    assert read_run_info(tmp_path / "run")["config"]["world_size"] == 2
    assert_close_runs(tmp_path / "run", one_process)
