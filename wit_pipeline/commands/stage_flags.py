"""Flag handling shared by the stage commands: the engine flags, config files, run folders.

A config file is the flags written down. Its top level holds `output` and the engine
(`engine`, `processes`, `spark_master`, `spark_python`, `beam_args`); each stage's table is
named as its command and its keys are that command's long flag names with dashes as
underscores (`[download] image_size = 256`). `table_tokens` turns a table back into the flags it
stands for, so argparse checks types and choices of file values exactly as of typed ones, and a
flag given on the command line wins because it comes later.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Set as AbstractSet

from wit_pipeline.engines import ENGINE_NAMES

ENGINE_KEYS = ("engine", "processes", "spark_master", "spark_python", "beam_args")
TOP_LEVEL_KEYS = ("output",) + ENGINE_KEYS
STAGE_COMMANDS = ("ingest", "balance", "download", "dedup", "reshard")
# Keys a stage table never holds: the top level's, and the flags that name folders (each stage
# reads the folder of the stage before it; only [ingest] names its input).
_NOT_IN_TABLES = set(TOP_LEVEL_KEYS) | {"config", "help", "keep", "version", "verbose", "quiet"}


def add_engine_flags(parser: argparse.ArgumentParser) -> None:
    """`--engine`, `--processes`, `--spark-master`, `--spark-python` and `--config`: every stage's."""
    from wit_pipeline.cli import positive_int

    group = parser.add_argument_group("engine and configuration (the same on every stage; Beam flags go after --)")
    group.add_argument("--engine", choices=ENGINE_NAMES, help="local process pool (default), Apache Beam, or PySpark")
    group.add_argument(
        "--processes",
        type=positive_int,
        help="local worker processes; Spark's local[N]; Beam's local workers (default: CPU count)",
    )
    group.add_argument(
        "--spark-master",
        metavar="URL",
        help="Spark master for --engine spark: spark://HOST:7077, yarn, k8s://... (default local[PROCESSES])",
    )
    group.add_argument(
        "--spark-python",
        metavar="PATH",
        help="interpreter of Spark's Python workers; it must have wit installed (default: this one)",
    )
    group.add_argument(
        "--config", metavar="TOML", help="a wit config file: its top level and this command's table; flags override it"
    )


def engine_config(args: argparse.Namespace, top: dict | None = None):
    """EngineConfig from the config file's top level, then the flags, then Beam flags after --."""
    from wit_pipeline.config import EngineConfig, from_mapping

    values = {key: value for key, value in (top or {}).items() if key in ENGINE_KEYS}
    for key in ENGINE_KEYS[:-1]:
        if getattr(args, key, None) is not None:
            values[key] = getattr(args, key)
    if getattr(args, "passthrough", None):
        values["beam_args"] = list(args.passthrough)
    return from_mapping(EngineConfig, values)


def build_engine(args: argparse.Namespace):
    """The one engine a command runs on, from the shared flags (and its --config's top level)."""
    from wit_pipeline.cli import UsageError
    from wit_pipeline.config import ConfigError, load_toml
    from wit_pipeline.engines import build_engine as build

    try:
        top = load_toml(args.config) if getattr(args, "config", None) else {}
        return build(engine_config(args, top))
    except (ConfigError, ValueError) as err:
        raise UsageError(str(err)) from err


def run_on_engine(args: argparse.Namespace, run_stage) -> int:
    """A stage command's whole run: build its engine from the flags, run the stage, release the engine."""
    engine = build_engine(args)
    try:
        run_stage(args, engine)
    finally:
        engine.close()
    return 0


def set_stage_run(parser: argparse.ArgumentParser, run_stage) -> None:
    """The command runs `run_stage(args, engine)` on the one engine its flags build.

    `wit curate` calls the same `run_stage` with the engine it shares between stages.
    """
    parser.set_defaults(run=functools.partial(run_on_engine, run_stage=run_stage))


def add_partial_flag(parser: argparse.ArgumentParser) -> None:
    """`--partial`: a stage after download may read the finished raw shards of an unfinished one."""
    parser.add_argument(
        "--partial",
        action="store_true",
        help="use only the finished raw shards of an unfinished download (default: refuse)",
    )


def long_name(action: argparse.Action) -> str:
    """A flag's key in a config table: its long name, dashes as underscores."""
    return max(action.option_strings, key=len).lstrip("-").replace("-", "_")


def table_keys(parser: argparse.ArgumentParser, command: str) -> dict[str, argparse.Action]:
    """The keys the `[command]` table may hold, each with its flag."""
    keys = {}
    for action in parser._actions:
        if not action.option_strings:
            continue
        key = long_name(action)
        if key in _NOT_IN_TABLES or (key == "input" and command != "ingest"):
            continue
        keys[key] = action
    return keys


