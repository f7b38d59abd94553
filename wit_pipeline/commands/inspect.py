"""`wit inspect PATH`: counts by status, schema and the first samples of a shard, sidecar or folder."""

from __future__ import annotations

import argparse
import json

from wit_pipeline.cli import positive_int


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "inspect",
        help="show what a tar shard, a Parquet sidecar, a stage folder or a run folder holds",
        description=(
            "Print the row count, the counts by status, the schema and the first samples of PATH: a "
            "WebDataset tar, a Parquet file, a stage folder (ingest/, balance/, raw/, dedup/, final/) or "
            "a whole run folder (then also every stage's funnel). --json prints the same as one JSON object."
        ),
    )
    parser.add_argument("path", help="a .tar shard, a .parquet file, a stage folder or a run folder")
    parser.add_argument("--n", type=positive_int, default=10, help="samples to show (default 10)")
    parser.add_argument("--status", metavar="REASON", help="only samples with this status (ok, http_404, ...)")
    parser.add_argument("--grep", metavar="WORD", help="only samples whose caption or URL holds WORD (any case)")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts instead of tables")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from wit_pipeline.inspect import Filters, inspect_path

    found = inspect_path(args.path, Filters(n=args.n, status=args.status, grep=args.grep))
    if args.json:
        print(json.dumps(found.to_json(), default=str))
    else:
        show(found)
    return 0


def show(found) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    console.print(f"[bold]{found.path}[/bold]: {found.kind}, {found.rows:,} rows in {found.files} file(s)", markup=True)
    if found.funnel:
        funnel = Table(title="funnel", title_justify="left")
        for column in ("stage", "rows in", "kept", "dropped"):
            funnel.add_column(column, justify="right" if column in ("rows in", "kept") else "left")
        for stage, stats in found.funnel.items():
            if stats is None:
                funnel.add_row(stage, "-", "-", "not run")
            else:
                dropped = ", ".join(f"{k}: {v:,}" for k, v in stats["dropped"].items()) or "none"
                funnel.add_row(stage, f"{stats['rows_in']:,}", f"{stats['kept']:,}", dropped)
        console.print(funnel)
    if found.statuses:
        statuses = Table(title="rows by status", title_justify="left")
        statuses.add_column("status")
        statuses.add_column("rows", justify="right")
        for status, count in found.statuses.items():
            statuses.add_row(status, f"{count:,}")
        console.print(statuses)
    if found.schema:
        console.print("schema: " + ", ".join(f"{name} {kind}" for name, kind in found.schema), markup=False)
    if found.note:
        console.print(found.note, markup=False)
    console.print(samples_table(found.samples))


def samples_table(samples: list[dict]):
    from rich.table import Table

    table = Table(title=f"first {len(samples)} samples", title_justify="left", show_lines=False)
    columns = [
        c
        for c in ("uid", "status", "caption", "url", "error", "width", "height")
        if any(s.get(c) is not None for s in samples)
    ]
    for column in columns:
        table.add_column(column, overflow="fold", max_width=16 if column == "uid" else None)
    for sample in samples:
        # Captions and URLs are web text: shown as plain text, never read as rich markup.
        table.add_row(*[_plain(sample.get(column)) for column in columns])
    return table


def _plain(value):
    from rich.text import Text

    return Text("" if value is None else str(value))
