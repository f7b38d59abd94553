"""`wit dedup OUT`: exact and near duplicates by pHash, eval-set decontamination."""

from __future__ import annotations

import argparse

from wit_pipeline.cli import print_stats_funnel
from wit_pipeline.commands.stage_flags import (
    absolute_paths,
    add_engine_flags,
    add_partial_flag,
    config_from_flags,
    resolve_folders,
    set_stage_run,
)
from wit_pipeline.config import DedupConfig, field_default


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "dedup",
        help="drop exact and near-duplicate images (pHash) and eval-set overlaps",
        description=(
            "Read the Parquet sidecars of the finished raw shards (OUT/raw), find exact duplicates "
            "(sha256) and near duplicates (pHash within --radius), keep one image per cluster (the "
            "largest original, then the smallest uid) and write OUT/dedup/keep.parquet, "
            "clusters.parquet and stats.json."
        ),
    )
    parser.add_argument("out", nargs="?", help="the run folder: reads OUT/raw, writes OUT/dedup")
    parser.add_argument("--input", help="raw shard folder (default OUT/raw)")
    parser.add_argument("--output", help="output folder (default OUT/dedup)")
    parser.add_argument(
        "--radius",
        type=int,
        default=field_default(DedupConfig, "radius"),
        help="Hamming radius on the 64-bit pHash (default %(default)s)",
    )
    parser.add_argument("--bands", type=int, help="pHash bands, >= radius + 1 (default: chosen by size)")
    parser.add_argument(
        "--max-bucket",
        type=int,
        default=field_default(DedupConfig, "max_bucket"),
        help="band bucket size above which only neighbours are compared (default %(default)s)",
    )
    parser.add_argument(
        "--decontaminate",
        metavar="PATH",
        help="evaluation set (an image folder, or a folder of our shards): training images within "
        "the radius of one are dropped as eval_overlap",
    )
    add_partial_flag(parser)
    add_engine_flags(parser)
    set_stage_run(parser, run_stage)


def run_stage(args: argparse.Namespace, engine) -> dict:
    absolute_paths(args)
    from wit_pipeline.dedup import stage

    input_folder, output_folder = resolve_folders(args, "raw", "dedup")
    config = config_from_flags(args, DedupConfig, radius=args.radius, bands=args.bands, max_bucket=args.max_bucket)
    _check_path(args.decontaminate)
    stats = stage.run(
        engine,
        args.out,
        config,
        decontaminate=args.decontaminate,
        input_folder=input_folder,
        output_folder=output_folder,
        partial=args.partial,
    )
    print_stats_funnel(stats)
    print(f"  {stats['clusters_of_two_or_more']} clusters of two or more; wrote {output_folder}")
    return stats


def _check_path(path: str | None) -> None:
    from wit_pipeline import io
    from wit_pipeline.cli import UsageError

    if path is not None:
        if not io.is_dir(path):
            raise UsageError(f"--decontaminate {path}: not a folder")
