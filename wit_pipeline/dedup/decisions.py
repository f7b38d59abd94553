"""Dedup's decisions: which rows are exact or near duplicates, or overlap the evaluation set, and
which row of each cluster survives; made on the few columns dedup needs, as compact numpy arrays.

Dedup reads only the Parquet sidecars, and only five columns of them. Ten million rows fit in
about 1.3 GB as fixed-width arrays (uid 32 bytes, sha256 64 bytes, pHash, area, shard), where
Python strings would take several times that.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from wit_pipeline import io, schema, shards
from wit_pipeline.config import DedupConfig
from wit_pipeline.dedup import bands, clusters

DEDUP_COLUMNS = ["uid", "status", "sha256", "phash", "original_width", "original_height"]


@dataclass
class DedupRows:
    """The `ok` rows of the raw shards: one array element per row."""

    uid: np.ndarray  # S32
    shard: np.ndarray  # int32: the raw shard that holds the row
    sha256: np.ndarray  # S64; b"" when missing
    phash: np.ndarray  # uint64; 0 where has_phash is False
    has_phash: np.ndarray  # bool
    area: np.ndarray  # int64: original width x height; 0 when unknown

    def __len__(self) -> int:
        return len(self.uid)

    @staticmethod
    def concatenate(parts: list[DedupRows]) -> DedupRows:
        if not parts:
            return DedupRows.empty()
        return DedupRows(*(np.concatenate([getattr(p, name) for p in parts]) for name in _ROW_FIELDS))

    @staticmethod
    def empty() -> DedupRows:
        return DedupRows(
            np.zeros(0, "S32"),
            np.zeros(0, np.int32),
            np.zeros(0, "S64"),
            np.zeros(0, np.uint64),
            np.zeros(0, bool),
            np.zeros(0, np.int64),
        )


_ROW_FIELDS = ["uid", "shard", "sha256", "phash", "has_phash", "area"]


def read_shard_rows(folder: str, shard_id: int) -> tuple[DedupRows, dict[str, int]]:
    """The `ok` rows of one raw shard's sidecar, and the count of its rows per status."""
    path = io.join(folder, f"{shards.shard_name(shard_id)}.parquet")
    table = io.read_parquet(path, columns=DEDUP_COLUMNS)
    status_counts = {
        str(entry["values"]): int(entry["counts"]) for entry in pc.value_counts(table["status"]).to_pylist()
    }
    table = table.filter(pc.equal(table["status"], schema.OK))
    phash = table["phash"]
    has_phash = pc.fill_null(pc.is_valid(phash), False).to_numpy(zero_copy_only=False)
    width = pc.fill_null(table["original_width"], 0).to_numpy().astype(np.int64)
    height = pc.fill_null(table["original_height"], 0).to_numpy().astype(np.int64)
    rows = DedupRows(
        uid=fixed_width_bytes(table["uid"], 32, f"{path}: uid"),
        shard=np.full(table.num_rows, shard_id, dtype=np.int32),
        sha256=fixed_width_bytes(table["sha256"], 64, f"{path}: sha256"),
        phash=hex_to_uint64(fixed_width_bytes(phash, 16, f"{path}: phash")),
        has_phash=has_phash,
        area=width * height,
    )
    return rows, status_counts


def fixed_width_bytes(column: pa.ChunkedArray, width: int, what: str) -> np.ndarray:
    """A string column whose values all have `width` characters, as a numpy S<width> array.

    Nulls become b"". Any other length is an error that names the column, never a silent cut.
    """
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    array = pc.cast(array, pa.large_string()) if len(array) else pa.array([], pa.large_string())
    lengths = pc.binary_length(array)
    bad = pc.and_(pc.is_valid(lengths), pc.not_equal(lengths, width))
    if pc.any(bad).as_py():
        example = array.filter(bad)[0].as_py()
        raise io.InputError(f"{what}: expected {width}-character values, found {example!r}")
    if len(array) == 0:
        return np.zeros(0, f"S{width}")
    # Every value is now exactly `width` bytes, so the data buffer is one S<width> array.
    filled = pc.fill_null(array, "0" * width)
    first = int(np.frombuffer(filled.buffers()[1], dtype=np.int64)[filled.offset])
    values = np.frombuffer(filled.buffers()[2], dtype=f"S{width}", count=len(filled), offset=first)
    values = values.copy()
    values[~pc.is_valid(array).to_numpy(zero_copy_only=False)] = b""
    return values


