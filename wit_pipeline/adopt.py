"""`wit adopt`: an img2dataset download becomes wit's `OUT/raw`, with no second download.

img2dataset writes, per shard, `NNNNN.tar` (`<key>.jpg|.txt|.json`), `NNNNN.parquet` (every row:
url, caption, key, status, error_message, sizes) and `NNNNN_stats.json` (written when the shard
is finished). Adopting a shard reads those files as they are and writes wit's raw shard: each row
gets its uid (from url and caption, as wit's download computes it), its status in wit's vocabulary,
and for a stored image its sha256 and pHash computed from the stored bytes by the same functions
wit's download uses; the tar is rewritten keyed by uid, and the completion marker is written last.
Then `wit dedup`, `wit reshard`, `wit report` and `wit train` run on OUT as on a wit download.

A shard img2dataset did not finish (no `_stats.json`) is left out and counted; a rerun adopts
only the shards not yet adopted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from wit_pipeline import claim, io, schema, shards
from wit_pipeline.download.hashing import phash_hex, sha256_hex
from wit_pipeline.download.image import _RESIZER_ERRORS
from wit_pipeline.download.shard import _mark_duplicate_uids, _stats, record_result
from wit_pipeline.sources.base import make_record

SOURCE = "img2dataset"
IMAGE_EXTENSIONS = ("jpg", "png", "webp", "jpeg")
_SHARD_PARQUET = re.compile(r"^(\d+)\.parquet$")
# img2dataset's failure messages (urllib's and its own), mapped to wit's statuses, first match wins.
_DOWNLOAD_ERRORS = [
    (re.compile(r"HTTP Error (\d{3})"), None),
    (re.compile(r"timed? ?out", re.I), "timeout"),
    (
        re.compile(r"Name or service not known|nodename nor servname|getaddrinfo|Temporary failure in name", re.I),
        "dns_error",
    ),
    (re.compile(r"redirect", re.I), "too_many_redirects"),
    (re.compile(r"noai|noimageai|X-Robots-Tag", re.I), "opted_out"),
]


@dataclass(frozen=True)
class AdoptTask:
    source_folder: str
    shard_id: int
    shard_name: str  # as img2dataset named it (its digit count may differ from ours)
    raw_folder: str


def plan(source_folder: str, output: str) -> tuple[list[AdoptTask], list[str]]:
    """One task per finished img2dataset shard, and the names of the unfinished ones."""
    if not io.is_dir(source_folder):
        raise io.InputError(f"{source_folder} is not a folder (give img2dataset's output_folder)")
    names = io.names(source_folder)
    found = [m.group(1) for m in map(_SHARD_PARQUET.match, names) if m]
    if not found:
        raise io.InputError(
            f"{source_folder} holds no img2dataset shards (NNNNN.parquet with NNNNN.tar); "
            f"run img2dataset with output_format='webdataset'"
        )
    raw = io.join(output, "raw")
    finished = [n for n in found if f"{n}_stats.json" in names and f"{n}.tar" in names]
    unfinished = sorted(set(found) - set(finished))
    return [AdoptTask(source_folder, int(n), n, raw) for n in finished], unfinished


def adopt_shard(task: AdoptTask) -> dict:
    """Write wit's raw shard for one img2dataset shard; a shard already adopted is not redone."""
    if shards.is_done(task.raw_folder, task.shard_id):
        return shards.read_stats(task.raw_folder, task.shard_id) | {"skipped": True}
    table = io.read_parquet(io.join(task.source_folder, f"{task.shard_name}.parquet"))
    images = _images_by_key(io.join(task.source_folder, f"{task.shard_name}.tar"))
    # img2dataset writes a shard's rows in completion order; its keys give the input order.
    source_rows = sorted(table.to_pylist(), key=lambda row: row["key"])
    rows = [_record(row) for row in source_rows]
    _mark_duplicate_uids(rows)
    name = shards.shard_name(task.shard_id)
    with shards.ShardWriter(io.join(task.raw_folder, f"%0{shards.SHARD_DIGITS}d.tar"), start=task.shard_id) as tar:
        for row, source in zip(rows, source_rows, strict=True):
            if row["status"] == schema.OK:
                extension, data = images.get(source["key"], ("", None))  # no image: a failed row
                # The same writer as wit's download: tar members and .json metadata match its shards.
                members = record_result(row, _stored(source, data), extension, schema.RAW_SCHEMA)
                if members is not None:
                    tar.write(row["uid"], members)
    shards.write_parquet(
        io.join(task.raw_folder, f"{name}.parquet"),
        [{k: r.get(k) for k in schema.RAW_SCHEMA.names} for r in rows],
        schema.RAW_SCHEMA,
    )
    stats = _stats(task.shard_id, rows, tar, 0.0) | {"adopted_from": io.join(task.source_folder, task.shard_name)}
    shards.mark_done(task.raw_folder, task.shard_id, stats)
    return stats


