"""`wit balance OUT`: MetaCLIP balancing of OUT/ingest into OUT/balance."""

from __future__ import annotations

import os
import sys

from wit_pipeline.cli import UsageError, print_funnel


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "balance",
        help="at most ~t pairs per query entry: OUT/ingest -> OUT/balance",
        description="Count matches per entry over OUT/ingest, keep a pair if any of its entries' "
        "seeded draws is below t / max(count, t) (MetaCLIP); write OUT/balance and entry_counts.parquet.",
    )
    parser.add_argument("output", metavar="OUT", help="the folder `wit ingest --output` wrote")
    parser.add_argument("--t", type=int, default=20_000, help="the per-entry cap (default 20000, CLIP's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the per-(pair, entry) draws")
    parser.add_argument("--keep-unmatched", action="store_true",
                        help="keep pairs that match no entry (default: drop them as no_query_match)")
    parser.add_argument("--engine", choices=("local", "beam"), default="local")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.set_defaults(run=run)


def run(args) -> int:
    from wit_pipeline.config import BalanceConfig, ConfigError

    try:
        config = BalanceConfig(t=args.t, seed=args.seed, keep_unmatched=args.keep_unmatched)
    except ConfigError as err:
        raise UsageError(str(err)) from err
    if args.processes < 1:
        raise UsageError("--processes must be >= 1")
    from wit_pipeline import claim, shards

    claim.claim(shards.join(args.output, "balance"),
                {"stage": "balance", "input": claim.location(shards.join(args.output, "ingest"))})
    try:
        if args.engine == "beam":
            from beam_jobs import balance as beam_balance

            summary = beam_balance.run(args.output, config, args.passthrough, args.processes)
        else:
            from wit_pipeline import balance

            summary = balance.run_local(args.output, config, args.processes)
    except FileNotFoundError as err:
        raise UsageError(str(err)) from err
    print_funnel("balance", summary["rows_in"], summary["kept"], summary["dropped"])
    if summary["dropped"].get("no_query_match") and not summary["kept"]:
        print("  every pair matched no query entry: ingest with --metadata ENTRIES.json (from `wit metadata "
              "build`) to match captions, or balance with --keep-unmatched to keep them", file=sys.stderr)
    print(f"  entries matched: {summary['entries_matched']}, capped at t={config.t}: {summary['entries_capped']}")
    return 0
