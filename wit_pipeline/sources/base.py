"""The contract every source follows, and the base class the file-reading sources share.

A source lists its units of work (`shards`) and reads one unit as a stream of records (`read`).
A record is a dict keyed by the schema's field names (`wit_pipeline.schema.PAIR_FIELDS` at least:
uid, url, caption, source, source_id, page_url, license, image_path, width_hint, height_hint,
status, error) plus any extra columns the source declares (`extra_columns`). A malformed input
line is a record too, with status `malformed_record` and an error that says where and what, never
an exception and never a skip.

`Source` is the whole contract the engines use; a class that subclasses it explicitly gets the
defaults of `extra_columns`, `origin` and `identity`. `files.FileSource` adds what a source over input
files holds: its paths, its config and one shard per file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import pyarrow as pa

from wit_pipeline import schema


@dataclass(frozen=True)
class SourceShard:
    """One unit of work: which input, and which part of it (row range, byte range, record range)."""

    shard_id: int
    path: str
    start: int = 0
    stop: int | None = None
    options: tuple = field(default_factory=tuple)


class Source(Protocol):
    """What an engine needs from a source. Instances pickle cheaply: no open files, no models."""

    # The `--source` name, written on each record and in run.json.
    name: str

    def shards(self) -> list[SourceShard]:
        """The units of work, in a deterministic order (same input, same list, on every engine)."""
        ...

    def read(self, shard: SourceShard) -> Iterator[dict]:
        """Stream the records of one unit; never loads the whole input into memory."""
        ...

    def extra_columns(self, shard: SourceShard) -> dict[str, pa.DataType]:
        """The columns beyond the schema that this shard's records carry and the stages keep
        (name: Arrow type). Other keys a source puts on its records are bookkeeping, not written."""
        return {}

    def origin(self, shard: SourceShard) -> str:
        """The input file the shard's records come from, as the user named it (where a shard is
        read from a staged copy, the original), for messages about that input."""
        return shard.path

    def identity(self) -> dict[str, Any]:
        """What the run's run.json records of the source: a rerun into the same folder with
        another identity is refused and the differing keys named."""
        return {"source": self.name, "inputs": None, "source_config": None}


def make_record(
    url,
    caption,
    source: str,
    source_id=None,
    page_url=None,
    license=None,
    image_path=None,
    status: str = schema.OK,
    error: str | None = None,
    width_hint: int | None = None,
    height_hint: int | None = None,
) -> dict:
    """A record of the pair fields with its uid computed; the single way sources build records."""
    return {
        "uid": schema.uid(url, caption),
        "url": url,
        "caption": caption,
        "source": source,
        "source_id": None if source_id is None else str(source_id),
        "page_url": page_url,
        "license": license,
        "image_path": image_path,
        "width_hint": width_hint,
        "height_hint": height_hint,
        "status": schema.check_status(status),
        "error": error,
    }
