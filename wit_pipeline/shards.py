"""Shard files: WebDataset tars, their Parquet sidecars, stats and completion markers.

A shard `NNNNN` in a folder is `NNNNN.tar` (members `<uid>.jpg|.txt|.json`), `NNNNN.parquet`
(one row per input row, failures included), `NNNNN_stats.json`, and `NNNNN.done`, written last by
an atomic rename. A shard without its marker is unfinished: readers skip it, reruns redo it whole.
Paths go through fsspec, so local folders, gs:// and s3:// all work.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import tarfile
import uuid

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from wit_pipeline.errors import UserError

SHARD_DIGITS = 5
_SHARD_NAME = re.compile(r"^(\d{5,})\.done$")


def shard_name(shard_id: int) -> str:
    """`00042` for shard 42: sortable names, as img2dataset writes them."""
    return f"{shard_id:0{SHARD_DIGITS}d}"


def join(folder: str, name: str) -> str:
    return folder.rstrip("/") + "/" + name


def makedirs(folder: str) -> None:
    fs, path = fsspec.core.url_to_fs(folder)
    with writing(folder):
        fs.makedirs(path, exist_ok=True)


@contextlib.contextmanager
def writing(path: str):
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
    fs, fs_path = fsspec.core.url_to_fs(path)
    if fs.protocol in ("file", ("file", "local")) or "file" in fs.protocol:
        tmp = f"{fs_path}.tmp-{uuid.uuid4().hex}"
        try:
            with writing(path), open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            with writing(path):
                os.replace(tmp, fs_path)
        except BaseException:
            # A full disk or a kill: leave no half-written temporary file taking space.
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
    else:
        with writing(path), fs.open(fs_path, "wb") as f:
            f.write(data)


def marker_path(folder: str, shard_id: int) -> str:
    return join(folder, f"{shard_name(shard_id)}.done")


def is_done(folder: str, shard_id: int) -> bool:
    fs, path = fsspec.core.url_to_fs(marker_path(folder, shard_id))
    return fs.exists(path)


def has_files(folder: str, shard_id: int, extensions: tuple[str, ...] = ("tar", "parquet")) -> bool:
    """Whether a shard's data files (and its stats) are all there: a marker alone proves nothing
    once someone deleted a sidecar, so a rerun checks before skipping a finished shard."""
    names = [f"{shard_name(shard_id)}.{ext}" for ext in extensions] + [f"{shard_name(shard_id)}_stats.json"]
    fs, _ = fsspec.core.url_to_fs(folder)
    return all(fs.exists(fsspec.core.url_to_fs(join(folder, name))[1]) for name in names)


def stats_path(folder: str, shard_id: int) -> str:
    return join(folder, f"{shard_name(shard_id)}_stats.json")


def mark_done(folder: str, shard_id: int, stats: dict) -> None:
    """Write the shard's stats, then its completion marker: the marker is always last."""
    write_atomic(stats_path(folder, shard_id), json_bytes(stats))
    write_atomic(marker_path(folder, shard_id), json_bytes({"shard": shard_name(shard_id)}))


def read_stats(folder: str, shard_id: int) -> dict:
    """The stats a finished shard recorded with its marker."""
    fs, fs_path = fsspec.core.url_to_fs(stats_path(folder, shard_id))
    return json.loads(fs.cat_file(fs_path))


def finished_shards(folder: str) -> list[int]:
    """Ids of the shards in `folder` that carry a completion marker, sorted."""
    fs, path = fsspec.core.url_to_fs(folder)
    if not fs.exists(path):
        return []
    ids = []
    for entry in fs.ls(path, detail=False):
        match = _SHARD_NAME.match(entry.rstrip("/").rsplit("/", 1)[-1])
        if match:
            ids.append(int(match.group(1)))
    return sorted(ids)


_BEGUN = re.compile(r"^(\d{5,})(\.tar|\.parquet)$")
PLANNED_SHARDS = "planned_shards"


def unfinished_shards(folder: str) -> list[int]:
    """Shards of `folder` without a completion marker that were planned (the count its stage
    recorded in config.json) or begun (a tar or sidecar on disk), sorted."""
    fs, path = fsspec.core.url_to_fs(folder)
    if not fs.exists(path):
        return []
    names = [entry.rstrip("/").rsplit("/", 1)[-1] for entry in fs.ls(path, detail=False)]
    wanted = {int(m.group(1)) for m in map(_BEGUN.match, names) if m}
    if "config.json" in names:
        planned = json.loads(fs.cat_file(join(path, "config.json"))).get(PLANNED_SHARDS) or 0
        wanted.update(range(int(planned)))
    return sorted(wanted - set(finished_shards(folder)))


