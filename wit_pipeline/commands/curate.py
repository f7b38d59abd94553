"""`wit curate CONFIG.toml`: ingest -> balance -> download -> dedup -> reshard (-> train) as one job.

The file is the flags written down (see stage_flags.py):

    output = "out"                 # the run folder; every stage reads the folder of the one before
    engine = "local"               # or "beam", "spark"; also processes, spark_master, spark_python,
                                   # beam_args = ["--runner=DataflowRunner", ...]
    [ingest]                       # keys: `wit ingest`'s long flag names, dashes as underscores
    source = "coco"
    input = "captions_train2017.json"
    [download]
    image_size = 256
    [train]                        # optional: `wit train`'s keys; shards OUT/final, run OUT/train

`--engine`, `--processes`, `--spark-master`, `--spark-python` and Beam flags after `--` override
the file. One engine is built and serves every stage.

A stage that finished is skipped on a rerun: after each stage `OUT/curate/<stage>.json` records
the flags it ran with. If the file's table changed since, curate stops and names the keys;
`--force STAGE` removes that stage's output and every later stage's, and redoes them. Inside a
stage the shards' completion markers make a killed run resume where it stopped.
"""

from __future__ import annotations

import argparse
import json
import logging

from wit_pipeline.cli import UsageError
from wit_pipeline.commands.stage_flags import STAGE_COMMANDS as STAGES
from wit_pipeline.stats import STAGE_FOLDERS as DATA_STAGE_FOLDERS

log = logging.getLogger("wit")

