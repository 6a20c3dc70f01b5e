"""Runs the bad-input catalogue (tests/reliability/catalogue.py): every case must be answered
with the catalogued error type (or CLI exit status) and a message naming what went wrong.

CLI cases run `juanji.cli.main` in-process: the expected status (2 usage, 1 runtime; never 70,
an internal error), exactly one line on stderr, no traceback, the words present. Library cases:
the catalogued exception, raised by juanji's own code (not a bare NumPy/Python error from deep
inside), with a short message holding the words.
"""

import dis
import shutil
from collections import Counter
from pathlib import Path

import pytest
from reliability.catalogue import AREAS, CASES, fake_fashion_mnist

import juanji
from juanji.cli import main

PACKAGE_DIR = Path(juanji.__file__).resolve().parent
RAISE = dis.opmap["RAISE_VARARGS"]
MIN_CASES = 150


def marks(case):
    if case.defect:
        return [pytest.mark.xfail(strict=True, reason=f"defect: {case.defect}")]
    if case.pending:
        return [pytest.mark.xfail(strict=False, reason=f"pending: {case.pending}")]
    return []


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """One small real run folder: simple_convnet, one epoch on 200 Fashion-MNIST-format images
    (random, written under tmp: the catalogue needs a run, not a good one)."""
    out = tmp_path_factory.mktemp("catalogue-runs")
    root = fake_fashion_mnist(out / "data")
    code = main(["train", "--model", "simple_convnet", "--limit", "200", "--batch-size", "50",
                 "--epochs", "1", "--data-root", str(root), "--out", str(out), "--name", "r",
                 "--no-progress"])
    assert code == 0
    return out / "r"


def run_cli(argv, capsys):
    capsys.readouterr()  # only what main() itself prints
    try:
        status = main(argv)
    except SystemExit as exc:  # argparse's usage errors
        status = exc.code
    return status, capsys.readouterr().err


def raised_by_juanji(exc):
    """True when a `raise` statement in juanji's own code raised `exc` (one of its checks), or
    `exc` is an OSError of a system call on a path (errno and filename set): not an error that
    NumPy, Pillow or Python raised from inside a juanji function."""
    if isinstance(exc, OSError) and exc.errno is not None and exc.filename is not None:
        return True
    tb = exc.__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code
    return (Path(code.co_filename).resolve().is_relative_to(PACKAGE_DIR)
            and code.co_code[tb.tb_lasti] == RAISE)


@pytest.mark.filterwarnings("ignore:.*they are broadcast:UserWarning")  # mse/l1 mismatches
@pytest.mark.parametrize("case", [pytest.param(c, marks=marks(c), id=f"{c.area}-{c.name}")
                                  for c in CASES])
def test_bad_input_is_refused_clearly(case, tmp_path, request, capsys):
    if case.run:
        shutil.copytree(request.getfixturevalue("trained_run"), tmp_path / "run")
    words = [w.format(tmp=tmp_path) for w in case.words]
    if case.is_cli:
        status, err = run_cli(case.call(tmp_path), capsys)
        assert "Traceback" not in err and "internal error" not in err, err
        assert status == case.error, err
        lines = err.strip().splitlines()
        assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{err}"
        message = lines[0]
    else:
        with pytest.raises(case.error) as info:
            case.call(tmp_path)
        message = str(info.value.args[0]) if isinstance(info.value, KeyError) else str(info.value)
        assert raised_by_juanji(info.value), f"raised outside juanji: {info.value!r}"
        assert len(message.splitlines()) <= 2, message
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"


def test_the_catalogue_is_large_and_well_formed():
    names = [(c.area, c.name) for c in CASES]
    assert len(set(names)) == len(names), "duplicate case names"
    for c in CASES:
        assert c.area in AREAS, c
        assert c.words, f"{c.name}: a case must name what the message contains"
        assert not (c.defect and c.pending), c
    counts = Counter(c.area for c in CASES)
    print("bad-input catalogue:", ", ".join(f"{a} {counts[a]}" for a in AREAS),
          f"total {len(CASES)}")
    assert all(counts[a] >= 10 for a in AREAS), counts
    assert len(CASES) >= MIN_CASES
