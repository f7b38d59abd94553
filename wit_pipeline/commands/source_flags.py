"""The sources' command-line flags, and the one way parsed flags become a source.

Sources are library code: each takes its frozen config dataclass and knows nothing of argparse.
Here each source that has settings gets its flags (their defaults read from its config dataclass,
so a default is written once) and the function that turns the parsed flags into its constructor's
keywords. `wit ingest` adds the flags of every registered source, `wit download` the URL-list
flags alone. The registry (`wit_pipeline.sources.SOURCES`) is looked up here and nowhere else in
the commands. A source's module is imported only when its flags are added or it is built, and a
source whose parser library is not installed adds no flags (it fails only when it is asked for).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wit_pipeline import sources
from wit_pipeline.cli import UsageError, positive_int
from wit_pipeline.config import field_default
from wit_pipeline.io import join
from wit_pipeline.sources.base import Source


@dataclass(frozen=True)
class SourceFlags:
    """A source's flags: `add` puts them on a parser; `options` turns the parsed flags into the
    keywords its class is built with (its config, and what else it needs, such as a folder)."""

    add: Callable[[argparse.ArgumentParser], None]
    options: Callable[[argparse.Namespace], dict[str, Any]]


# -- URL lists (wit ingest --source urls, wit download) ---------------------------------------


def add_url_list_flags(parser: argparse.ArgumentParser) -> None:
    """The URL-list flags, shared by `wit download` and `wit ingest --source urls`."""
    from wit_pipeline.sources.urls import FORMATS, UrlListConfig

    group = parser.add_argument_group("URL-list input")
    group.add_argument(
        "--url-col",
        default=field_default(UrlListConfig, "url_col"),
        help="URL column (default url; also accepts img2dataset's URL)",
    )
    group.add_argument(
        "--caption-col",
        default=field_default(UrlListConfig, "caption_col"),
        help="caption column (default caption; also accepts img2dataset's TEXT)",
    )
    group.add_argument("--keep-cols", default="", help="comma-separated input columns to carry into the output")
    group.add_argument("--input-format", choices=list(FORMATS), help="input format (default: from the file name)")
    group.add_argument(
        "--shard-size",
        type=positive_int,
        default=field_default(UrlListConfig, "shard_size"),
        help="rows per shard (default %(default)s)",
    )


def url_list_config(args: argparse.Namespace):
    """The UrlListConfig of the URL-list flags."""
    from wit_pipeline.sources.urls import UrlListConfig

    return UrlListConfig(
        url_col=args.url_col,
        caption_col=args.caption_col,
        keep_cols=tuple(c.strip() for c in args.keep_cols.split(",") if c.strip()),
        shard_size=args.shard_size,
        input_format=args.input_format,
    )


def _url_list_options(args: argparse.Namespace) -> dict[str, Any]:
    # Text-format lists are staged as Parquet shards under the run folder; a rerun reuses them.
    return {"config": url_list_config(args), "staging_dir": join(args.output, "_staging/urls")}


# -- COCO, YFCC100M, WARC ----------------------------------------------------------------------


def _add_coco_flags(parser: argparse.ArgumentParser) -> None:
    from wit_pipeline.sources.coco import CocoConfig

    parser.add_argument(
        "--coco-captions",
        choices=("each", "first", "join"),
        default=field_default(CocoConfig, "captions"),
        help="COCO: a pair per caption, the image's first caption, or all joined",
    )
    parser.add_argument(
        "--coco-url-field",
        choices=("coco_url", "flickr_url"),
        default=field_default(CocoConfig, "url_field"),
        help="COCO: which image URL becomes the pair's url",
    )
    parser.add_argument(
        "--image-root",
        default=None,
        metavar="DIR",
        help="COCO: read images from DIR/<file_name> instead of fetching them",
    )


def _coco_options(args: argparse.Namespace) -> dict[str, Any]:
    from wit_pipeline.sources.coco import CocoConfig

    # --image-root is a path flag: the entry point has made it absolute (see stage_flags.PATH_FLAGS),
    # because records carry image_path to stages that may run in another folder or on workers.
    config = CocoConfig(captions=args.coco_captions, url_field=args.coco_url_field, image_root=args.image_root)
    return {"config": config}


def _add_yfcc_flags(parser: argparse.ArgumentParser) -> None:
    from wit_pipeline.sources.yfcc import YfccConfig

    parser.add_argument(
        "--yfcc-caption",
        choices=("title", "description", "both"),
        default=field_default(YfccConfig, "caption"),
        help="YFCC: caption from the title, the description, or both",
    )


def _yfcc_options(args: argparse.Namespace) -> dict[str, Any]:
    from wit_pipeline.sources.yfcc import YfccConfig

    return {"config": YfccConfig(caption=args.yfcc_caption)}


def _add_warc_flags(parser: argparse.ArgumentParser) -> None:
    from wit_pipeline.sources.warc import WarcConfig

    parser.add_argument(
        "--srcset",
        choices=("src", "largest"),
        default=field_default(WarcConfig, "srcset"),
        help="WARC: the image URL from <img src>, or the largest srcset candidate",
    )


def _warc_options(args: argparse.Namespace) -> dict[str, Any]:
    from wit_pipeline.sources.warc import WarcConfig

    return {"config": WarcConfig(srcset=args.srcset)}


# The sources with settings; one missing here (wat) has no flags and is built from its paths alone.
SOURCE_FLAGS: dict[str, SourceFlags] = {
    "urls": SourceFlags(add_url_list_flags, _url_list_options),
    "coco": SourceFlags(_add_coco_flags, _coco_options),
    "yfcc": SourceFlags(_add_yfcc_flags, _yfcc_options),
    "warc": SourceFlags(_add_warc_flags, _warc_options),
}


# -- the registry ------------------------------------------------------------------------------


def source_names() -> list[str]:
    """The `--source` values: the names in `wit_pipeline.sources.SOURCES`."""
    return sorted(sources.SOURCES)


def add_source_flags(parser: argparse.ArgumentParser) -> None:
    """The flags of every registered source that has settings (for `wit ingest`).

    Two sources defining one flag is a bug, and argparse raises it here.
    """
    for name in source_names():
        flags = SOURCE_FLAGS.get(name)
        if flags is None:
            continue
        try:
            flags.add(parser)
        except ImportError:
            continue  # the source's parser is not installed: it fails only when asked for


def check_source_name(name: str) -> None:
    """A UsageError that lists the known sources unless `name` is registered."""
    names = source_names()
    if name not in names:
        raise UsageError(f"unknown --source {name!r} (known: {', '.join(names) or 'none are installed'})")


def build_source(name: str, args: argparse.Namespace, paths: list[str]) -> Source:
    """The source registered as `name`, reading `paths` with the settings of its flags."""
    check_source_name(name)
    flags = SOURCE_FLAGS.get(name)
    options = flags.options(args) if flags is not None else {}
    return sources.source_class(name)(paths, **options)
