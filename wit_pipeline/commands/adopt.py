"""`wit adopt I2D_FOLDER --output OUT`: an img2dataset download becomes OUT/raw, without refetching."""

from __future__ import annotations

import argparse
import os

from wit_pipeline.cli import positive_int, print_funnel


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
    parser.add_argument("--processes", type=positive_int, default=min(4, os.cpu_count() or 1),
                        help="worker processes (default: up to 4)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from wit_pipeline.adopt import run_local

    totals = run_local(args.input, args.output, args.processes)
    statuses = dict(totals["statuses"])
    kept = statuses.pop("ok", 0)
    print_funnel("adopt", totals.get("rows", 0), kept, statuses)
    if totals["unfinished_source_shards"]:
        print(f"  left out unfinished img2dataset shards (no _stats.json): {', '.join(totals['unfinished_source_shards'])}")
    print(f"  {totals.get('shards', 0)} shards in {args.output}/raw")
    return 0
