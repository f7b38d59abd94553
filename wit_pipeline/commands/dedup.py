"""`wit dedup OUT`: exact and near duplicates by pHash, eval-set decontamination."""

from __future__ import annotations

import argparse

from wit_pipeline.commands.stage_flags import add_config_flags, load_section, resolve_folders


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "dedup",
        help="drop exact and near-duplicate images (pHash) and eval-set overlaps",
        description=(
            "Read the Parquet sidecars of the finished raw shards (OUT/raw), find exact duplicates "
            "(sha256) and near duplicates (pHash within --radius), keep one image per cluster (the "
            "largest original, then the smallest uid) and write OUT/dedup/keep.parquet, "
            "clusters.parquet and dedup_stats.json."
        ),
    )
    parser.add_argument("out", nargs="?", help="the run folder: reads OUT/raw, writes OUT/dedup")
    parser.add_argument("--input", help="raw shard folder (default OUT/raw)")
    parser.add_argument("--output", help="output folder (default OUT/dedup)")
    parser.add_argument("--radius", type=int, help="Hamming radius on the 64-bit pHash (default 4)")
    parser.add_argument("--bands", type=int, help="pHash bands, >= radius + 1 (default: chosen by size)")
    parser.add_argument("--max-bucket", type=int, help="band bucket size above which only neighbours are compared (default 1024)")
    parser.add_argument(
        "--decontaminate",
        metavar="PATH",
        help="evaluation set (an image folder, or a folder of our shards): training images within "
        "the radius of one are dropped as eval_overlap",
    )
    parser.add_argument("--partial", action="store_true",
                        help="use only the finished raw shards of an unfinished download (default: refuse)")
    add_config_flags(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from wit_pipeline.config import DedupConfig

    input_folder, output_folder = resolve_folders(args, "raw", "dedup")
    config = load_section(
        args, DedupConfig, "dedup", radius=args.radius, bands=args.bands, max_bucket=args.max_bucket
    )
    _check_path(args.decontaminate)
    from wit_pipeline import claim, shards

    _guarded(shards.check_finished, input_folder, args.partial)
    _guarded(claim.claim, output_folder, {"stage": "dedup", "input": claim.location(input_folder)})
    if args.engine == "beam":
        from beam_jobs.dedup import run_pipeline

        stats = _guarded(run_pipeline, input_folder, output_folder, config, args.decontaminate, args.passthrough)
    else:
        from wit_pipeline.dedup.stage import run_local

        stats = _guarded(run_local, input_folder, output_folder, config, args.decontaminate)
    print(
        f"dedup: {stats['rows_ok']} ok rows -> {stats['kept']} kept; "
        f"{stats['exact_duplicates']} exact and {stats['near_duplicates']} near duplicates, "
        f"{stats['eval_overlaps']} eval overlaps; wrote {output_folder}"
    )
    return 0


def _check_path(path: str | None) -> None:
    import fsspec

    from wit_pipeline.cli import UsageError

    if path is not None:
        fs, fs_path = fsspec.core.url_to_fs(path)
        if not fs.isdir(fs_path):
            raise UsageError(f"--decontaminate {path}: not a folder")


def _guarded(function, *args):
    from wit_pipeline.cli import UsageError
    from wit_pipeline.shards import InputError

    try:
        return function(*args)
    except InputError as err:
        raise UsageError(str(err)) from err
