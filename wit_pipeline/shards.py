"""Shard files: WebDataset tars, their Parquet sidecars, stats and completion markers.

A shard `NNNNN` in a folder is `NNNNN.tar` (members `<uid>.jpg|.txt|.json`), `NNNNN.parquet`
(one row per input row, failures included), `NNNNN_stats.json`, and `NNNNN.done`, written last by
an atomic rename. A shard without its marker is unfinished: readers skip it, reruns redo it whole.

- names and markers: `shard_name`, `mark_done`, `is_done`, `has_files`, `read_stats`,
  `finished_shards`, `unfinished_shards`, `check_finished`;
- tars: `ShardWriter` (rolls numbered tars by count or bytes, webdataset's shape) over
  `TarSampleWriter` (one tar, byte-identical on every machine), `iter_tar` to read one back,
  `write_pair_shards` (labelled pairs as shards, for training on a data set without downloading);
- sidecars: `write_parquet` (atomic).

Paths go through wit_pipeline/io.py (the general file helpers live there), so local folders, gs://
and s3:// all work.
"""

from __future__ import annotations

import json
import re
import tarfile

import pyarrow as pa

from wit_pipeline import io
from wit_pipeline.errors import InputError

SHARD_DIGITS = 5
_SHARD_NAME = re.compile(r"^(\d{5,})\.done$")


def shard_name(shard_id: int) -> str:
    """`00042` for shard 42: sortable names, as img2dataset writes them."""
    return f"{shard_id:0{SHARD_DIGITS}d}"


def marker_path(folder: str, shard_id: int) -> str:
    return io.join(folder, f"{shard_name(shard_id)}.done")


def is_done(folder: str, shard_id: int) -> bool:
    return io.exists(marker_path(folder, shard_id))


def has_files(folder: str, shard_id: int, extensions: tuple[str, ...] = ("tar", "parquet")) -> bool:
    """Whether a shard's data files (and its stats) are all there: a marker alone proves nothing
    once someone deleted a sidecar, so a rerun checks before skipping a finished shard."""
    names = [f"{shard_name(shard_id)}.{ext}" for ext in extensions] + [f"{shard_name(shard_id)}_stats.json"]
    return all(io.exists(io.join(folder, name)) for name in names)


def stats_path(folder: str, shard_id: int) -> str:
    return io.join(folder, f"{shard_name(shard_id)}_stats.json")


def mark_done(folder: str, shard_id: int, stats: dict) -> None:
    """Write the shard's stats, then its completion marker: the marker is always last."""
    io.write_json(stats_path(folder, shard_id), stats)
    io.write_json(marker_path(folder, shard_id), {"shard": shard_name(shard_id)})


def read_stats(folder: str, shard_id: int) -> dict:
    """The stats a finished shard recorded with its marker."""
    return json.loads(io.read_bytes(stats_path(folder, shard_id)))


def finished_shards(folder: str) -> list[int]:
    """Ids of the shards in `folder` that carry a completion marker, sorted."""
    return sorted(int(m.group(1)) for m in map(_SHARD_NAME.match, io.names(folder)) if m)


_BEGUN = re.compile(r"^(\d{5,})(\.tar|\.parquet)$")
PLANNED_SHARDS = "planned_shards"


def unfinished_shards(folder: str) -> list[int]:
    """Shards of `folder` without a completion marker that were planned (the count its stage
    recorded in config.json) or begun (a tar or sidecar on disk), sorted."""
    names = io.names(folder)
    wanted = {int(m.group(1)) for m in map(_BEGUN.match, names) if m}
    if "config.json" in names:
        planned = io.read_json(io.join(folder, "config.json")).get(PLANNED_SHARDS) or 0
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


class TarSampleWriter:
    """Writes WebDataset samples to one tar: `<key>.<ext>` members, in the order written.

    Member headers carry fixed owner and time, so the same samples in the same order give the
    same bytes on every machine and rerun: the bytes tarfile writes in USTAR stream mode (a test
    compares them), with the headers built here: tarfile's per-member objects, copies and
    checksum loop made storing a sample cost 0.19 ms, now 0.07 ms (bench/README.md).

    Samples gather in memory and reach the file `flush_bytes` at a time: the download's threads
    append under one lock, and a thread that released the GIL for a write while holding it kept
    all the others waiting for as long as it took to get the GIL back.
    """

    flush_bytes = 4 << 20

    def __init__(self, path: str):
        self.path = path
        fs, fs_path = io.fs_path(path)
        with io.writing(path):
            self._file = fs.open(fs_path, "wb")
        self._offset = 0  # bytes of the archive so far
        self._pending = bytearray()
        self.count = 0
        self.bytes_written = 0

    def write(self, key: str, members: dict[str, bytes]) -> None:
        """Add one sample: `members` maps an extension (`jpg`, `txt`, `json`) to its bytes."""
        for ext, data in members.items():
            padding = -len(data) % tarfile.BLOCKSIZE
            self._pending += ustar_header(f"{key}.{ext}", len(data))
            self._pending += data
            self._pending += bytes(padding)
            self._offset += tarfile.BLOCKSIZE + len(data) + padding
            self.bytes_written += len(data)
        self.count += 1
        if len(self._pending) >= self.flush_bytes:
            self._flush()

    def _flush(self) -> None:
        with io.writing(self.path):
            self._file.write(self._pending)
        self._pending.clear()

    def close(self) -> None:
        # tarfile's end of archive: two zero blocks, then zeros up to a whole record.
        end = 2 * tarfile.BLOCKSIZE
        self._pending += bytes(end + -(self._offset + end) % tarfile.RECORDSIZE)
        try:
            self._flush()
        finally:
            with io.writing(self.path):
                self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# The fixed parts of a member's USTAR header (regular file, mode 644, owner 0, time 0, no names).
