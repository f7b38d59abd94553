"""`wit reshard OUT`: the kept samples into shuffled final shards of a fixed size."""

from __future__ import annotations

import argparse

from wit_pipeline.cli import print_funnel
from wit_pipeline.commands.stage_flags import (
    absolute_paths,
    add_engine_flags,
    add_partial_flag,
    config_from_flags,
    resolve_folders,
    set_stage_run,
)
from wit_pipeline.config import ReshardConfig, field_default


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
    parser.add_argument(
        "--samples-per-shard",
        type=int,
        default=field_default(ReshardConfig, "samples_per_shard"),
        help="samples per final shard (default %(default)s)",
    )
    parser.add_argument(
        "--seed", type=int, default=field_default(ReshardConfig, "seed"), help="shuffle seed (default %(default)s)"
    )
    add_partial_flag(parser)
    add_engine_flags(parser)
    set_stage_run(parser, run_stage)


def run_stage(args: argparse.Namespace, engine) -> dict:
    absolute_paths(args)
    from wit_pipeline import io
    from wit_pipeline.cli import UsageError
    from wit_pipeline.io import join
    from wit_pipeline.reshard import stage as reshard

    input_folder, output_folder = resolve_folders(args, "raw", "final")
    keep_path = args.keep or (join(args.out, "dedup/keep.parquet") if args.out else None)
    if keep_path is None:
        raise UsageError("give the run folder OUT, or --keep with --input and --output")
    if not io.exists(keep_path):
        raise UsageError(f"keep list {keep_path} not found: run `wit dedup` first")
    config = config_from_flags(args, ReshardConfig, samples_per_shard=args.samples_per_shard, seed=args.seed)
    stage_folders = None
    if not args.out:
        stage_folders = {"download": input_folder, "dedup": keep_path.rsplit("/", 1)[0]}
    manifest = reshard.run(
        engine,
        args.out,
        config,
        input_folder=input_folder,
        keep_path=keep_path,
        output_folder=output_folder,
        stage_folders=stage_folders,
        partial=args.partial,
    )
    stats = manifest["provenance"]
    print_funnel("reshard", manifest["samples"], manifest["samples"], {})
    print(
        f"  {len(manifest['shards'])} shards, {manifest['tar_bytes'] / 1e6:.1f} MB; wrote {output_folder} "
        f"in {stats['seconds']} s"
    )
    return manifest
