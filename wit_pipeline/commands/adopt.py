"""`wit adopt I2D_FOLDER --output OUT`: an img2dataset download becomes OUT/raw, without refetching."""

from __future__ import annotations

import argparse

from wit_pipeline.cli import print_stats_funnel
from wit_pipeline.commands.stage_flags import absolute_paths, add_engine_flags, set_stage_run


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "adopt",
        help="turn an img2dataset download (webdataset output) into OUT/raw for dedup, reshard, report, train",
        description=(
            "Read img2dataset's shards as they are (NNNNN.tar, NNNNN.parquet, NNNNN_stats.json), compute "
            "each row's uid and each stored image's sha256 and pHash from its bytes (no download), and "
            "write OUT/raw in wit's layout with completion markers. Shards img2dataset did not finish "
            "are left out and named; a rerun adopts only what is missing."
        ),
    )
    parser.add_argument("input", metavar="I2D_FOLDER", help="img2dataset's output_folder (output_format='webdataset')")
    parser.add_argument("--output", required=True, help="the run folder: writes OUT/raw")
    add_engine_flags(parser)
    set_stage_run(parser, run_stage)


def run_stage(args: argparse.Namespace, engine) -> dict:
    from wit_pipeline import adopt

    absolute_paths(args)
    stats = adopt.run(engine, args.output, args.input)
    print_stats_funnel(stats)
    if stats["unfinished_source_shards"]:
        print(
            f"  left out unfinished img2dataset shards (no _stats.json): {', '.join(stats['unfinished_source_shards'])}"
        )
    print(f"  {stats['shards']} shards in {args.output}/raw")
    return stats
