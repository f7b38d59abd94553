"""The dedup stage as a Beam pipeline: the same decisions as `wit_pipeline.dedup.stage.dedup_folder`.

The one stage with a Beam-native pipeline: on Beam, the global group-by of band buckets is the
algorithm (`stage.run` calls `run_pipeline` when the engine is Beam).

    raw shard ids -> rows (uid, shard, sha256, pHash, area) --eval overlap?--> active rows
    active rows -> distinct pHashes -> (combination, band key) -> GroupByKey (the global group-by)
      -> verified pairs inside each bucket (bands.pairs_within_runs, with the huge-bucket guard)
      -> union-find over the pairs (one worker: the pairs, not the rows)
    active rows + component of their pHash -> GroupByKey(cluster) -> decide_cluster
    decisions -> stage.write_outputs (keep.parquet, clusters.parquet, stats.json)

Identical pHashes (so identical bytes) meet in the cluster group-by without any pair, so only
pairs of distinct pHashes within the radius reach the single union-find worker. The last step
gathers the decisions on one worker to write the same sorted files as the local engine.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import apache_beam as beam
import numpy as np

from beam_jobs.options import pipeline_options
from wit_pipeline import io
from wit_pipeline.config import DedupConfig
from wit_pipeline.dedup import bands, clusters, decisions, stage
from wit_pipeline.dedup.decisions import Decision, DedupRecord
from wit_pipeline.dedup.decontaminate import eval_hashes as load_eval_hashes
from wit_pipeline.dedup.decontaminate import stored_image_resize

# Beam would infer a schema RowCoder for these NamedTuples, whose int64 fields cannot hold a pHash
# above 2**63; the generic coder writes a NamedTuple as its class and its fields, any int included.
for _record_type in (DedupRecord, Decision):
    beam.coders.registry.register_coder(_record_type, beam.coders.FastPrimitivesCoder)


def read_shard(input_folder: str, shard_id: int):
    """Rows of one raw shard as records, and its status counts under a tagged output."""
    rows, counts = decisions.read_shard_rows(input_folder, shard_id)
    yield beam.pvalue.TaggedOutput("counts", counts)
    yield from decisions.records(rows)


def mark_eval_overlaps(batch: list[DedupRecord], references: np.ndarray, config: DedupConfig):
    """Split a batch of records into active rows and eval-overlap decisions."""
    phash = np.array([r.phash or 0 for r in batch], dtype=np.uint64)
    has_phash = np.array([r.phash is not None for r in batch], dtype=bool)
    overlap, nearest, huge = decisions.eval_overlaps(phash, has_phash, references, config)
    for bucket in huge:
        yield beam.pvalue.TaggedOutput("eval_huge", bucket.to_dict())
    for record, hit, distance in zip(batch, overlap, nearest, strict=True):
        if hit:
            decision = Decision(record.uid, record.shard, None, int(distance), "eval_overlap", 0)
            yield beam.pvalue.TaggedOutput("overlaps", decision)
        else:
            yield record


def band_keys(batch: list[int], band_count: int, radius: int):
    """The library's band entries (`stage.band_entries`, the Spark engine's too) for a batch of
    distinct pHashes: keys computed a batch at a time, not one array per hash."""
    yield from stage.band_entries(stage.BandTask(np.array(batch, dtype=np.uint64), band_count, radius))


def verify_bucket(entry, config: DedupConfig):
    """The library's verification of one bucket (`stage.verify_bucket`); huge buckets tagged."""
    key, values = entry
    found = stage.verify_bucket(key, list(values), config.radius, config.max_bucket, config.huge_bucket_window)
    for kind, value in found:
        yield beam.pvalue.TaggedOutput("huge", value.to_dict()) if kind == "huge" else value


def components(pairs: list[tuple[int, int]]):
    """(pHash, component root pHash) for every pHash in a pair; the root is the smallest member."""
    if not pairs:
        return
    array = np.array(pairs, dtype=np.uint64)
    nodes, inverse = np.unique(array, return_inverse=True)
    inverse = inverse.reshape(array.shape)
    labels = clusters.connected_components(len(nodes), inverse[:, 0], inverse[:, 1])
    yield from zip(nodes.tolist(), nodes[labels].tolist(), strict=True)


def cluster_key(record: DedupRecord) -> tuple:
    """The group of rows that are one node: a pHash, else a sha256, else the row itself."""
    if record.phash is not None:
        return ("phash", record.phash)
    return ("sha256", record.sha256) if record.sha256 else ("uid", record.uid)


def attach_component(entry):
    """Rows of one node, keyed by their cluster: the node's component root, or the node itself."""
    node, grouped = entry
    roots = list(grouped["root"])
    key = ("phash", roots[0]) if roots else node
    for record in grouped["rows"]:
        yield key, record


def decide(entry) -> Iterator[Decision]:
    """Decisions for one cluster's rows, each with the cluster's size."""
    _, members = entry
    members = sorted(members)
    for decision in decisions.decide_cluster(members):
        yield decision._replace(cluster_size=len(members))


