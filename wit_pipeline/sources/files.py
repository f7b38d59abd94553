"""What the sources over input files share: the `FileSource` base (paths, config, a shard per
file), expanding inputs, opening them through fsspec, streaming lines, license and URL helpers.

Every path goes through fsspec, so local paths, `file://`, `gs://`, `s3://` and `http://` inputs all
work, and `.gz` / `.bz2` are decompressed on the fly from the file name. A stream that fails part-way
(a truncated gzip, a corrupt bz2 block, a dropped connection) raises one of `READ_ERRORS`; sources
turn that into an `unreadable_input` row that names the file and the point reached.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import zlib
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import fsspec

from wit_pipeline.io import expand
from wit_pipeline.sources.base import Source, SourceShard, make_record

# What a failing compressed or remote stream raises: gzip/bz2 raise EOFError when the data ends
# before the end-of-stream marker, BadGzipFile (an OSError) or zlib.error on corrupt data.
READ_ERRORS = (EOFError, OSError, zlib.error)


def expand_inputs(paths: list[str] | str) -> list[str]:
    """The input files named by `paths` (files, globs or folders), in a deterministic order.

    Each argument keeps its place; a glob or a folder expands to its files sorted by name. A path
    that matches nothing is an error that names it, not an empty run.
    """
    return expand(paths)


class FileSource(Source):
    """A source over input files (paths, globs or folders) read with a frozen config dataclass.

    A subclass sets `name` and `default_config` (None for a source without settings), annotates
    `config` with its config class, and implements `read`; it gets one shard per input file.
    """

    # The config used when none is given; frozen, so every instance may share it.
    default_config: ClassVar[Any] = None

    def __init__(self, paths: str | Sequence[str], config: Any = None):
        self.paths = [paths] if isinstance(paths, str) else list(paths)
        self.config = self.default_config if config is None else config

    def shards(self) -> list[SourceShard]:
        """A shard per input file, numbered in input order.

        Compressed files cannot be split without reading them, and the published inputs are already
        split at a useful grain (COCO per split, YFCC100M in 10 parts, Common Crawl ~1 GB WARC files).
        """
        return [SourceShard(shard_id=i, path=path) for i, path in enumerate(expand_inputs(self.paths))]

    def identity(self) -> dict[str, Any]:
        """The source's name, its inputs as given and its config's fields."""
        config = None if self.config is None else dataclasses.asdict(self.config)
        return {"source": self.name, "inputs": self.paths, "source_config": config}


class TruncatedInputError(OSError):
    """A compressed input ends before its end-of-stream marker."""


@contextlib.contextmanager
def open_input(path: str) -> Iterator[io.BufferedReader]:
    """A binary file object for `path`, decompressed by its extension (.gz, .bz2, ...).

    A truncated compressed stream raises TruncatedInputError rather than gzip's EOFError, because
    some readers (warcio) take an EOFError for the normal end of the archive and stop silently.
    """
    with fsspec.open(path, "rb", compression="infer") as f:
        yield io.BufferedReader(_EofIsAnError(f), buffer_size=1 << 20)


class _EofIsAnError(io.RawIOBase):
    def __init__(self, stream):
        # read1 returns what one underlying read decompressed, so the data before a truncation
        # reaches the reader before the error does; read() would drop it with the exception.
        self._read = getattr(stream, "read1", stream.read)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            data = self._read(len(buffer))
        except EOFError as err:
            raise TruncatedInputError(f"compressed stream ends early ({err})") from err
        buffer[: len(data)] = data
        return len(data)


def iter_lines(path: str) -> Iterator[tuple[int, bytes | Exception]]:
    """(line number from 1, line bytes without the newline), streamed.

    When the stream fails part-way, the last item is (number of the line that could not be read,
    the exception), so the caller can record where the input stopped.
    """
    line_number = 0
    with open_input(path) as f:
        try:
            for line in f:
                line_number += 1
                yield line_number, line.rstrip(b"\r\n")
        except READ_ERRORS as err:
            yield line_number + 1, err


def unreadable_input_record(source: str, path: str, where: str, err: Exception) -> dict:
    """The row that records an input stream failing part-way (everything after it is lost)."""
    reason = f"{path}: input unreadable at {where}: {type(err).__name__}: {err}"
    return make_record(None, None, source, status="unreadable_input", error=reason)


def format_license(name: str | None, url: str | None) -> str | None:
    """One license string for every source: `name (url)`, or whichever part is given."""
    name, url = (name or "").strip(), (url or "").strip()
    if name and url:
        return f"{name} ({url})"
    return name or url or None


def http_url_or_none(url: str | None) -> str | None:
    """`url` when it is an absolute http(s) URL with a host, else None."""
    if not url:
        return None
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in ("http", "https") or not rest or rest.startswith("/"):
        return None
    return url
