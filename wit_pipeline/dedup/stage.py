"""The dedup stage: raw shard sidecars in, `keep.parquet`, `clusters.parquet`, `stats.json` out.

Every engine ends here: they produce the same two tables, and `write_outputs` sorts and writes
them, so the files are the same bytes whichever engine decided.
"""

from __future__ import annotations

import functools
import time
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from wit_pipeline import io, schema, shards
from wit_pipeline.config import DedupConfig, to_dict
from wit_pipeline.dedup import bands
from wit_pipeline.dedup.decisions import Decision, DedupResult, DedupRows, dedup_rows, read_shard_rows
from wit_pipeline.dedup.decontaminate import eval_hashes, stored_image_resize
from wit_pipeline.stats import Clock, read_stats, stage_stats, write_stats

KEEP_FILE = "keep.parquet"
CLUSTERS_FILE = "clusters.parquet"
STATS_FILE = "stats.json"


def finished_raw_shards(input_folder: str) -> list[int]:
    """The raw shards dedup reads: those with a completion marker. None is an error, unless the
    download stage finished with no shards at all (its stats.json says so)."""
    ids = shards.finished_shards(input_folder)
    if not ids:
        finished = read_stats(input_folder)
        if finished is not None and finished.get("shards") == 0:
            return []  # the download finished and had nothing to fetch: an empty result, not an error
        raise io.InputError(f"no finished raw shards (NNNNN.done markers) in {input_folder}")
    return ids


def run(
    engine,
    output: str | None,
    config: DedupConfig,
    *,
    decontaminate: str | None = None,
    input_folder: str | None = None,
    output_folder: str | None = None,
    partial: bool = False,
) -> dict:
    """Dedup the finished raw shards of OUT/raw (or `input_folder`) into OUT/dedup; return the stats.

    On Beam the whole stage is one pipeline (beam_jobs/dedup.py), because there the global
    group-by of band buckets is the algorithm. On the other engines the rows' few columns are
    read here, the band buckets are grouped by the engine (Spark: shuffled over executors; local:
    NumPy sorts in this process, which handle ten million rows) and the clusters decided here.
    An unfinished download is refused unless `partial` says to use only its finished shards.
    """
    from wit_pipeline import claim

    clock = Clock()
    input_folder = io.given_or_under(input_folder, output, "raw")
    output_folder = io.given_or_under(output_folder, output, "dedup")
    shards.check_finished(input_folder, partial)
    claim.claim(output_folder, {"stage": "dedup", "input": claim.location(input_folder)})
    if engine.name == "beam":
        from beam_jobs.dedup import run_pipeline

        stats = run_pipeline(input_folder, output_folder, config, decontaminate, engine.beam_args, engine.local_workers)
    else:
        pair_finder = bands.near_pairs if engine.name == "local" else engine_pair_finder(engine)
        stats = dedup_folder(input_folder, output_folder, config, decontaminate, pair_finder, engine.name)
    dropped = {
        "exact_duplicate": stats["exact_duplicates"],
        "near_duplicate": stats["near_duplicates"],
        "eval_overlap": stats["eval_overlaps"],
    }
    # In the one stats shape: rows_in are the rows downloaded ok (failed ones never reach dedup).
    return write_stats(
        output_folder,
        stage_stats("dedup", engine.name, clock, stats["rows_ok"], stats["kept"], dropped, stats["config"], stats),
    )


def dedup_folder(
    input_folder: str,
    output_folder: str,
    config: DedupConfig,
    decontaminate: str | None = None,
    pair_finder=bands.near_pairs,
    engine_name: str = "local",
) -> dict:
    """Dedup every finished raw shard of `input_folder` in this process; return the stats.

    Reading is a few columns per shard, and the decisions are array passes (see bands.py).
    """
    started = time.monotonic()
    shard_ids = finished_raw_shards(input_folder)
    parts: list[DedupRows] = []
    status_counts: Counter[str] = Counter()
    for shard_id in shard_ids:
        rows, counts = read_shard_rows(input_folder, shard_id)
        parts.append(rows)
        status_counts.update(counts)
    rows = DedupRows.concatenate(parts)
    references = eval_hashes(decontaminate, stored_image_resize(input_folder)) if decontaminate else None
    result = dedup_rows(rows, config, references, pair_finder)
    keep, cluster_table = result_tables(rows, result)
    engine_facts = {
        "engine": engine_name,
        "bands": result.bands,
        "near_pairs_verified": result.near_pairs,
        "huge_buckets": result.huge_buckets,
        "eval_huge_buckets": result.eval_huge_buckets,
        "seconds": round(time.monotonic() - started, 3),
    }
    stats = summarise(status_counts, keep, cluster_table, config, shard_ids, decontaminate, references, engine_facts)
    return write_outputs(output_folder, keep, cluster_table, stats)


