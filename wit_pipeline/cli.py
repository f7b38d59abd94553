"""`wit`: one subcommand per stage. Entry point only: parses flags, builds configs, calls the library.

Each subcommand lives in `wit_pipeline/commands/<name>.py` and exposes `register(subparsers)`,
which adds its parser and sets `run(args) -> int`. Heavy imports happen inside `run`, so
`wit --help` stays fast.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys

from wit_pipeline.errors import UserError

# One line per subcommand; the module's `register` defines its flags.
COMMANDS = [
    "wit_pipeline.commands.curate",
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


class UsageError(UserError):
    """A bad flag value, a missing input or an unreadable file: reported in one line, exit 2.

    The one user-error type: commands raise it (or a library error that `main` maps to it), and
    `main` alone catches it and prints it.
    """


class OneLineErrorParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage dump), exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="wit",
        description="Curate CLIP-style image-text datasets: ingest, balance, download, dedup, reshard, train.",
    )
    from wit_pipeline.stats import wit_version

    parser.add_argument("--version", action="version", version=f"wit {wit_version()}")
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", action="store_true", help="log a line per shard and more (DEBUG)")
    verbosity.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    subparsers = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=OneLineErrorParser
    )
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
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args)
    from wit_pipeline.commands.stage_flags import STAGE_COMMANDS, with_config_file

    try:
        if args.command in STAGE_COMMANDS and args.config:
            # The file's table becomes flags put before the typed ones, so typed flags win.
            command_parser = subcommand_parsers(parser)[args.command]
            at = argv.index(args.command)
            argv = argv[: at + 1] + with_config_file(command_parser, args.command, argv[at + 1 :], args.config)
            args = parser.parse_args(argv)
        args.passthrough = passthrough
        return int(args.run(args) or 0)
    except UserError as err:  # the one user-error type: UsageError, ConfigError, InputError
        print(f"wit {args.command}: error: {err}", file=sys.stderr)
        return 2
    except FileNotFoundError as err:
        # A path the user gave that vanished or never existed, found only once the work started.
        print(f"wit {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        if err.errno not in _STORAGE_ERRORS:
            raise
        # A full disk or a folder wit may not write: the user's to fix, then the same command resumes.
        where = err.filename or _output_folder(args)
        print(
            f"wit {args.command}: error: {err.strerror or err} writing {where}; no shard was marked "
            f"finished half-written: make room (or make it writable) and rerun the same command to resume",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print(f"wit {args.command}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    finally:
        from wit_pipeline import claim

        claim.release_all()  # the output folders' single-writer locks end with the command


_STORAGE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def _output_folder(args: argparse.Namespace) -> str:
    """The run folder a command writes, for messages about it."""
    if getattr(args, "config_file", None) and args.command == "curate":
        from wit_pipeline.config import load_toml

        return str(load_toml(args.config_file).get("output", "the output folder"))
    return str(getattr(args, "out", None) or getattr(args, "output", None) or "the output folder")


def subcommand_parsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """{command name: its parser}."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def configure_logging(args: argparse.Namespace) -> None:
    """INFO by default (a line per stage and per shard), DEBUG with -v, WARNING with -q."""
    import logging

    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    # Libraries below us talk a lot at INFO; our own logger carries the per-shard lines.
    for name in ("py4j", "apache_beam", "urllib3", "fsspec", "asyncio"):
        logging.getLogger(name).setLevel(max(level, logging.WARNING))


def print_funnel(stage: str, rows_in: int, kept: int, dropped: dict[str, int]) -> None:
    """The one summary every stage prints: rows in, rows kept, and each drop reason's count."""
    print(f"{stage}: {rows_in} rows in, {kept} kept")
    for reason, count in dropped.items():
        print(f"  dropped {reason}: {count}")


def print_stats_funnel(stats: dict) -> None:
    """The funnel of a stage's stats, in the shape every stage's stats.json has."""
    print_funnel(stats["stage"], stats["rows_in"], stats["kept"], stats["dropped"])


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
