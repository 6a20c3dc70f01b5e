"""The `juanji` command: parse arguments, build from the registries, call library code.

Each command family lives in its own module with a `register(subcommands)` function that adds
its sub-parsers and sets `run=<function(args)>`. COMMAND_MODULES is the explicit list.

Errors: a user error is one line on stderr, no traceback, exit status 2 for usage (a bad flag
or flag value, CLIError(usage=True)) and 1 for anything that went wrong at run time. User
errors are CLIError, a checkpoint error, an OSError from a system call (a file the user named),
a MemoryError, and a ValueError, TypeError, KeyError or OSError raised by a `raise` statement
of juanji's own checks. Any other exception
is a bug in juanji: it is shown as an internal error with its traceback and a request to report
it, exit status 70. `--debug` (or JUANJI_DEBUG=1) shows the traceback of every error.
"""

import argparse
import dis
import importlib
import os
import sys
import traceback
from pathlib import Path

COMMAND_MODULES = [
    "juanji.cli.train",
    "juanji.cli.analysis",
    "juanji.cli.viz",
    "juanji.cli.onnx",
    "juanji.cli.predict",
]

_PACKAGE_DIR = Path(__file__).resolve().parent.parent
_RAISE = dis.opmap["RAISE_VARARGS"]


class CLIError(Exception):
    """A user-facing error with its one-line message; `usage=True` exits 2, else 1."""

    def __init__(self, message, usage=False):
        super().__init__(message)
        self.usage = usage


class Parser(argparse.ArgumentParser):
    """argparse with usage errors on one line (the full usage stays in --help)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser():
    parser = Parser(
        prog="juanji", description="Train, inspect and draw convolutional neural networks."
    )
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of every error (also JUANJI_DEBUG=1)")
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subcommands)
    return parser


def is_user_error(exc):
    """True for an error the user can fix from its message (see the module docstring)."""
    from juanji.io.checkpoint import CheckpointError

    if isinstance(exc, (CLIError, CheckpointError, MemoryError)):
        return True
    if isinstance(exc, OSError) and exc.errno is not None:
        return True  # a system call on a path the user gave failed
    if isinstance(exc, (ValueError, TypeError, KeyError, OSError)):
        return _raised_by_juanji_check(exc)
    return False


def _raised_by_juanji_check(exc):
    """True when a `raise` statement in juanji's own code raised `exc`: one of its argument
    checks. The same exception type raised by NumPy, by another library or by a bug in juanji
    (a failed lookup, a wrong call) is not a user error."""
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code
    if not Path(code.co_filename).resolve().is_relative_to(_PACKAGE_DIR):
        return False
    return code.co_code[tb.tb_lasti] == _RAISE  # the instruction that raised it


def user_message(exc):
    """The one line shown for a user error."""
    if isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror}"
    if isinstance(exc, MemoryError):
        return f"out of memory{': ' + str(exc) if str(exc) else ''}; try a smaller batch or input"
    return str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # for a command that relaunches
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    debug = args.debug or os.environ.get("JUANJI_DEBUG", "") not in ("", "0")
    try:
        result = args.run(args)
    except KeyboardInterrupt:
        print("juanji: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if not is_user_error(exc):
            traceback.print_exc()
            print(f"juanji {args.command}: internal error: {type(exc).__name__}: {exc}\n"
                  "This is a bug in juanji, not in what you asked for; please report it with "
                  "the command and the traceback above.", file=sys.stderr)
            return 70
        if debug:
            traceback.print_exc()
        print(f"juanji {args.command}: error: {user_message(exc)}", file=sys.stderr)
        return 2 if getattr(exc, "usage", False) else 1
    return 0 if result is None else int(result)


def main_exit():
    """Console-script entry point: exit with main()'s status. Over MPI a failing rank ends the
    whole job (the other ranks would otherwise wait for it forever)."""
    status = main()
    if status and _under_mpi():
        from juanji import distributed

        distributed.abort(status, "the command failed on this rank (see above)")
    sys.exit(status)


def _under_mpi():
    from juanji import distributed

    return distributed.launched() and distributed.world_size() > 1