_HEX_VALUE = np.full(256, 255, dtype=np.uint8)
for _digit, _char in enumerate(b"0123456789abcdef"):
    _HEX_VALUE[_char] = _digit
for _digit, _char in enumerate(b"ABCDEF", start=10):
    _HEX_VALUE[_char] = _digit


def hex_to_uint64(values: np.ndarray) -> np.ndarray:
    """S16 hex strings to uint64 (b"" gives 0), vectorised; a non-hex character is an error."""
    if len(values) == 0:
        return np.zeros(0, dtype=np.uint64)
    digits = _HEX_VALUE[values.view(np.uint8).reshape(len(values), 16)]
    empty = values == b""
    digits[empty] = 0
    if (digits == 255).any():
        raise io.InputError(f"not a 16-digit hex pHash: {values[(digits == 255).any(axis=1)][0]!r}")
    weights = np.uint64(16) ** np.arange(15, -1, -1, dtype=np.uint64)
    return (digits.astype(np.uint64) * weights).sum(axis=1, dtype=np.uint64)


@dataclass
class DedupResult:
    """Per-row decisions on a DedupRows, plus figures for the stats."""

    status: np.ndarray  # object: ok | exact_duplicate | near_duplicate | eval_overlap
    survivor: np.ndarray  # int64 row index of the cluster's survivor (-1 for eval overlaps)
    distance: np.ndarray  # int8: to the survivor, or to the nearest eval image
    cluster_size: np.ndarray  # int64: size of the row's cluster (0 for eval overlaps)
    bands: int
    near_pairs: int
    huge_buckets: list[dict] = field(default_factory=list)
    # Huge buckets met while matching against the eval set (their bounds depend on batching).
    eval_huge_buckets: list[dict] = field(default_factory=list)


def dedup_rows(
    rows: DedupRows, config: DedupConfig, eval_hashes: np.ndarray | None = None, pair_finder=bands.near_pairs
) -> DedupResult:
    """Decide every row: keep it, or drop it as an exact or near duplicate or an eval overlap.

    1. Rows within the radius of an eval hash are dropped first (`eval_overlap`).
    2. The rest become nodes: one per distinct pHash (identical bytes have identical pHashes,
       so exact duplicates share a node); rows without a pHash get one node per sha256.
    3. Distinct pHashes within the radius are joined (bands.near_pairs), nodes are clustered
       (union-find), and each cluster keeps one survivor (clusters.choose_survivors).

    `pair_finder` has `bands.near_pairs`'s signature; an engine's band group-by replaces it
    (`stage.engine_pair_finder`) and finds the same pairs.
    """
    n = len(rows)
    status = np.full(n, schema.OK, dtype=object)
    survivor = np.full(n, -1, dtype=np.int64)
    distance = np.zeros(n, dtype=np.int8)
    cluster_size = np.zeros(n, dtype=np.int64)
    overlap, overlap_distance, eval_huge = eval_overlaps(rows.phash, rows.has_phash, eval_hashes, config)
    status[overlap] = "eval_overlap"
    distance[overlap] = overlap_distance[overlap]

    active = np.flatnonzero(~overlap)
    node, distinct_hashes = _nodes(rows, active)
    n_distinct = len(distinct_hashes)
    used_bands = config.bands or bands.choose_bands(n_distinct, config.radius)
    left, right, huge = pair_finder(
        distinct_hashes, config.radius, used_bands, config.max_bucket, config.huge_bucket_window
    )
    n_nodes = int(node.max()) + 1 if len(node) else 0
    component = clusters.connected_components(n_nodes, left, right)
    cluster = component[node]

    sizes = np.bincount(cluster, minlength=n_nodes)
    cluster_size[active] = sizes[cluster]
    # A row alone in its cluster survives; only shared clusters need the (string) sort.
    chosen = active.copy()
    shared = np.flatnonzero(sizes[cluster] >= 2)
    members = active[shared]
    chosen[shared] = members[clusters.choose_survivors(cluster[shared], rows.area[members], rows.uid[members])]
    survivor[active] = chosen
    dropped = active[chosen != active]
    dropped_survivor = survivor[dropped]
    same_bytes = (rows.sha256[dropped] == rows.sha256[dropped_survivor]) & (rows.sha256[dropped] != b"")
    status[dropped] = np.where(same_bytes, "exact_duplicate", "near_duplicate")
    both_hashed = rows.has_phash[dropped] & rows.has_phash[dropped_survivor]
    distance[dropped] = np.where(both_hashed, bands.hamming(rows.phash[dropped], rows.phash[dropped_survivor]), 0)
    return DedupResult(
        status=status,
        survivor=survivor,
        distance=distance,
        cluster_size=cluster_size,
        bands=used_bands,
        near_pairs=len(left),
        huge_buckets=[bucket.to_dict() for bucket in huge],
        eval_huge_buckets=[bucket.to_dict() for bucket in eval_huge],
    )