def check_finished(folder: str, partial: bool) -> None:
    """Refuse a folder whose stage has not finished every shard, unless `partial` says to use
    only the finished ones: a dataset made from 5 of 12 shards must not look complete."""
    unfinished = unfinished_shards(folder)
    if unfinished and not partial:
        done = len(finished_shards(folder))
        raise InputError(
            f"{folder}: {len(unfinished)} of {len(unfinished) + done} shards are unfinished (first "
            f"{shard_name(unfinished[0])}); rerun `wit download` to finish them, or pass --partial "
            f"to use only the {done} finished"
        )


def json_bytes(obj) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode()


class TarSampleWriter:
    """Writes WebDataset samples to one tar: `<key>.<ext>` members, in the order written.

    Member headers carry fixed owner and time, so the same samples in the same order give the
    same bytes on every machine and rerun.
    """

    def __init__(self, path: str):
        self.path = path
        fs, fs_path = fsspec.core.url_to_fs(path)
        with writing(path):
            self._file = fs.open(fs_path, "wb")
        self._tar = tarfile.open(fileobj=self._file, mode="w|", format=tarfile.USTAR_FORMAT)
        self.count = 0
        self.bytes_written = 0

    def write(self, key: str, members: dict[str, bytes]) -> None:
        """Add one sample: `members` maps an extension (`jpg`, `txt`, `json`) to its bytes."""
        for ext, data in members.items():
            info = tarfile.TarInfo(f"{key}.{ext}")
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            info.uname = info.gname = ""
            with writing(self.path):
                self._tar.addfile(info, io.BytesIO(data))
            self.bytes_written += len(data)
        self.count += 1

    def close(self) -> None:
        with writing(self.path):
            try:
                self._tar.close()
            finally:
                self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def write_parquet(path: str, rows: list[dict], schema: pa.Schema) -> None:
    """Write `rows` (dicts keyed by field name) as one Parquet file of `schema`."""
    table = pa.Table.from_pylist(rows, schema=schema)
    fs, fs_path = fsspec.core.url_to_fs(path)
    with writing(path), fs.open(fs_path, "wb") as f:
        pq.write_table(table, f, compression="zstd")


def read_parquet(path: str, columns: list[str] | None = None) -> pa.Table:
    """A whole Parquet file; a truncated or corrupt one is an InputError naming it."""
    fs, fs_path = fsspec.core.url_to_fs(path)
    with fs.open(fs_path, "rb") as f:
        try:
            return pq.read_table(f, columns=columns)
        except (pa.ArrowInvalid, OSError) as err:
            if isinstance(err, FileNotFoundError):
                raise
            raise InputError(f"{path}: not a readable Parquet file ({err})") from None


def iter_tar(path: str):
    """Yield (key, {ext: bytes}) for each sample of a WebDataset tar, grouping members by key."""
    try:
        yield from _tar_samples(path)
    except (tarfile.TarError, EOFError) as err:
        raise InputError(f"{path}: unreadable tar, truncated or corrupt ({err or type(err).__name__})") from None


def _tar_samples(path: str):
    fs, fs_path = fsspec.core.url_to_fs(path)
    with fs.open(fs_path, "rb") as f, tarfile.open(fileobj=f, mode="r|") as tar:
        key, sample = None, {}
        for member in tar:
            if not member.isfile():
                continue
            stem, _, ext = member.name.rpartition("/")[-1].partition(".")
            if key is not None and stem != key:
                yield key, sample
                sample = {}
            key = stem
            data = tar.extractfile(member).read()
            if len(data) != member.size:
                raise EOFError(f"member {member.name} holds {len(data)} of {member.size} bytes")
            sample[ext] = data
        if key is not None:
            yield key, sample


class InputError(UserError, ValueError):
    """An input folder or file is missing, empty or does not match what a stage expects.

    Entry points report it in one line; it is the user's data, not a bug, that needs fixing.
    """


class OutputError(InputError):
    """An output file cannot be written: the disk is full, or the folder read-only."""


RUN_FILE = "run.json"


def _flatten(value, prefix: str = "") -> dict:
    """{"a": {"b": 1}} -> {"a.b": 1}, so that an error can name the exact setting that differs."""
    if not isinstance(value, dict):
        return {prefix: value}
    flat = {}
    for key, item in value.items():
        flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    return flat