# ---- band buckets as an engine group-by (Spark), with the same pairs as bands.near_pairs

# Distinct hashes per emit task: enough tasks to spread, few enough to start quickly.
HASHES_PER_TASK = 200_000


@dataclass(frozen=True)
class BandTask:
    hashes: np.ndarray  # distinct uint64 pHashes
    band_count: int
    radius: int


def band_entries(task: BandTask):
    """((combination, band key), pHash) for every key combination of every hash of the task."""
    layout = bands.band_layout(task.band_count)
    values = task.hashes.tolist()
    for number, combo in enumerate(bands.key_combinations(task.band_count, task.radius)):
        for key, value in zip(bands.band_keys(task.hashes, layout, combo).tolist(), values, strict=True):
            yield (number, key), value


def verify_bucket(key: tuple[int, int], values: list[int], radius: int, max_bucket: int, window: int):
    """("pair", (a, b)) for each verified pair of one bucket, ("huge", bucket) when it is huge."""
    if len(values) < 2:
        return
    hashes = np.array(sorted(values), dtype=np.uint64)
    if len(hashes) > max_bucket:
        yield "huge", bands.HugeBucket(key[0], key[1], len(hashes))
    left, right = bands.pairs_within_runs(hashes, np.array([0]), radius, max_bucket, window)
    for i, j in zip(left.tolist(), right.tolist(), strict=True):
        yield "pair", (int(hashes[i]), int(hashes[j]))


def engine_pair_finder(engine):
    """A `bands.near_pairs` whose band buckets are grouped by `engine`."""
    return functools.partial(_engine_near_pairs, engine)


def _engine_near_pairs(engine, hashes, radius, band_count=None, max_bucket=1024, window=128):
    empty = np.zeros(0, dtype=np.int64)
    if len(hashes) < 2:
        return empty, empty, []
    band_count = band_count or bands.choose_bands(len(hashes), radius)
    tasks = [
        BandTask(hashes[i : i + HASHES_PER_TASK], band_count, radius) for i in range(0, len(hashes), HASHES_PER_TASK)
    ]
    reduce = functools.partial(verify_bucket, radius=radius, max_bucket=max_bucket, window=window)
    items = engine.group_by(band_entries, tasks, reduce, desc="dedup: band buckets")
    pairs = np.array([value for kind, value in items if kind == "pair"], dtype=np.uint64).reshape(-1, 2)
    huge = [value for kind, value in items if kind == "huge"]
    if not len(pairs):
        return empty, empty, huge
    n = len(hashes)
    left, right = np.searchsorted(hashes, pairs[:, 0]), np.searchsorted(hashes, pairs[:, 1])
    packed = np.unique(left.astype(np.int64) * n + right.astype(np.int64))
    return packed // n, packed % n, huge


def result_tables(rows: DedupRows, result: DedupResult) -> tuple[pa.Table, pa.Table]:
    """The keep table (survivors) and the cluster table (see schema.CLUSTER_SCHEMA)."""
    kept = result.status == schema.OK
    keep = pa.table(
        {"uid": _strings(rows.uid[kept]), "shard": pa.array(rows.shard[kept], pa.int32())},
        schema=schema.KEEP_SCHEMA,
    )
    listed = np.flatnonzero((result.cluster_size >= 2) | (result.status == "eval_overlap"))
    survivor = result.survivor[listed]
    cluster_uid = np.where(survivor >= 0, rows.uid[np.maximum(survivor, 0)], b"")
    cluster_table = pa.table(
        {
            "uid": _strings(rows.uid[listed]),
            "shard": pa.array(rows.shard[listed], pa.int32()),
            "cluster": pc.if_else(pa.array(survivor >= 0), _strings(cluster_uid), pa.scalar(None, pa.string())),
            "distance": pa.array(result.distance[listed], pa.int8()),
            "status": pa.array(result.status[listed].astype(str), pa.string()),
        },
        schema=schema.CLUSTER_SCHEMA,
    )
    return keep, cluster_table


