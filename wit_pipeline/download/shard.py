"""The download stage's unit of work: one shard of input rows in, one raw shard out.

    raw/NNNNN.tar           WebDataset: <uid>.jpg|png|webp, <uid>.txt, <uid>.json for each ok row
    raw/NNNNN.parquet       every input row, in input order, failures with status and error
    raw/NNNNN_stats.json    counts per status, bytes, seconds
    raw/NNNNN.done          completion marker, written last (atomic rename)

A shard with a marker is skipped on rerun; one without is redone whole, overwriting what a killed
run left, so a killed-and-rerun job holds every input uid exactly once.
"""

from __future__ import annotations

import ctypes
import functools
import json
import os
import posixpath
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass

from wit_pipeline import io, schema, shards
from wit_pipeline.config import DownloadConfig
from wit_pipeline.download.fetch import FetchResult, fetch_attempt
from wit_pipeline.download.hashing import phash_stored, sha256_hex
from wit_pipeline.download.hosts import HostFairQueue, host_of
from wit_pipeline.download.image import ImageError, check_image, make_resizer
from wit_pipeline.sources.base import Source, SourceShard


@dataclass(frozen=True)
class DownloadTask:
    """Everything a worker needs for one shard; pickles cheaply (no open files, no sessions)."""

    source: Source
    shard: SourceShard
    output_dir: str
    config: DownloadConfig


def download_shard(task: DownloadTask) -> dict:
    """Download one shard and return its stats; a finished shard is not redone."""
    if shards.is_done(task.output_dir, task.shard.shard_id) and shards.has_files(task.output_dir, task.shard.shard_id):
        return shards.read_stats(task.output_dir, task.shard.shard_id) | {"skipped": True}
    started = time.monotonic()
    keep_freed_memory()
    rows = list(task.source.read(task.shard))
    _mark_duplicate_uids(rows)
    extra = task.source.extra_columns(task.shard)
    out_schema = schema.with_extra_columns(schema.RAW_SCHEMA, extra)
    name = shards.shard_name(task.shard.shard_id)
    pattern = io.join(task.output_dir, f"%0{shards.SHARD_DIGITS}d.tar")
    with shards.ShardWriter(pattern, start=task.shard.shard_id) as tar:
        _process_rows(rows, task.config, _SampleStore(rows, tar, task.config.resize.encode_format, out_schema))
    shards.write_parquet(
        io.join(task.output_dir, f"{name}.parquet"), [_schema_row(r, out_schema) for r in rows], out_schema
    )
    stats = _stats(task.shard.shard_id, rows, tar, time.monotonic() - started)
    shards.mark_done(task.output_dir, task.shard.shard_id, stats)
    return stats


@functools.cache
def keep_freed_memory() -> None:
    """Let glibc's malloc keep freed image buffers for reuse, once per process.

    Every image passes through buffers of about a megabyte (the body, the decoded pixels). By
    default glibc serves such sizes with mmap, or trims them off its heaps when freed, so the next
    image faults the same pages in again, zero-filled: at 32 threads that was 80 page faults and
    0.15 ms of kernel time per image (bench/README.md). Keeping up to 64 MB free per heap costs
    memory that levels off: +33 MB of peak RSS on a 6,000-image run, workers steady at about
    450 MB through a 100,000-URL run. Other C libraries are left as they are.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's malloc.h
    libc.mallopt(m_mmap_threshold, 32 << 20)
    libc.mallopt(m_trim_threshold, 64 << 20)


def _mark_duplicate_uids(rows: list[dict]) -> None:
    # A tar cannot hold two samples with one key. Ingest removes duplicate pairs globally; a raw
    # URL list may still repeat one, and the repeat is recorded, not written twice.
    seen = set()
    for row in rows:
        if row["status"] == schema.OK and row["uid"] in seen:
            row["status"], row["error"] = "duplicate", "the same (url, caption) pair appears earlier in this shard"
        seen.add(row["uid"])


class _SampleStore:
    """Records a row's result and writes an ok row's sample to the tar, from any download thread.

    Each thread stores what it computed itself: handing every result to one writer thread cost a
    queue hand-off and a thread wake-up per image, and that one thread, contending for the GIL
    with all the others, became the pace-setter. The lock covers the tar append alone.
    """

    def __init__(self, rows: list[dict], tar: shards.ShardWriter, extension: str, out_schema):
        self.rows, self.tar, self.extension, self.out_schema = rows, tar, extension, out_schema
        self._lock = threading.Lock()

    def __call__(self, index: int, result: dict) -> None:
        members = record_result(self.rows[index], result, self.extension, self.out_schema)
        if members is not None:
            with self._lock:
                self.tar.write(self.rows[index]["uid"], members)


def record_result(row: dict, result: dict, extension: str, out_schema) -> dict[str, bytes] | None:
    """Record a result in its row; for a stored image, the tar members of its sample
    (`<uid>.<extension>`, `.txt` the caption, `.json` the row's non-null fields)."""
    data = result.pop("data", None)
    row.update(result)
    if row["status"] != schema.OK:
        return None
    meta = {k: v for k, v in _schema_row(row, out_schema).items() if v is not None}
    return {extension: data, "txt": (row["caption"] or "").encode(), "json": json.dumps(meta).encode()}


def _process_rows(rows: list[dict], config: DownloadConfig, store) -> None:
    """Compute every ok row's result with a pool of threads, host-fairly, and `store(index,
    result)` each in the thread that computed it (a result is a stored image or a failure).

    The first error a store raises (a full disk, say) stops the pool and is raised here; so is
    Ctrl-C, after the threads have stopped.
    """
    todo = [i for i, row in enumerate(rows) if row["status"] == schema.OK]
    if not todo:
        return
    resizer = make_resizer(config.resize)
    hosts = {i: host_of(rows[i]["url"]) for i in todo}
    work = HostFairQueue(todo, host=hosts.__getitem__, per_host=config.fetch.per_host_connections)
    attempts: dict[int, int] = {}  # rows waiting for a retry: the attempt they are at
    failures: list[BaseException] = []

    def worker():
        while (index := work.take()) is not None:
            try:
                try:
                    fetched = _fetch_guarded(rows[index], config, attempts.get(index, 1))
                finally:
                    work.done(index)  # the host's connection is free once the body is in
                if fetched.retry_in is not None:  # a 429 or a backoff: requeued, this thread goes on with others
                    attempts[index] = attempts.get(index, 1) + 1
                    work.defer(index, fetched.retry_in)
                else:
                    store(index, _image_result(fetched, config, resizer))
            except BaseException as err:  # noqa: BLE001 - a failed write: stop every thread, raise it in the caller
                failures.append(err)
                work.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(min(config.threads, len(todo)))]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    finally:
        # On Ctrl-C, stop the threads before the error travels on: one left inside img2dataset's
        # resizer holds stdout and stderr swapped to /dev/null, and a daemon thread still running
        # at exit aborts the interpreter (SIGABRT) mid-traceback.
        work.close()
        for thread in threads:
            thread.join()
    if failures:
        raise failures[0]