def table_tokens(
    parser: argparse.ArgumentParser, command: str, table: dict, skip: AbstractSet[str] = frozenset()
) -> list[str]:
    """The command-line flags that the `[command]` table stands for (keys in `skip` left out)."""
    from wit_pipeline.config import ConfigError

    if not isinstance(table, dict):
        raise ConfigError(f"[{command}] must be a table")
    keys = table_keys(parser, command)
    unknown = sorted(set(table) - set(keys))
    if unknown:
        raise ConfigError(
            f"[{command}] has no key {', '.join(unknown)} (its keys are wit {command}'s flags: "
            f"{', '.join(sorted(keys))})"
        )
    tokens: list[str] = []
    for key, value in table.items():
        if key in skip:
            continue
        action = keys[key]
        flag = max(action.option_strings, key=len)
        if isinstance(action, argparse.BooleanOptionalAction):
            tokens.append(flag if _boolean(command, key, value) else "--no-" + flag[2:])
        elif action.nargs == 0:  # store_true / store_false
            if _boolean(command, key, value) != (action.const is False):
                tokens.append(flag)
        elif isinstance(action, argparse._AppendAction):
            for item in value if isinstance(value, list) else [value]:
                tokens += [flag, _text(item)]
        elif isinstance(value, list):
            tokens += [flag, ",".join(_text(item) for item in value)]
        else:
            tokens += [flag, _text(value)]
    return tokens


def _boolean(command: str, key: str, value) -> bool:
    from wit_pipeline.config import ConfigError

    if not isinstance(value, bool):
        raise ConfigError(f"[{command}] {key} must be true or false, not {value!r}")
    return value


def _text(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def run_folder_action(parser: argparse.ArgumentParser) -> argparse.Action | None:
    """Where a command takes the run folder OUT: its positional OUT, or else its --output."""
    for action in parser._actions:
        if not action.option_strings and action.dest in ("out", "output"):
            return action
    for action in parser._actions:
        if "--output" in action.option_strings:
            return action
    return None


def with_config_file(parser: argparse.ArgumentParser, command: str, argv: list[str], config_path: str) -> list[str]:
    """`argv` (the command's own arguments) with the config file's flags put before them.

    The file's `output` fills the run folder only where argv gives none; a repeatable flag given
    on the command line replaces the file's list instead of adding to it.
    """
    from wit_pipeline.config import ConfigError, load_toml

    data = load_toml(config_path)
    stray = sorted(key for key, value in data.items() if not isinstance(value, dict) and key not in TOP_LEVEL_KEYS)
    if stray:
        raise ConfigError(
            f"{config_path}: unknown top-level key {', '.join(stray)} "
            f"(known: {', '.join(TOP_LEVEL_KEYS)} and one table per stage)"
        )
    given = {arg.split("=", 1)[0] for arg in argv if arg.startswith("--")}
    keys = table_keys(parser, command)
    skip = {
        key
        for key, action in keys.items()
        if isinstance(action, argparse._AppendAction) and given & set(action.option_strings)
    }
    tokens = table_tokens(parser, command, data.get(command, {}), skip)
    folder = run_folder_action(parser)
    output = data.get("output")
    if output is not None and folder is not None:
        if not folder.option_strings:
            if not _has_positional(parser, argv):
                return tokens + argv + [str(output)]
        elif not given & set(folder.option_strings):
            tokens += ["--output", str(output)]
    return tokens + argv


def _has_positional(parser: argparse.ArgumentParser, argv: list[str]) -> bool:
    try:
        namespace, _ = parser.parse_known_args(argv)
    except SystemExit:
        return False
    action = run_folder_action(parser)
    return action is not None and getattr(namespace, action.dest, None) is not None


# Flags that name a file or folder. Their local paths are made absolute by the entry point:
# Spark executors and Beam workers run in folders of their own, where a relative path is wrong.
PATH_FLAGS = ("output", "out", "input", "metadata", "lid_model", "image_root", "keep", "decontaminate", "blocklist")


def absolute_paths(args: argparse.Namespace) -> None:
    """Make every local path flag of `args` absolute (URLs such as gs://... stay as they are)."""
    import os

    def absolute(value):
        if isinstance(value, list):
            return [absolute(item) for item in value]
        if isinstance(value, str) and value and "://" not in value:
            return os.path.abspath(os.path.expanduser(value))
        return value

    for name in PATH_FLAGS:
        if getattr(args, name, None) is not None:
            setattr(args, name, absolute(getattr(args, name)))


def resolve_folders(args: argparse.Namespace, input_name: str, output_name: str) -> tuple[str, str]:
    """`--input`/`--output` when given, else OUT/<input_name> and OUT/<output_name>."""
    from wit_pipeline.cli import UsageError
    from wit_pipeline.io import join

    if args.out is None and (args.input is None or args.output is None):
        raise UsageError("give the run folder OUT, or both --input and --output")
    input_folder = args.input or join(args.out, input_name)
    output_folder = args.output or join(args.out, output_name)
    return input_folder, output_folder


def config_from_flags(args: argparse.Namespace, cls, **values):
    """Config `cls` from flag values; a ConfigError becomes the one-line usage error."""
    from wit_pipeline.cli import UsageError
    from wit_pipeline.config import ConfigError, from_mapping

    try:
        return from_mapping(cls, values)
    except ConfigError as err:
        raise UsageError(str(err)) from err