def tables_from_decisions(decisions: list[Decision]) -> tuple[pa.Table, pa.Table]:
    """The keep and cluster tables from every row's Decision: the row-by-row engines (Beam) end here."""
    keep = [{"uid": d.uid, "shard": d.shard} for d in decisions if d.status == schema.OK]
    listed = [
        {"uid": d.uid, "shard": d.shard, "cluster": d.survivor, "distance": d.distance, "status": d.status}
        for d in decisions
        if d.cluster_size >= 2 or d.status == "eval_overlap"
    ]
    return (
        pa.Table.from_pylist(keep, schema=schema.KEEP_SCHEMA),
        pa.Table.from_pylist(listed, schema=schema.CLUSTER_SCHEMA),
    )


def _strings(values: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(values, pa.binary()), pa.string())


def summarise(
    status_counts: Counter,
    keep: pa.Table,
    cluster_table: pa.Table,
    config: DedupConfig,
    shard_ids: list[int],
    decontaminate: str | None,
    references: np.ndarray | None,
    engine_facts: dict,
) -> dict:
    """The dedup figures: every input row accounted for, and the largest clusters."""
    dropped = Counter(cluster_table["status"].to_pylist())
    dropped.pop(schema.OK, None)
    members = cluster_table.filter(pc.is_valid(cluster_table["cluster"]))
    sizes = members.group_by("cluster").aggregate([("uid", "count")])
    sizes = sizes.sort_by([("uid_count", "descending"), ("cluster", "ascending")])
    largest = [
        {"survivor": row["cluster"], "size": row["uid_count"]}
        for row in sizes.slice(0, config.report_clusters).to_pylist()
    ]
    engine_facts = dict(engine_facts)
    for name in ("huge_buckets", "eval_huge_buckets"):
        engine_facts[name] = sorted(engine_facts.get(name, []), key=lambda b: (b["combination"], int(b["key"], 16)))
    return {
        "rows": sum(status_counts.values()),
        "rows_by_input_status": dict(sorted(status_counts.items())),
        "rows_ok": status_counts.get(schema.OK, 0),
        "kept": keep.num_rows,
        "exact_duplicates": dropped.get("exact_duplicate", 0),
        "near_duplicates": dropped.get("near_duplicate", 0),
        "eval_overlaps": dropped.get("eval_overlap", 0),
        "clusters_of_two_or_more": sizes.num_rows,
        "largest_clusters": largest,
        "raw_shards": len(shard_ids),
        "decontaminate": decontaminate,
        "eval_images_distinct_phashes": None if references is None else int(len(references)),
        "config": to_dict(config),
        **engine_facts,
    }


def write_outputs(output_folder: str, keep: pa.Table, cluster_table: pa.Table, stats: dict) -> dict:
    """Sort and write the three outputs; the stats go last, as the stage's completion mark.
    Returns the stats as written (a uid repeated across raw shards is counted there)."""
    io.makedirs(output_folder)
    keep, repeated = _one_row_per_uid(keep)
    if repeated:
        stats = stats | {"kept": keep.num_rows, "repeated_uids": repeated}
    cluster_table = cluster_table.sort_by([("cluster", "ascending"), ("uid", "ascending")])
    io.write_table(io.join(output_folder, KEEP_FILE), keep)
    io.write_table(io.join(output_folder, CLUSTERS_FILE), cluster_table)
    io.write_json(io.join(output_folder, STATS_FILE), stats)
    return stats


def _one_row_per_uid(keep: pa.Table) -> tuple[pa.Table, int]:
    """The keep list sorted by uid, each uid once: the same (url, caption) downloaded into two raw
    shards (two lists, or one fetched twice) can survive twice when its bytes differed; the copy in
    the lowest shard stays. Returns the table and how many repeats were dropped."""
    keep = keep.sort_by([("uid", "ascending"), ("shard", "ascending")])
    uids = keep["uid"].to_numpy(zero_copy_only=False)
    first = np.r_[True, uids[1:] != uids[:-1]] if len(uids) else np.zeros(0, bool)
    return keep.filter(pa.array(first)), int(len(uids) - first.sum())
