"""`wit ingest` on Apache Beam: the same library functions as the local engine, wired as a pipeline.

shards | Reshuffle | text stage per shard -> (shard id, row index, row)
  ok rows | group by uid | first occurrence kept, the rest `duplicate`    (global exact dedup)
  all rows | group by (file kind, shard id) | write the part files      (same files as local)
  status counts | combine globally | ingest_stats.json; Beam counters per status
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.metrics import Metrics

from wit_pipeline import ingest, schema, shards
from wit_pipeline.config import IngestConfig
from wit_pipeline.sources.base import Source
from wit_pipeline.text.pipeline import TextStage


class TextStageFn(beam.DoFn):
    """Runs the text stage over one source shard; the model and automaton load once per worker."""

    def __init__(self, source: Source, config: IngestConfig):
        self.source = source
        self.stage = TextStage(config)

    def setup(self):
        self.stage.load()

    def process(self, shard):
        records = self.source.read(shard)
        extra = ingest.extra_column_names(self.source, shard)
        for index, row in enumerate(ingest.process_records(self.stage, records, extra)):
            yield shard.shard_id, index, row


class WriteFileFn(beam.DoFn):
    """Writes one file of one shard and counts its rows per status in Beam metrics."""

    def __init__(self, folder: str):
        self.folder = folder

    def process(self, keyed):
        (kind, shard_id), indexed_rows = keyed
        counts = ingest.write_indexed_rows(self.folder, kind, shard_id, indexed_rows)
        for status, count in counts.items():
            Metrics.counter(ingest.STAGE, status).inc(count)
        yield counts


def _by_file(item):
    shard_id, index, row = item
    return (ingest.row_kind(row), shard_id), (index, row)


def _sum_counts(dicts):
    total: dict[str, int] = {}
    for counts in dicts:
        ingest.add_counts(total, counts)
    return total


def _write_summary(statuses, folder: str, config: IngestConfig):
    return ingest.write_summary(folder, ingest.summarise(statuses, 0, config))


def build(pipeline, source: Source, output: str, config: IngestConfig):
    """Add the ingest stage to `pipeline`; returns the PCollection holding the summary dict."""
    folder = ingest.ingest_folder(output)
    shards.makedirs(shards.join(folder, "dropped"))
    shard_list = source.shards()
    rows = (
        pipeline
        | "Shards" >> beam.Create(shard_list)
        | "Spread" >> beam.Reshuffle()
        | "TextStage" >> beam.ParDo(TextStageFn(source, config))
    )
    kept = rows | "Ok" >> beam.Filter(lambda item: item[2]["status"] == schema.OK)
    dropped = rows | "NotOk" >> beam.Filter(lambda item: item[2]["status"] != schema.OK)
    deduped = (
        kept
        | "ByUid" >> beam.Map(lambda item: (item[2]["uid"], item))
        | "GroupUid" >> beam.GroupByKey()
        | "FirstOccurrence" >> beam.FlatMap(lambda kv: ingest.first_occurrences(kv[1]))
    )
    # Every shard gets its kept and dropped files, even empty ones, as on the local engine.
    placeholders = pipeline | "EveryShard" >> beam.Create(
        [((kind, shard.shard_id), None) for shard in shard_list for kind in ("part", "dropped")]
    )
    counts = (
        ((deduped, dropped) | "AllRows" >> beam.Flatten() | "ByFile" >> beam.Map(_by_file), placeholders)
        | "WithPlaceholders" >> beam.Flatten()
        | "GroupFile" >> beam.GroupByKey()
        | "Write" >> beam.ParDo(WriteFileFn(folder))
    )
    return (
        counts
        | "Total" >> beam.CombineGlobally(_sum_counts)
        | "Summary" >> beam.Map(_write_summary, folder, config)
    )


def run(source: Source, output: str, config: IngestConfig, beam_args=None, workers: int = 2) -> dict:
    """Run the ingest pipeline to completion and return its summary (read back from disk)."""
    import json

    import fsspec

    from beam_jobs.options import pipeline_options

    ingest.claim_output(source, output, config)
    with beam.Pipeline(options=pipeline_options(beam_args, workers)) as pipeline:
        build(pipeline, source, output, config)
    with fsspec.open(shards.join(ingest.ingest_folder(output), ingest.STATS_FILE), "rt") as f:
        return json.load(f)