def eval_overlaps(
    phash: np.ndarray, has_phash: np.ndarray, eval_hashes: np.ndarray | None, config: DedupConfig
) -> tuple[np.ndarray, np.ndarray, list]:
    """Which rows lie within the radius of an eval hash, and their distance to the nearest one."""
    n = len(phash)
    overlap = np.zeros(n, dtype=bool)
    nearest = np.zeros(n, dtype=np.int8)
    if eval_hashes is None or len(eval_hashes) == 0:
        return overlap, nearest, []
    hashed = np.flatnonzero(has_phash)
    distinct, inverse = np.unique(phash[hashed], return_inverse=True)
    references = np.unique(eval_hashes.astype(np.uint64))
    query, reference, huge = bands.cross_pairs(
        distinct, references, config.radius, config.bands, config.max_bucket, config.huge_bucket_window
    )
    best = np.full(len(distinct), 127, dtype=np.int8)
    np.minimum.at(best, query, bands.hamming(distinct[query], references[reference]))
    hit = best <= config.radius
    overlap[hashed] = hit[inverse]
    nearest[hashed] = np.where(hit[inverse], best[inverse], 0)
    return overlap, nearest, huge


def _nodes(rows: DedupRows, active: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Node of each active row, and the distinct pHashes (nodes 0..len-1 are those hashes).

    Rows without a pHash follow: one node per distinct sha256, or one each if that is missing too.
    """
    node = np.empty(len(active), dtype=np.int64)
    hashed = rows.has_phash[active]
    distinct_hashes, inverse = np.unique(rows.phash[active][hashed], return_inverse=True)
    node[hashed] = inverse
    next_node = len(distinct_hashes)
    unhashed = np.flatnonzero(~hashed)
    shas = rows.sha256[active][unhashed]
    with_sha = shas != b""
    distinct_shas, sha_inverse = np.unique(shas[with_sha], return_inverse=True)
    node[unhashed[with_sha]] = next_node + sha_inverse
    next_node += len(distinct_shas)
    alone = unhashed[~with_sha]
    node[alone] = next_node + np.arange(len(alone))
    return node, distinct_hashes


class DedupRecord(NamedTuple):
    """One `ok` row as the row-by-row engines (Beam) carry it."""

    uid: str
    shard: int
    sha256: str  # "" when missing
    phash: int | None
    area: int  # original width x height; 0 when unknown


class Decision(NamedTuple):
    """What dedup decided for one row: kept (`ok`, its own survivor) or dropped, and why."""

    uid: str
    shard: int
    survivor: str | None  # the uid kept for its cluster; None for an eval overlap
    distance: int  # Hamming distance of its pHash to the survivor's (or the nearest eval image's)
    status: str  # ok, exact_duplicate, near_duplicate or eval_overlap
    cluster_size: int = 0  # rows in its cluster (0 for an eval overlap)


def decide_cluster(members: list[DedupRecord]) -> list[Decision]:
    """The decisions of one cluster's rows, row by row (the Beam engine's path): the same rule
    as `dedup_rows`. `cluster_size` is left for the caller, which knows the whole cluster."""
    survivor = min(members, key=lambda row: clusters.survivor_key(row.area, row.uid))
    decisions = []
    for row in members:
        if row.uid == survivor.uid:
            decisions.append(Decision(row.uid, row.shard, row.uid, 0, schema.OK))
            continue
        status = "exact_duplicate" if row.sha256 and row.sha256 == survivor.sha256 else "near_duplicate"
        distance = 0
        if row.phash is not None and survivor.phash is not None:
            distance = bin(row.phash ^ survivor.phash).count("1")
        decisions.append(Decision(row.uid, row.shard, survivor.uid, distance, status))
    return decisions


def records(rows: DedupRows) -> list[DedupRecord]:
    """Every row as a DedupRecord, for the row-by-row engines."""
    return [
        DedupRecord(uid.decode(), int(shard), sha.decode(), int(phash) if has else None, int(area))
        for uid, shard, sha, phash, has, area in zip(
            rows.uid, rows.shard, rows.sha256, rows.phash, rows.has_phash, rows.area, strict=True
        )
    ]