def write_all(
    every_decision,
    status_counts,
    huge,
    eval_huge,
    near_pair_count,
    band_count,
    output_folder,
    config,
    decontaminate,
    references,
    shard_ids,
):
    """On one worker: the same tables, stats and files as the local engine writes."""
    keep, cluster_table = stage.tables_from_decisions(every_decision)
    facts = {
        "engine": "beam",
        "bands": band_count,
        "near_pairs_verified": near_pair_count,
        "huge_buckets": huge,
        "eval_huge_buckets": eval_huge,
    }
    counts = Counter()
    for part in status_counts:
        counts.update(part)
    stats = stage.summarise(counts, keep, cluster_table, config, shard_ids, decontaminate, references, facts)
    return stage.write_outputs(output_folder, keep, cluster_table, stats)


def build(pipeline, input_folder, output_folder, config, decontaminate, references, shard_ids):
    """Add the dedup steps to `pipeline` (see the module docstring for the shape)."""
    read = (
        pipeline
        | "Shards" >> beam.Create(shard_ids)
        | "Spread" >> beam.Reshuffle()
        | "Read"
        >> beam.FlatMap(lambda shard_id: read_shard(input_folder, shard_id)).with_outputs("counts", main="rows")
    )
    if references is not None:
        split = (
            read.rows
            | "Batch" >> beam.BatchElements(min_batch_size=1000, max_batch_size=100_000)
            | "Overlaps"
            >> beam.FlatMap(mark_eval_overlaps, references, config).with_outputs("overlaps", "eval_huge", main="active")
        )
        active, overlaps, eval_huge = split.active, split.overlaps, split.eval_huge
    else:
        active = read.rows
        overlaps = pipeline | "NoOverlaps" >> beam.Create([])
        eval_huge = pipeline | "NoEvalHuge" >> beam.Create([])

    distinct = (
        active
        | "PHashes" >> beam.FlatMap(lambda r: [r.phash] if r.phash is not None else [])
        | "Distinct" >> beam.Distinct()
    )
    count = distinct | "Count" >> beam.combiners.Count.Globally()
    band_count = count | "Bands" >> beam.Map(lambda n: config.bands or bands.choose_bands(n, config.radius))
    verified = (
        distinct
        | "BatchHashes" >> beam.BatchElements(min_batch_size=1000, max_batch_size=stage.HASHES_PER_TASK)
        | "Keys"
        >> beam.FlatMap(lambda batch, m: band_keys(batch, m, config.radius), beam.pvalue.AsSingleton(band_count))
        | "Buckets" >> beam.GroupByKey()
        | "Verify" >> beam.FlatMap(verify_bucket, config).with_outputs("huge", main="pairs")
    )
    pairs = verified.pairs | "UniquePairs" >> beam.Distinct()
    roots = (
        pairs
        | "AllPairs" >> beam.combiners.ToList()
        | "UnionFind" >> beam.FlatMap(components)
        | "RootByNode" >> beam.Map(lambda item: (("phash", item[0]), item[1]))
    )
    by_node = active | "ByNode" >> beam.Map(lambda r: (cluster_key(r), r))
    decided = (
        {"rows": by_node, "root": roots}
        | "Join" >> beam.CoGroupByKey()
        | "ToCluster" >> beam.FlatMap(attach_component)
        | "Clusters" >> beam.GroupByKey()
        | "Decide" >> beam.FlatMap(decide)
    )
    everything = (decided, overlaps) | "AllDecisions" >> beam.Flatten()
    pair_count = pairs | "CountPairs" >> beam.combiners.Count.Globally()
    (
        everything
        | "Gather" >> beam.combiners.ToList()
        | "Write"
        >> beam.Map(
            write_all,
            beam.pvalue.AsList(read.counts),
            beam.pvalue.AsList(verified.huge),
            beam.pvalue.AsList(eval_huge),
            beam.pvalue.AsSingleton(pair_count),
            beam.pvalue.AsSingleton(band_count),
            output_folder,
            config,
            decontaminate,
            references,
            shard_ids,
        )
    )


def run_pipeline(
    input_folder: str,
    output_folder: str,
    config: DedupConfig,
    decontaminate: str | None = None,
    beam_args: list[str] | None = None,
    local_workers: int = 2,
) -> dict:
    """Run dedup on Beam (FnApiRunner by default, `local_workers` processes; any runner via
    `beam_args`); return the stats."""
    started = time.monotonic()
    shard_ids = stage.finished_raw_shards(input_folder)
    references = load_eval_hashes(decontaminate, stored_image_resize(input_folder)) if decontaminate else None
    with beam.Pipeline(options=pipeline_options(beam_args, local_workers)) as pipeline:
        build(pipeline, input_folder, output_folder, config, decontaminate, references, shard_ids)
    stats = io.read_json(io.join(output_folder, stage.STATS_FILE))
    stats["seconds"] = round(time.monotonic() - started, 3)
    return stats
