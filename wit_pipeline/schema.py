"""The one record of wit: its Arrow schemas, its key and its status values.

Every stage writes Parquet whose columns are a prefix-compatible growth of the same record:
ingest and balance write TEXT_SCHEMA, download writes RAW_SCHEMA (TEXT_SCHEMA plus image facts).
Snapshots of each schema live in `schemas/*.json`; `tests/test_schema.py` fails when they drift.
"""

from __future__ import annotations

import hashlib
import json
import re

import pyarrow as pa

SCHEMA_VERSION = 1


def uid(url: str | None, caption: str | None) -> str:
    """The 128-bit key of a pair as 32 hex characters: blake2b of `url` + tab + `caption`.

    A pure function of the pair's text, so the same pair gets the same key on every engine,
    partitioning and rerun. A missing url or caption hashes as the empty string.
    """
    text = f"{url or ''}\t{caption or ''}"
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


# One place for every status a row can carry. `ok` rows go on; every other value names why a row
# stopped, and that row is still written (to a dropped part or with its status), never lost.
OK = "ok"
STATUSES: dict[str, str] = {
    OK: "the row passed this stage",
    # input validation (any source)
    "invalid_url": "the URL is null, empty, not http(s) or unparseable",
    "missing_caption": "the caption is null",
    "malformed_record": "the source record could not be parsed (see error)",
    "duplicate": "the same (url, caption) pair appeared earlier in the input",
    "unreadable_input": "the input stream failed part-way (truncated or corrupt compression, invalid "
    "JSON, read error): the error names the file and where; rows after that point are lost",
    "not_an_image": "the source marks the item as a video or other non-image media (YFCC marker 1)",
    "missing_image_file": "local-image mode: the image file that the source names is not on disk",
    "not_natural_language": "the caption is a camera file name, a date or digit run, empty, or tags "
    "only (CLIP's natural-language rule for YFCC titles and descriptions)",
    # ingest: caption filters (wit_pipeline/filters/), language ID, query matching
    "url_only": "the caption is only a URL",
    "filename_only": "the caption is only a file name or a camera's default name (IMG_1234.JPG)",
    "digits_only": "the caption has digits but no letters",
    "too_short": "the caption has fewer characters than the minimum (DataComp: more than 5)",
    "too_few_words": "the caption has fewer words than the minimum (DataComp: more than 2)",
    "too_long": "the caption has more characters than the maximum",
    "blocklisted": "the caption contains a blocklisted word",
    "lang_not_en": "fastText's top language is not English, or its probability is below the threshold",
    # balance
    "no_query_match": "the caption matches no query-list entry (dropped by balance unless kept by flag)",
    "not_sampled": "balance drew none of the caption's entries (every entry it matches is over the cap)",
    # download: network
    "timeout": "the server was slower than the timeout",
    "connection_error": "the connection failed or dropped (after retries)",
    "dns_error": "the host name did not resolve",
    "too_many_redirects": "a redirect loop or a redirect chain longer than allowed",
    "private_address": "the host resolves to a private, loopback, link-local or reserved address",
    "opted_out": "the server opted out with an X-Robots-Tag directive (noai, noimageai, ...)",
    "bad_content_type": "the Content-Type is not an image type",
    "too_large_bytes": "the body is larger than the byte cap",
    # download: image checks
    "truncated_image": "the image data ends before its format's end marker",
    "decode_error": "the bytes are not a decodable image",
    "decompression_bomb": "the declared pixel count exceeds the decompression-bomb limit",
    "too_small": "the image's shorter side is below the minimum size",
    "too_large_area": "the image's area exceeds the maximum",
    "bad_aspect_ratio": "the image's aspect ratio exceeds the maximum",
    "resize_error": "the resizer failed (see error)",
    "file_not_found": "the local image file (image_path) is missing or unreadable",
    "untrusted_path": "image_path is not under the trusted --image-root (or none was given): not read",
    "internal_error": "an unexpected error while processing this row (traceback in error)",
    "img2dataset_failed": "adopted from img2dataset, which recorded a failure that no other status names "
    "(its error_message is in error)",
    # dedup
    "exact_duplicate": "the same image bytes (sha256) as the survivor of its duplicate cluster",
    "near_duplicate": "within the pHash radius of another image of its cluster, and not the survivor",
    "eval_overlap": "within the pHash radius of an image of the evaluation set (decontamination)",
}


# An HTTP error answer is recorded as `http_<code>` (http_404, http_503 ...), as the design lists.
_HTTP_STATUS = re.compile(r"^http_\d{3}$")


def http_status_name(code: int) -> str:
    return f"http_{code}"


def check_status(status: str) -> str:
    """Return `status` if it is a registered status; raise ValueError naming it otherwise."""
    if status not in STATUSES and not _HTTP_STATUS.match(status):
        raise ValueError(f"unknown status {status!r}; register it in wit_pipeline.schema.STATUSES")
    return status


