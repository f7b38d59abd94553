"""File I/O for every stage, on local paths and any fsspec URL (`file://`, `gs://`, `s3://`, ...).

- paths: `join`, `exists`, `is_dir`, `names` (a folder's entries), `remove`, `makedirs`, `size`;
- input lists: `expand` turns files, globs, folders and brace patterns into a sorted file list;
- atomic writes: `write_atomic` (bytes), `write_json`, `write_table` (Parquet): readers see the
  whole file or nothing, so a killed run never leaves a half-written output that looks finished;
- reads: `read_bytes`, `read_json`, `read_parquet`, `parquet_rows`.

An OS failure while writing (a full disk, a read-only folder) becomes an `OutputError` that names
the file; a missing or unreadable input an `InputError`. Both are one-line user errors.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from wit_pipeline.errors import InputError, OutputError

__all__ = [
    "InputError",
    "NoInput",
    "OutputError",
    "exists",
    "expand",
    "fs_path",
    "is_dir",
    "join",
    "json_bytes",
    "makedirs",
    "names",
    "parquet_rows",
    "read_bytes",
    "read_json",
    "read_parquet",
    "remove",
    "size",
    "write_atomic",
    "write_json",
    "write_table",
    "writing",
]

GLOB_CHARACTERS = "*?["


# ---- paths


def fs_path(url: str) -> tuple[Any, str]:
    """The fsspec filesystem of `url` and the path within it."""
    return fsspec.core.url_to_fs(url)


def join(folder: str, name: str) -> str:
    return folder.rstrip("/") + "/" + name


def given_or_under(given: str | None, output: str | None, name: str) -> str:
    """`given` when set, else `output/name`: a stage's folder, named or in the run folder OUT."""
    if given:
        return given
    if output is None:
        raise ValueError(f"give the run folder or the {name} path")
    return join(output, name)


def exists(path: str) -> bool:
    fs, inner = fs_path(path)
    return fs.exists(inner)


def is_dir(path: str) -> bool:
    fs, inner = fs_path(path)
    return fs.isdir(inner)


def size(path: str) -> int:
    fs, inner = fs_path(path)
    return fs.size(inner)


def names(folder: str) -> list[str]:
    """The names (not paths) of the entries directly inside `folder`, sorted; [] when it is missing."""
    fs, inner = fs_path(folder)
    if not fs.exists(inner):
        return []
    return sorted(entry.rstrip("/").rsplit("/", 1)[-1] for entry in fs.ls(inner, detail=False))


def remove(path: str, recursive: bool = False) -> None:
    """Remove `path` (a folder with `recursive`) if it exists."""
    fs, inner = fs_path(path)
    if fs.exists(inner):
        fs.rm(inner, recursive=recursive)


def makedirs(folder: str) -> None:
    fs, inner = fs_path(folder)
    with writing(folder):
        fs.makedirs(inner, exist_ok=True)


def _is_local(fs) -> bool:
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return "file" in protocols or "local" in protocols


# ---- input lists


class NoInput(InputError, FileNotFoundError):
    """An input argument that names no file: a ValueError and a FileNotFoundError both, so
    callers that catch either (argument checks, file openers) report it in one line."""


def expand(
    paths: str | Iterable[str],
    *,
    recursive: bool = True,
    accept: Callable[[str], bool] | None = None,
    braces: bool = False,
    check: bool = True,
    folders: bool = True,
    missing: str = "no input file matches {!r}",
) -> list[str]:
    """The files named by `paths`, in a deterministic order.

    Each argument keeps its place. A file stays as given; a glob expands to its matches and a
    folder to its files (all levels, or only the top one without `recursive`), each sorted by
    path. `accept(name)` picks the files a folder contributes (a glob's matches are taken as the
    user wrote them). With `braces`, `{00000..00012}` ranges and `a::b` lists expand first, as
    webdataset does. Without `check`, a path whose name `accept` takes is listed without asking
    the store (ten thousand shard URLs cost no request). Without `folders`, a folder is listed as
    itself, for a reader that lists it in its own way. Local files come back as plain paths,
    remote ones with their protocol. An argument that names nothing raises NoInput with
    `missing` formatted with it: never an empty run.
    """
    arguments = [paths] if isinstance(paths, str) else list(paths)
    files: list[str] = []
    for argument in arguments:
        for path in _brace_expand(argument) if braces else [argument]:
            found = _expand_one(path, recursive, accept, check, folders)
            if not found:
                raise NoInput(missing.format(path))
            files.extend(found)
    if not files:
        raise NoInput(missing.format(paths))
    return files


def _brace_expand(pattern: str) -> list[str]:
    import webdataset as wds  # only shard patterns need it; plain inputs expand without it

    return list(wds.shardlists.expand_urls(pattern)) if pattern else []


