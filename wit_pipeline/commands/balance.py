"""`wit balance OUT`: MetaCLIP balancing of OUT/ingest into OUT/balance."""

from __future__ import annotations

import sys

from wit_pipeline.cli import UsageError, print_stats_funnel
from wit_pipeline.commands.stage_flags import absolute_paths, add_engine_flags, config_from_flags, set_stage_run
from wit_pipeline.config import BalanceConfig, field_default


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "balance",
        help="at most ~t pairs per query entry: OUT/ingest -> OUT/balance",
        description="Count matches per entry over OUT/ingest, keep a pair if any of its entries' "
        "seeded draws is below t / max(count, t) (MetaCLIP); write OUT/balance and entry_counts.parquet.",
    )
    parser.add_argument("output", metavar="OUT", nargs="?", help="the folder `wit ingest --output` wrote")
    parser.add_argument(
        "--t",
        type=int,
        default=field_default(BalanceConfig, "t"),
        help="the per-entry cap (default %(default)s, CLIP's)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=field_default(BalanceConfig, "seed"),
        help="seed of the per-(pair, entry) draws (default %(default)s)",
    )
    parser.add_argument(
        "--keep-unmatched",
        action="store_true",
        help="keep pairs that match no entry (default: drop them as no_query_match)",
    )
    add_engine_flags(parser)
    set_stage_run(parser, run_stage)


def run_stage(args, engine) -> dict:
    absolute_paths(args)
    from wit_pipeline.balance import stage as balance

    if args.output is None:
        raise UsageError("give the run folder OUT (or `output` in --config)")
    config = config_from_flags(args, BalanceConfig, t=args.t, seed=args.seed, keep_unmatched=args.keep_unmatched)
    try:
        summary = balance.run(engine, args.output, config)
    except FileNotFoundError as err:
        raise UsageError(str(err)) from err
    print_stats_funnel(summary)
    if summary["dropped"].get("no_query_match") and not summary["kept"]:
        print(
            "  every pair matched no query entry: ingest with --metadata ENTRIES.json (from `wit metadata "
            "build`) to match captions, or balance with --keep-unmatched to keep them",
            file=sys.stderr,
        )
    print(f"  entries matched: {summary['entries_matched']}, capped at t={config.t}: {summary['entries_capped']}")
    return summary