def _fetch_guarded(row: dict, config: DownloadConfig, attempt: int) -> FetchResult:
    try:
        return _fetch_row(row, config, attempt)
    except Exception:  # noqa: BLE001 - the per-sample boundary: record the traceback, keep the shard going
        return FetchResult(None, "internal_error", traceback.format_exc(limit=5)[-2000:])


def _image_result(fetched: FetchResult, config: DownloadConfig, resizer) -> dict:
    """A fetched row's result: its failure, or the stored image with its size and hashes."""
    if fetched.status != schema.OK:
        return {"status": fetched.status, "error": fetched.error, "http_status": fetched.http_status}
    try:
        data = fetched.data or b""  # an ok fetch always has its body
        header = check_image(data, config.fetch.max_pixels)
        image = resizer(data, header)
        return {
            "status": schema.OK,
            "error": None,
            "http_status": fetched.http_status,
            "data": image.data,
            "width": image.width,
            "height": image.height,
            "original_width": image.original_width,
            "original_height": image.original_height,
            "bytes": len(image.data),
            "sha256": sha256_hex(image.data),
            "phash": phash_stored(image) if config.compute_phash else None,
        }
    except ImageError as err:
        return {"status": err.status, "error": str(err), "http_status": fetched.http_status}
    except Exception:  # noqa: BLE001 - the per-sample boundary: record the traceback, keep the shard going
        return {"status": "internal_error", "error": traceback.format_exc(limit=5)[-2000:], "http_status": None}


def _fetch_row(row: dict, config: DownloadConfig, attempt: int = 1) -> FetchResult:
    """The row's image bytes: read from disk only under the user's trusted --image-root, else fetched.

    image_path is just a column of the input: a URL list could name /etc/passwd or an fsspec URL
    there. Without --image-root it is never read, and the row's URL goes through the guarded fetch.
    """
    if not (row.get("image_path") and config.image_root):
        return fetch_attempt(row["url"], config.fetch, attempt)
    path = path_under_root(row["image_path"], config.image_root)
    if path is None:
        return FetchResult(
            None, "untrusted_path", f"{str(row['image_path'])[:200]} is not under --image-root {config.image_root}"
        )
    return _read_local(path, config)


def path_under_root(path: str, root: str) -> str | None:
    """`path` resolved (symlinks, `..`) when it lies strictly inside `root`, else None. A path
    holding `::` is refused: fsspec would read it as a chain of filesystems, not as this path."""
    if "::" in path:
        return None
    local = "://" not in root or root.startswith("file://")
    if local:
        if "://" in path and not path.startswith("file://"):
            return None
        real = os.path.realpath(path.removeprefix("file://"))
        base = os.path.realpath(root.removeprefix("file://"))
        return real if real != base and os.path.commonpath([real, base]) == base else None
    protocol, _, base = root.partition("://")
    if not path.startswith(protocol + "://"):
        return None
    inner = posixpath.normpath("/" + path.partition("://")[2])
    base = posixpath.normpath("/" + base)
    return f"{protocol}://{inner.lstrip('/')}" if inner.startswith(base.rstrip("/") + "/") else None


def _read_local(path: str, config: DownloadConfig) -> FetchResult:
    """An image already on disk (COCO with --image-root): read it under the same byte cap."""
    try:
        if io.size(path) > config.fetch.max_bytes:
            return FetchResult(None, "too_large_bytes", f"{path} is larger than {config.fetch.max_bytes} bytes")
        return FetchResult(io.read_bytes(path), schema.OK)
    except FileNotFoundError:
        return FetchResult(None, "file_not_found", f"no such image file: {path}")
    except OSError as err:
        return FetchResult(None, "file_not_found", f"cannot read image file {path}: {err}")


def _schema_row(row: dict, out_schema) -> dict:
    return {name: row.get(name) for name in out_schema.names}


def _stats(shard_id: int, rows: list[dict], tar: shards.ShardWriter, seconds: float) -> dict:
    statuses = Counter(row["status"] for row in rows)
    return {
        "shard": shards.shard_name(shard_id),
        "rows": len(rows),
        "ok": statuses.get(schema.OK, 0),
        "statuses": dict(sorted(statuses.items())),
        "bytes": tar.bytes_written,
        "seconds": round(seconds, 3),
    }