_USTAR_MODE_IDS = b"0000644\0" + b"0000000\0" * 2
_USTAR_TAIL = tarfile.REGTYPE + bytes(100) + tarfile.POSIX_MAGIC + bytes(tarfile.BLOCKSIZE - 265)
_USTAR_CHECKSUM_BASE = sum(_USTAR_MODE_IDS) + sum(b"00000000000\0") + sum(_USTAR_TAIL) + 8 * ord(" ")


def ustar_header(name: str, size: int) -> bytes:
    """The 512-byte header tarfile writes for a regular member `name` of `size` bytes with our
    fixed owner, mode and time; tarfile's own for a name that needs its long-name handling."""
    encoded = name.encode("utf-8", "surrogateescape")
    if len(encoded) > 100 or size >= 8**11:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode, info.uname, info.gname = size, 0, 0o644, "", ""
        return info.tobuf(tarfile.USTAR_FORMAT, tarfile.ENCODING, "surrogateescape")
    size_field = b"%011o\0" % size
    checksum = _USTAR_CHECKSUM_BASE + sum(encoded) + sum(size_field)
    head = encoded + bytes(100 - len(encoded)) + _USTAR_MODE_IDS + size_field + b"00000000000\0"
    return head + b"%06o\0 " % checksum + _USTAR_TAIL


class ShardWriter:
    """Writes samples into numbered tars, rolling to the next when the current one holds
    `max_count` samples or `max_bytes` bytes of members: webdataset's ShardWriter(pattern,
    maxcount, maxsize).

    `pattern` names a tar by its number with a %-format (`out/%05d.tar`), numbered from `start`.
    The first tar is opened at once, so a shard with no sample is still an (empty) tar. Without
    limits every sample goes to one tar: a stage's shard of known contents (download, reshard).
    """

    def __init__(self, pattern: str, max_count: int | None = None, max_bytes: int | None = None, start: int = 0):
        self.pattern, self.max_count, self.max_bytes, self.start = pattern, max_count, max_bytes, start
        self.paths: list[str] = []
        self.count = 0  # samples written, over all tars
        self.bytes_written = 0  # member bytes written, over all tars
        self._tar = self._open_next()

    def write(self, key: str, members: dict[str, bytes]) -> None:
        """Add one sample (`members`: extension -> bytes), in a new tar if the current one is full."""
        if self._full():
            self._tar.close()
            self._tar = self._open_next()
        before = self._tar.bytes_written
        self._tar.write(key, members)
        self.bytes_written += self._tar.bytes_written - before
        self.count += 1

    def _full(self) -> bool:
        return bool(
            (self.max_count and self._tar.count >= self.max_count)
            or (self.max_bytes and self._tar.bytes_written >= self.max_bytes)
        )

    def _open_next(self) -> TarSampleWriter:
        # Only the file name is a %-format: a folder may hold a literal % (`runs/50%/raw`).
        folder, slash, name = self.pattern.rpartition("/")
        self.paths.append(folder + slash + name % (self.start + len(self.paths)))
        return TarSampleWriter(self.paths[-1])

    def close(self) -> None:
        self._tar.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def write_pair_shards(pairs, folder: str, samples_per_shard: int) -> list[str]:
    """Write (image bytes, caption, metadata) pairs as wit's WebDataset shards `NNNNN.tar` in
    `folder`, keyed by the pairs' uids; returns the shard paths. Makes shards from a labelled
    data set (COCO) without the download stage: tests and benchmarks train on them."""
    from wit_pipeline.schema import uid

    io.makedirs(folder)
    with ShardWriter(io.join(folder, f"%0{SHARD_DIGITS}d.tar"), max_count=samples_per_shard) as writer:
        for index, (image_bytes, caption, meta) in enumerate(pairs):
            key = uid(meta.get("url", f"pair:{index}"), caption)
            record = io.json_bytes({"uid": key, **meta})
            writer.write(key, {"jpg": image_bytes, "txt": caption.encode(), "json": record})
    return writer.paths


def write_parquet(path: str, rows: list[dict], schema: pa.Schema) -> None:
    """Write `rows` (dicts keyed by field name) as one Parquet file of `schema`, atomically."""
    io.write_table(path, pa.Table.from_pylist(rows, schema=schema))


def iter_tar(path: str):
    """Yield (key, {ext: bytes}) for each sample of a WebDataset tar, grouping members by key."""
    try:
        yield from _tar_samples(path)
    except (tarfile.TarError, EOFError) as err:
        raise InputError(f"{path}: unreadable tar, truncated or corrupt ({err or type(err).__name__})") from None


def _tar_samples(path: str):
    fs, fs_path = io.fs_path(path)
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
            extracted = tar.extractfile(member)
            data = extracted.read() if extracted is not None else b""
            if len(data) != member.size:
                raise EOFError(f"member {member.name} holds {len(data)} of {member.size} bytes")
            sample[ext] = data
        if key is not None:
            yield key, sample
