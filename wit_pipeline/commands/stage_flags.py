"""Flag handling shared by the stage commands: run folders, engine choice, config sections."""

from __future__ import annotations

import argparse


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """`--engine` and `--config`, the same on every stage command."""
    parser.add_argument("--engine", choices=("local", "beam"), default="local", help="default local")
    parser.add_argument("--config", metavar="TOML", help="a wit config file; flags override its values")


def resolve_folders(args: argparse.Namespace, input_name: str, output_name: str) -> tuple[str, str]:
    """`--input`/`--output` when given, else OUT/<input_name> and OUT/<output_name>."""
    from wit_pipeline.cli import UsageError
    from wit_pipeline.shards import join

    if args.out is None and (args.input is None or args.output is None):
        raise UsageError("give the run folder OUT, or both --input and --output")
    input_folder = args.input or join(args.out, input_name)
    output_folder = args.output or join(args.out, output_name)
    return input_folder, output_folder


def load_section(args: argparse.Namespace, cls, section: str, **overrides):
    """Config `cls` from the `[section]` table of `--config` (if given), then non-None flags."""
    from wit_pipeline.cli import UsageError
    from wit_pipeline.config import ConfigError, from_mapping, load_toml

    try:
        values = dict(load_toml(args.config).get(section, {})) if args.config else {}
        values.update({name: value for name, value in overrides.items() if value is not None})
        return from_mapping(cls, values)
    except ConfigError as err:
        raise UsageError(str(err)) from err