# The folder under OUT that each stage writes (and --force removes).
STAGE_FOLDERS = {**DATA_STAGE_FOLDERS, "train": "train"}
CURATE_FOLDER = "curate"


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "curate",
        help="run every stage from one config file (resumes; skips finished stages)",
        description="Run ingest, balance, download, dedup and reshard (and train, with a [train] table) "
        "as one job from CONFIG.toml, on one engine. Beam runner flags go after a bare --.",
    )
    parser.add_argument("config_file", metavar="CONFIG.toml")
    from wit_pipeline.commands.stage_flags import add_engine_flags

    add_engine_flags(parser)
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved configuration, every default filled in, and stop",
    )
    parser.add_argument(
        "--force",
        choices=STAGES + ("train",),
        metavar="STAGE",
        help="redo STAGE and every stage after it (their outputs are removed first)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from wit_pipeline.config import ConfigError, load_toml

    if args.config:
        raise UsageError("give the config file as the argument: wit curate CONFIG.toml")
    args.config = args.config_file
    try:
        data = load_toml(args.config_file)
        plan = stage_plan(data, args.config_file)
    except ConfigError as err:
        raise UsageError(str(err)) from err
    if args.print_config:
        print(render_config(data, args, plan), end="")
        return 0
    from wit_pipeline.commands.stage_flags import build_engine

    engine = build_engine(args)
    try:
        for stage, stage_args in plan:
            run_one(stage, stage_args, engine, data["output"], args.force)
    finally:
        engine.close()
    print_report(data["output"])
    return 0


def print_report(output: str) -> None:
    """Write OUT/report.html, then print the run's funnel in one line and the report's path."""
    from wit_pipeline.report import funnel_line, read_funnel, write_report

    path = write_report(output)
    print(funnel_line(read_funnel(output)))
    print(f"report: {path}")


def stage_plan(data: dict, path: str) -> list[tuple[str, argparse.Namespace]]:
    """Each stage to run, with the flags it runs with (its table, its folders)."""
    from wit_pipeline.cli import build_parser, subcommand_parsers
    from wit_pipeline.commands.stage_flags import TOP_LEVEL_KEYS, table_tokens
    from wit_pipeline.config import ConfigError
    from wit_pipeline.io import join

    output = data.get("output")
    if not isinstance(output, str) or not output:
        raise ConfigError(f'{path}: give the run folder at the top level: output = "OUT"')
    unknown = sorted(key for key in data if key not in TOP_LEVEL_KEYS and key not in STAGES + ("train",))
    if unknown:
        raise ConfigError(
            f"{path}: unknown key {', '.join(unknown)} (known: {', '.join(TOP_LEVEL_KEYS)}, "
            f"and the tables [{'], ['.join(STAGES + ('train',))}])"
        )
    parsers = subcommand_parsers(build_parser())
    folders = {
        "ingest": ["--output", output],
        "balance": [output],
        "download": ["--output", output, "--input", join(output, "balance")],
        "dedup": [output],
        "reshard": [output],
    }
    plan = []
    for stage in STAGES:
        tokens = table_tokens(parsers[stage], stage, data.get(stage, {}))
        stage_args = _parse(parsers[stage], stage, tokens + folders[stage])
        stage_args.config, stage_args.passthrough = None, []
        plan.append((stage, stage_args))
    if "train" in data:
        plan.append(("train", _train_args(parsers["train"], path, output)))
    return plan


def _parse(parser: argparse.ArgumentParser, stage: str, argv: list[str]) -> argparse.Namespace:
    from wit_pipeline.config import ConfigError

    # argparse reports a bad value by exiting; the file's [stage] table is what the user must fix.
    original = parser.error

    def error(message):
        raise ConfigError(f"[{stage}] {message}")

    parser.error = error  # type: ignore[method-assign]  # argparse has no other hook for its errors
    try:
        return parser.parse_args(argv)
    finally:
        parser.error = original  # type: ignore[method-assign]


def _train_args(parser, path: str, output: str) -> argparse.Namespace:
    from wit_pipeline.io import join

    args = _parse(
        parser, "train", ["--config", path, "--shards", join(output, "final"), "--output", join(output, "train")]
    )
    args.passthrough = []
    return args


def resolved_table(stage: str, stage_args: argparse.Namespace) -> dict:
    """The stage's table with every default filled in (the keys a file may set)."""
    from wit_pipeline.cli import build_parser, subcommand_parsers
    from wit_pipeline.commands.stage_flags import table_keys

    if stage == "train":
        from training.config import load_train_toml, resolve_config

        overrides = {
            **load_train_toml(stage_args.config_file),
            "shards": stage_args.shards,
            "output": stage_args.output,
        }
        resolved = resolve_config(overrides).to_dict()
        return {key: value for key, value in sorted(resolved.items()) if key not in ("shards", "output")}
    parser = subcommand_parsers(build_parser())[stage]
    table = {}
    for key, action in sorted(table_keys(parser, stage).items()):
        value = getattr(stage_args, action.dest, None)
        table[key] = list(value) if isinstance(value, (list, tuple)) else value
    return table


def run_one(stage: str, stage_args: argparse.Namespace, engine, output: str, force: str | None) -> None:
    from wit_pipeline import io

    order = STAGES + ("train",)
    record_path = io.join(io.join(output, CURATE_FOLDER), f"{stage}.json")
    wanted = json.loads(json.dumps(resolved_table(stage, stage_args), default=str))
    if force is not None and order.index(stage) >= order.index(force):
        io.remove(io.join(output, STAGE_FOLDERS[stage]), recursive=True)
        io.remove(record_path, recursive=True)
    found = io.read_json(record_path)
    if found is not None:
        if found == wanted:
            print(f"{stage}: finished earlier with the same settings; skipped")
            return
        changed = sorted(key for key in set(found) | set(wanted) if found.get(key) != wanted.get(key))
        raise UsageError(
            f"[{stage}] changed since the stage ran ({', '.join(changed)}); "
            f"rerun with --force {stage} to redo it and the stages after it"
        )
    log.info("curate: %s starts on the %s engine", stage, engine.name)
    _run_stage(stage, stage_args, engine)
    io.makedirs(io.join(output, CURATE_FOLDER))
    io.write_atomic(record_path, io.json_bytes(wanted))


def _run_stage(stage: str, stage_args: argparse.Namespace, engine) -> None:
    import importlib

    module = importlib.import_module(f"wit_pipeline.commands.{stage}")
    if stage == "train":
        module.run(stage_args)  # the trainer runs in this process (torchrun for several GPUs)
    else:
        module.run_stage(stage_args, engine)


def render_config(data: dict, args: argparse.Namespace, plan) -> str:
    """The resolved configuration as TOML: the top level (flags applied), then every stage's table."""
    from wit_pipeline.commands.stage_flags import engine_config
    from wit_pipeline.config import ConfigError, to_dict

    try:
        engine = to_dict(engine_config(args, data))
    except ConfigError as err:
        raise UsageError(str(err)) from err
    lines = [f"output = {_toml(data['output'])}"]
    lines += [f"{key} = {_toml(value)}" for key, value in engine.items() if value is not None]
    for stage, stage_args in plan:
        lines.append(f"\n[{stage}]")
        for key, value in resolved_table(stage, stage_args).items():
            lines.append(f"{key} = {_toml(value)}" if value is not None else f"# {key} = (not set)")
    return "\n".join(lines) + "\n"


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "inf" if value == float("inf") else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    return json.dumps(str(value))
