"""`wit report OUT`: write OUT/report.html, the run at a glance, from whatever stages OUT holds."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "report",
        help="write OUT/report.html: funnel, distributions, duplicates and samples of a run",
        description=(
            "Build one self-contained HTML page (charts and thumbnails embedded, no script, nothing "
            "loaded from the network) from the stage outputs in OUT: the funnel of every stage, caption "
            "languages and lengths, entry counts before and after balancing, download statuses, "
            "throughput and failing hosts, image sizes, duplicate clusters, and sample grids. A partial "
            "run gives a partial report that names the stages still missing."
        ),
    )
    parser.add_argument("out", help="the run folder (holds ingest/, balance/, raw/, dedup/, final/)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from wit_pipeline.report import funnel_line, read_funnel, write_report

    path = write_report(args.out)
    print(funnel_line(read_funnel(args.out)))
    print(f"report: {path}")
    return 0