def _images_by_key(tar_path: str) -> dict[str, tuple[str, bytes]]:
    found = {}
    for key, members in shards.iter_tar(tar_path):
        extension = next((ext for ext in IMAGE_EXTENSIONS if ext in members), None)
        if extension is not None:
            found[key] = (extension, members[extension])
    return found


def _record(source: dict) -> dict:
    """wit's row for an img2dataset row: uid, pair fields and the status in wit's vocabulary."""
    url, caption = source.get("url"), source.get("caption")
    status, error = status_of(source.get("status"), source.get("error_message"))
    row = schema.empty_row(schema.RAW_SCHEMA)
    row.update(
        make_record(
            url.strip() if isinstance(url, str) else url,
            caption,
            source=SOURCE,
            source_id=source.get("key"),
            status=status,
            error=error,
        )
    )
    return row


def status_of(i2d_status: str | None, message: str | None) -> tuple[str, str | None]:
    """wit's (status, error) for img2dataset's status and error_message."""
    if i2d_status == "success":
        return schema.OK, None
    message = message or ""
    if i2d_status == "failed_to_resize":
        return _RESIZER_ERRORS.get(message, "resize_error"), message
    for pattern, status in _DOWNLOAD_ERRORS:
        match = pattern.search(message)
        if match:
            return status or schema.http_status_name(int(match.group(1))), message
    return "connection_error" if "onnection" in message else "img2dataset_failed", message or None


def _stored(source: dict, data: bytes | None) -> dict:
    """The image facts of a stored sample, hashed from its bytes; a failure if the bytes are unusable."""
    if data is None:
        return {"status": "file_not_found", "error": f"img2dataset's tar has no image for key {source['key']}"}
    # img2dataset's own `sha256` column hashes the bytes it downloaded, before resizing: not these.
    digest = sha256_hex(data)
    try:
        phash = phash_hex(data)
    except OSError as err:  # PIL's UnidentifiedImageError is an OSError
        return {"status": "decode_error", "error": str(err)}
    return {
        "data": data,
        "sha256": digest,
        "phash": phash,
        "bytes": len(data),
        "width": source.get("width"),
        "height": source.get("height"),
        "original_width": source.get("original_width"),
        "original_height": source.get("original_height"),
    }


def run(engine, output: str, source_folder: str) -> dict:
    """Adopt every finished shard of `source_folder` into `output/raw` on `engine`; return the
    stats (the one stats shape, in OUT/raw/stats.json, where dedup and the report read it)."""
    from wit_pipeline.download.stage import summarise
    from wit_pipeline.stats import Clock, stage_stats, write_stats

    clock = Clock()
    tasks, unfinished = plan(source_folder, output)
    raw = io.join(output, "raw")
    claim.claim(raw, {"stage": "adopt", "input": claim.location(source_folder)})
    config = {"input": source_folder, "from": SOURCE}
    io.write_json(io.join(raw, "config.json"), {"stage": "adopt", **config})
    totals = summarise(engine.map_shards(adopt_shard, tasks, desc="adopt", unit_key="ok", unit_label="images"))
    totals["unfinished_source_shards"] = unfinished
    dropped = {status: n for status, n in totals["statuses"].items() if status != schema.OK}
    return write_stats(
        raw, stage_stats("adopt", engine.name, clock, totals["rows"], totals["ok"], dropped, config, totals)
    )
