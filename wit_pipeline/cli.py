"""`wit`: one subcommand per stage. Entry point only: parses flags, builds configs, calls the library.

Each subcommand lives in `wit_pipeline/commands/<name>.py` and exposes `register(subparsers)`,
which adds its parser and sets `run(args) -> int`. Heavy imports happen inside `run`, so
`wit --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# One line per subcommand; the module's `register` defines its flags.
COMMANDS = [
    "wit_pipeline.commands.metadata",
    "wit_pipeline.commands.ingest",
    "wit_pipeline.commands.balance",
    "wit_pipeline.commands.download",
    "wit_pipeline.commands.dedup",
    "wit_pipeline.commands.reshard",
    "wit_pipeline.commands.report",
    "wit_pipeline.commands.inspect",
    "wit_pipeline.commands.adopt",
    "wit_pipeline.commands.train",
    "wit_pipeline.commands.eval",
]


class UsageError(Exception):
    """A bad flag value, a missing input or an unreadable file: reported in one line, exit 2."""


class OneLineErrorParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage dump), exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="wit",
        description="Curate CLIP-style image-text datasets: ingest, balance, download, dedup, reshard, train.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                       parser_class=OneLineErrorParser)
    for module_name in COMMANDS:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    # img2dataset imports albumentations, which otherwise checks the package index at import time.
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after a bare `--` goes to the engine untouched (Beam runner flags, for example).
    passthrough: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, passthrough = argv[:cut], argv[cut + 1 :]
    args = build_parser().parse_args(argv)
    args.passthrough = passthrough
    from wit_pipeline.shards import InputError

    try:
        return int(args.run(args) or 0)
    except (UsageError, InputError) as err:
        print(f"wit {args.command}: error: {err}", file=sys.stderr)
        return 2
    except FileNotFoundError as err:
        # A path the user gave that vanished or never existed, found only once the work started.
        print(f"wit {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"wit {args.command}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


def usage_errors(*error_types):
    """Decorator for a command's `run`: the given exception types become one-line UsageErrors."""

    def wrap(run):
        def guarded(args):
            try:
                return run(args)
            except error_types as err:
                raise UsageError(str(err)) from err

        return guarded

    return wrap


def print_funnel(stage: str, rows_in: int, kept: int, dropped: dict[str, int]) -> None:
    """The one summary every stage prints: rows in, rows kept, and each drop reason's count."""
    print(f"{stage}: {rows_in} rows in, {kept} kept")
    for reason, count in dropped.items():
        print(f"  dropped {reason}: {count}")


# argparse types for flag values: a bad value is rejected by argparse with the flag's name, exit 2.
def positive_int(text: str) -> int:
    value = _parse(int, text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text}")
    return value


def non_negative_int(text: str) -> int:
    value = _parse(int, text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, not {text}")
    return value


def positive_float(text: str) -> float:
    value = _parse(float, text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text}")
    return value


def _parse(kind, text):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a valid {kind.__name__}: {text!r}") from None


if __name__ == "__main__":
    sys.exit(main())