def _expand_one(
    path: str, recursive: bool, accept: Callable[[str], bool] | None, check: bool, folders: bool
) -> list[str]:
    fs, inner = fs_path(path)
    if any(ch in inner for ch in GLOB_CHARACTERS):
        entries = sorted(fs.glob(inner, detail=True).items())
    elif not check and accept is not None and accept(_name(inner)):
        return [path]
    elif not fs.exists(inner):
        return []
    elif not folders or not fs.isdir(inner):
        return [path]
    else:
        entries = [(inner, {"type": "directory"})]
    files: list[str] = []
    for name, info in entries:
        if folders and info["type"] == "directory":
            files.extend(_with_protocol(fs, found) for found in _folder_files(fs, name, recursive, accept))
        else:
            files.append(_with_protocol(fs, name))
    return files


def _folder_files(fs, folder: str, recursive: bool, accept: Callable[[str], bool] | None) -> list[str]:
    if recursive:
        found = fs.find(folder)
    else:
        found = [entry["name"] for entry in fs.ls(folder, detail=True) if entry["type"] == "file"]
    return [name for name in sorted(found) if accept is None or accept(_name(name))]


def _name(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def _with_protocol(fs, path: str) -> str:
    """Local files stay plain paths; remote ones get their protocol back (fsspec strips it)."""
    return path if _is_local(fs) else fs.unstrip_protocol(path)


# ---- writing


@contextlib.contextmanager
def writing(path: str) -> Iterator[None]:
    """Turn an OS failure while writing `path` (a full disk, a read-only or immutable folder)
    into an OutputError: one line that names the file, not a traceback."""
    try:
        yield
    except OSError as err:
        raise OutputError(f"cannot write {path}: {err.strerror or err}") from None


def write_atomic(path: str, data: bytes) -> None:
    """Write `data` to `path` so that readers see either nothing or the whole file.

    Local files go through a temporary name and os.replace; object stores make an upload visible
    only once it is complete, so a plain write is already atomic there.
    """
    fs, inner = fs_path(path)
    if not _is_local(fs):
        with writing(path), fs.open(inner, "wb") as f:
            f.write(data)
        return
    tmp = f"{inner}.tmp-{uuid.uuid4().hex}"
    try:
        with writing(path), open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        with writing(path):
            os.replace(tmp, inner)
    except BaseException:
        # A full disk or a kill: leave no half-written temporary file taking space.
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def json_bytes(obj: Any) -> bytes:
    """`obj` as indented JSON with sorted keys: the same object gives the same bytes."""
    return (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode()


def write_json(path: str, obj: Any) -> None:
    write_atomic(path, json_bytes(obj))


def write_table(path: str, table: pa.Table) -> None:
    """`table` as one zstd Parquet file that readers see whole or not at all."""
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    write_atomic(path, buffer.getvalue())


# ---- reading


def read_bytes(path: str) -> bytes:
    fs, inner = fs_path(path)
    return fs.cat_file(inner)


def read_json(path: str) -> Any:
    """A JSON file's content, or None when it does not exist."""
    fs, inner = fs_path(path)
    if not fs.exists(inner):
        return None
    return json.loads(fs.cat_file(inner))


@contextlib.contextmanager
def open_parquet(path: str) -> Iterator[pq.ParquetFile]:
    """A Parquet file to read (metadata, row groups, batches) that pyarrow reads on its own.

    Never a Python file object: pyarrow's reader threads would hold buffers of it, and one freed
    after the read returns, while the interpreter exits, takes the GIL from a C++ thread and
    aborts the process (std::terminate, exit 134) instead of letting it exit with its error. A
    local file is opened natively; a remote one is read whole into memory pyarrow owns.
    """
    fs, inner = fs_path(path)
    if _is_local(fs):
        source: Any = inner
    else:
        data = fs.cat_file(inner)
        buffer = pa.allocate_buffer(len(data))
        pa.FixedSizeBufferWriter(buffer).write(data)
        source = pa.BufferReader(buffer)
    with pq.ParquetFile(source) as parquet:
        yield parquet


def read_parquet(path: str, columns: list[str] | None = None) -> pa.Table:
    """A whole Parquet file; a truncated or corrupt one is an InputError naming it."""
    try:
        with open_parquet(path) as parquet:
            return parquet.read(columns=columns)
    except (pa.ArrowInvalid, OSError) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise InputError(f"{path}: not a readable Parquet file ({err})") from None


def parquet_rows(path: str) -> int:
    """The row count a Parquet file's footer records (the rows are not read); a file that is not
    Parquet is an InputError naming it."""
    try:
        with open_parquet(path) as parquet:
            return parquet.metadata.num_rows
    except pa.ArrowInvalid as err:
        raise InputError(f"{path}: not a readable Parquet file: {err}") from None


def parquet_schema(path: str) -> pa.Schema:
    """The Arrow schema a Parquet file's footer records (the rows are not read)."""
    with open_parquet(path) as parquet:
        return parquet.schema_arrow
