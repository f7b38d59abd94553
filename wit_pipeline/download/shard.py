"""The download stage's unit of work: one shard of input rows in, one raw shard out.

    raw/NNNNN.tar           WebDataset: <uid>.jpg|png|webp, <uid>.txt, <uid>.json for each ok row
    raw/NNNNN.parquet       every input row, in input order, failures with status and error
    raw/NNNNN_stats.json    counts per status, bytes, seconds
    raw/NNNNN.done          completion marker, written last (atomic rename)

A shard with a marker is skipped on rerun; one without is redone whole, overwriting what a killed
run left, so a killed-and-rerun job holds every input uid exactly once.
"""

from __future__ import annotations

import json
import os
import posixpath
import queue
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
    rows = list(task.source.read(task.shard))
    _mark_duplicate_uids(rows)
    extra = task.source.extra_columns(task.shard)
    out_schema = schema.with_extra_columns(schema.RAW_SCHEMA, extra)
    name = shards.shard_name(task.shard.shard_id)
    pattern = io.join(task.output_dir, f"%0{shards.SHARD_DIGITS}d.tar")
    with shards.ShardWriter(pattern, start=task.shard.shard_id) as tar:
        for index, image in _process_rows(rows, task.config):
            _store(rows[index], image, tar, task.config.resize.encode_format, out_schema)
    shards.write_parquet(
        io.join(task.output_dir, f"{name}.parquet"), [_schema_row(r, out_schema) for r in rows], out_schema
    )
    stats = _stats(task.shard.shard_id, rows, tar, time.monotonic() - started)
    shards.mark_done(task.output_dir, task.shard.shard_id, stats)
    return stats


def _mark_duplicate_uids(rows: list[dict]) -> None:
    # A tar cannot hold two samples with one key. Ingest removes duplicate pairs globally; a raw
    # URL list may still repeat one, and the repeat is recorded, not written twice.
    seen = set()
    for row in rows:
        if row["status"] == schema.OK and row["uid"] in seen:
            row["status"], row["error"] = "duplicate", "the same (url, caption) pair appears earlier in this shard"
        seen.add(row["uid"])


def _process_rows(rows: list[dict], config: DownloadConfig):
    """Yield (row index, result) as rows finish, computed by a pool of threads, host-fairly.

    Each result is either a stored image dict or a (status, error, http_status) failure; the
    row dict itself is only written by the caller's thread.
    """
    todo = [i for i, row in enumerate(rows) if row["status"] == schema.OK]
    if not todo:
        return
    resizer = make_resizer(config.resize)
    work = HostFairQueue(todo, host=lambda i: host_of(rows[i]["url"]), per_host=config.fetch.per_host_connections)
    results: queue.Queue = queue.Queue(maxsize=config.threads * 2)

    attempts: dict[int, int] = {}  # rows waiting for a retry: the attempt they are at

    def worker():
        while (index := work.take()) is not None:
            try:
                result = _process_one(rows[index], config, resizer, attempts.get(index, 1))
                if "retry_in" in result:  # a 429 or a backoff: requeued, this thread goes on with others
                    attempts[index] = attempts.get(index, 1) + 1
                    work.defer(index, result["retry_in"])
                else:
                    results.put((index, result))
            finally:
                work.done(index)
        results.put(None)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(min(config.threads, len(todo)))]
    for thread in threads:
        thread.start()
    finished = 0
    try:
        while finished < len(threads):
            item = results.get()
            if item is None:
                finished += 1
            else:
                yield item
    finally:
        # On Ctrl-C or a failed write, stop the threads before the error travels on: one left
        # inside img2dataset's resizer holds stdout and stderr swapped to /dev/null, and a daemon
        # thread still running at exit aborts the interpreter (SIGABRT) mid-traceback.
        work.close()
        while finished < len(threads):
            if results.get() is None:
                finished += 1
        for thread in threads:
            thread.join()


def _process_one(row: dict, config: DownloadConfig, resizer, attempt: int = 1) -> dict:
    try:
        fetched = _fetch_row(row, config, attempt)
        if fetched.retry_in is not None:
            return {"retry_in": fetched.retry_in}
        if fetched.status != schema.OK:
            return {"status": fetched.status, "error": fetched.error, "http_status": fetched.http_status}
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


def _store(row: dict, result: dict, tar: shards.ShardWriter, extension: str, out_schema) -> None:
    data = result.pop("data", None)
    row.update(result)
    if row["status"] != schema.OK:
        return
    meta = {k: v for k, v in _schema_row(row, out_schema).items() if v is not None}
    tar.write(row["uid"], {extension: data, "txt": (row["caption"] or "").encode(), "json": json.dumps(meta).encode()})


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
