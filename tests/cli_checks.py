"""Shared checks for command-line tests: run `juanji` in-process, and the one-line error."""

from juanji.cli import main


def run(capsys, *argv):
    """(exit status, stdout, stderr) of `juanji *argv` run in this process."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *fragments):
    """A failed command said what went wrong in one line, without a traceback."""
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
