"""The `juanji` command: parse arguments, build from the registries, call library code.

Each command family lives in its own module with a `register(subcommands)` function that adds
its sub-parsers and sets `run=<function(args)>`. COMMAND_MODULES is the explicit list.
Errors reach the user as one line on stderr (no traceback) with a non-zero exit code.
"""

import argparse
import importlib
import sys

COMMAND_MODULES = [
    "juanji.cli.train",
    "juanji.cli.analysis",
    "juanji.cli.viz",
]

# Exceptions that mean "the user asked for something that cannot be done": shown as one line.
USER_ERRORS = (ValueError, KeyError, FileNotFoundError, OSError, TypeError)


class CLIError(Exception):
    """A user-facing error with its one-line message."""


def build_parser():
    parser = argparse.ArgumentParser(
        prog="juanji", description="Train, inspect and draw convolutional neural networks."
    )
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subcommands)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        result = args.run(args)
    except KeyboardInterrupt:
        print("juanji: interrupted", file=sys.stderr)
        return 130
    except (CLIError, *USER_ERRORS) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"juanji {args.command}: error: {message}", file=sys.stderr)
        return 1
    return 0 if result is None else int(result)


def main_exit():
    """Console-script entry point: exit with main()'s status."""
    sys.exit(main())
