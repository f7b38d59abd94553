"""`wit reshard OUT`: the kept samples into shuffled final shards of a fixed size."""

from __future__ import annotations

import argparse
import os

from wit_pipeline.commands.stage_flags import add_config_flags, load_section, resolve_folders


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "reshard",
        help="write the kept samples as shuffled final WebDataset shards with a manifest",
        description=(
            "Read the raw shards (OUT/raw) and the keep list (OUT/dedup/keep.parquet) and write "
            "OUT/final/NNNNN.tar + .parquet of exactly --samples-per-shard samples (the last may "
            "hold fewer), shuffled with --seed, and OUT/final/manifest.json."
        ),
    )
    parser.add_argument("out", nargs="?", help="the run folder: reads OUT/raw and OUT/dedup, writes OUT/final")
    parser.add_argument("--input", help="raw shard folder (default OUT/raw)")
    parser.add_argument("--keep", help="keep list (default OUT/dedup/keep.parquet)")
    parser.add_argument("--output", help="output folder (default OUT/final)")
    parser.add_argument("--samples-per-shard", type=int, help="samples per final shard (default 10000)")
    parser.add_argument("--seed", type=int, help="shuffle seed (default 0)")
    parser.add_argument(
        "--processes", type=int, default=min(4, os.cpu_count() or 1), help="local engine worker processes"
    )
    parser.add_argument("--partial", action="store_true",
                        help="use only the finished raw shards of an unfinished download (default: refuse)")
    add_config_flags(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import fsspec

    from wit_pipeline.cli import UsageError
    from wit_pipeline.config import ReshardConfig
    from wit_pipeline.shards import InputError, check_finished, join

    input_folder, output_folder = resolve_folders(args, "raw", "final")
    keep_path = args.keep or (join(args.out, "dedup/keep.parquet") if args.out else None)
    if keep_path is None:
        raise UsageError("give the run folder OUT, or --keep with --input and --output")
    fs, fs_path = fsspec.core.url_to_fs(keep_path)
    if not fs.exists(fs_path):
        raise UsageError(f"keep list {keep_path} not found: run `wit dedup` first")
    config = load_section(
        args, ReshardConfig, "reshard", samples_per_shard=args.samples_per_shard, seed=args.seed
    )
    stage_folders = {"download": input_folder}
    if args.out:
        # The manifest records how every stage that made these shards was configured.
        stage_folders = {"ingest": join(args.out, "ingest"), "balance": join(args.out, "balance"),
                         "download": input_folder, "dedup": join(args.out, "dedup")}
    else:
        stage_folders["dedup"] = keep_path.rsplit("/", 1)[0]
    from wit_pipeline import claim

    try:
        check_finished(input_folder, args.partial)
        # Reshard rewrites its folder whole: only ever a folder it made from the same raw shards.
        claim.claim(output_folder, {"stage": "reshard", "input": claim.location(input_folder),
                                    "keep": claim.location(keep_path)})
        if args.engine == "beam":
            from beam_jobs.reshard import run_pipeline

            manifest = run_pipeline(input_folder, keep_path, output_folder, config, stage_folders, args.passthrough)
        else:
            from wit_pipeline.reshard import run_local

            manifest = run_local(input_folder, keep_path, output_folder, config, args.processes, stage_folders)
    except InputError as err:
        raise UsageError(str(err)) from err
    print(f"reshard: {manifest['samples']} samples in {len(manifest['shards'])} shards; wrote {output_folder}")
    return 0