PAIR_FIELDS = [
    pa.field("uid", pa.string(), nullable=False),
    pa.field("url", pa.string()),
    pa.field("caption", pa.string()),
    pa.field("source", pa.string()),
    pa.field("source_id", pa.string()),
    pa.field("page_url", pa.string()),
    pa.field("license", pa.string()),
    # Set when the image is already on disk (COCO with --image-root): download reads this path
    # instead of fetching `url`, while `url` stays the canonical address that keys the pair.
    pa.field("image_path", pa.string()),
    # The <img> width/height attributes of a crawled page (WARC), as written by the page: a hint
    # for cheap size filtering before any fetch, not the image's real size.
    pa.field("width_hint", pa.int32()),
    pa.field("height_hint", pa.int32()),
    pa.field("status", pa.string(), nullable=False),
    pa.field("error", pa.string()),
]

TEXT_FIELDS = [
    pa.field("caption_original", pa.string()),
    pa.field("lang", pa.string()),
    pa.field("lang_score", pa.float32()),
    pa.field("entries", pa.list_(pa.int32())),
]

IMAGE_FIELDS = [
    pa.field("http_status", pa.int32()),
    pa.field("sha256", pa.string()),
    # 16 hex characters: a 64-bit pHash can exceed 2**63, which int64 cannot hold.
    pa.field("phash", pa.string()),
    pa.field("width", pa.int32()),
    pa.field("height", pa.int32()),
    pa.field("original_width", pa.int32()),
    pa.field("original_height", pa.int32()),
    pa.field("bytes", pa.int64()),
]

TEXT_SCHEMA = pa.schema(PAIR_FIELDS + TEXT_FIELDS, metadata={"wit.schema_version": str(SCHEMA_VERSION)})
RAW_SCHEMA = pa.schema(PAIR_FIELDS + TEXT_FIELDS + IMAGE_FIELDS, metadata={"wit.schema_version": str(SCHEMA_VERSION)})

# dedup/keep.parquet: the survivors, with the raw shard that holds each (reshard reads only those).
KEEP_SCHEMA = pa.schema(
    [pa.field("uid", pa.string(), nullable=False), pa.field("shard", pa.int32(), nullable=False)],
    metadata={"wit.schema_version": str(SCHEMA_VERSION)},
)
# dedup/clusters.parquet: every row that entered dedup and was not kept alone: the members of
# clusters of two or more (the survivor included, with distance 0) and the eval overlaps.
CLUSTER_SCHEMA = pa.schema(
    [
        pa.field("uid", pa.string(), nullable=False),
        pa.field("shard", pa.int32(), nullable=False),
        # The survivor's uid: stable on every engine, unlike a running number.
        pa.field("cluster", pa.string()),
        # Hamming distance of this row's pHash to the survivor's (can exceed the radius in chains).
        pa.field("distance", pa.int8()),
        pa.field("status", pa.string(), nullable=False),
    ],
    metadata={"wit.schema_version": str(SCHEMA_VERSION)},
)

SCHEMAS: dict[str, pa.Schema] = {
    "text": TEXT_SCHEMA,
    "raw": RAW_SCHEMA,
    "keep": KEEP_SCHEMA,
    "clusters": CLUSTER_SCHEMA,
}


def with_extra_columns(schema: pa.Schema, extra: dict[str, pa.DataType]) -> pa.Schema:
    """`schema` followed by user columns carried through from the input (`--keep-cols`)."""
    clashes = [name for name in extra if name in schema.names]
    if clashes:
        raise ValueError(f"extra columns {clashes} clash with wit's own columns; rename them in the input")
    for name, dtype in extra.items():
        schema = schema.append(pa.field(name, dtype))
    return schema


def schema_to_json(schema: pa.Schema) -> str:
    """A stable, human-readable JSON snapshot of a schema (names, types, nullability)."""
    fields = [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in schema]
    return json.dumps({"version": SCHEMA_VERSION, "fields": fields}, indent=2) + "\n"


def empty_row(schema: pa.Schema) -> dict:
    """A row of `schema` with every column null, to be filled in by a stage."""
    return {name: None for name in schema.names}


def write_snapshots(folder: str) -> list[str]:
    """Write `<folder>/<name>.json` for every schema in SCHEMAS; returns the paths written.

    Regenerate after an intended schema change with:
    python -c "from wit_pipeline.schema import write_snapshots; write_snapshots('schemas')"
    """
    import os

    paths = []
    for name, value in SCHEMAS.items():
        path = os.path.join(folder, f"{name}.json")
        with open(path, "w") as f:
            f.write(schema_to_json(value))
        paths.append(path)
    return paths
