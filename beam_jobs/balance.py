"""`wit balance` on Apache Beam: the same library functions as the local engine, wired as a pipeline.

ingest parts | Reshuffle | rows -> (part id, row index, row)
  entries | CombinePerKey(sum)                         global match count per entry (side input)
  rows | pair_status(uid, entries, counts)             the seeded pure draw, row by row
  rows | group by (file kind, part id) | write         same files as the local engine
  kept entries | CombinePerKey(sum)                    counts after; entry_counts.parquet, stats
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.metrics import Metrics

from wit_pipeline import balance, schema, shards
from wit_pipeline.config import BalanceConfig


class WriteFileFn(beam.DoFn):
    def __init__(self, output: str):
        self.output = output

    def process(self, keyed):
        (kind, part_id), indexed_rows = keyed
        counts = balance.write_indexed_rows(self.output, kind, part_id, indexed_rows)
        for status, count in counts.items():
            Metrics.counter(balance.STAGE, status).inc(count)
        yield counts


def _entry_ones(item):
    return [(entry, 1) for entry in item[2]["entries"] or []]


def _by_file(item):
    part_id, index, row = item
    return ("part" if row["status"] == schema.OK else "dropped", part_id), (index, row)


def _sum_counts(dicts):
    total: dict[str, int] = {}
    for counts in dicts:
        for key, value in counts.items():
            total[key] = total.get(key, 0) + value
    return total


def _write_outputs(statuses, before, after, output: str, config: BalanceConfig):
    return balance.write_outputs(
        output, statuses, balance.dense_counts(before), balance.dense_counts(after), config
    )


def build(pipeline, output: str, config: BalanceConfig):
    parts = balance.ingest_parts(output)
    shards.makedirs(shards.join(balance.balance_folder(output), "dropped"))
    rows = (
        pipeline
        | "Parts" >> beam.Create(parts)
        | "Spread" >> beam.Reshuffle()
        | "Rows" >> beam.FlatMap(balance.read_part_rows)
    )
    before = (
        rows | "Entries" >> beam.FlatMap(_entry_ones) | "CountBefore" >> beam.CombinePerKey(sum)
    )
    decided = rows | "Decide" >> beam.Map(balance.decide_row, beam.pvalue.AsDict(before), config)
    placeholders = pipeline | "EveryPart" >> beam.Create(
        [((kind, part_id), None) for part_id, _ in parts for kind in ("part", "dropped")]
    )
    statuses = (
        (decided | "ByFile" >> beam.Map(_by_file), placeholders)
        | "WithPlaceholders" >> beam.Flatten()
        | "GroupFile" >> beam.GroupByKey()
        | "Write" >> beam.ParDo(WriteFileFn(output))
        | "Total" >> beam.CombineGlobally(_sum_counts)
    )
    after = (
        decided
        | "Kept" >> beam.Filter(lambda item: item[2]["status"] == schema.OK)
        | "KeptEntries" >> beam.FlatMap(_entry_ones)
        | "CountAfter" >> beam.CombinePerKey(sum)
    )
    return statuses | "Outputs" >> beam.Map(
        _write_outputs,
        beam.pvalue.AsDict(before),
        beam.pvalue.AsDict(after),
        output,
        config,
    )


def run(output: str, config: BalanceConfig, beam_args=None, workers: int = 2) -> dict:
    import json

    import fsspec

    from beam_jobs.options import pipeline_options

    with beam.Pipeline(options=pipeline_options(beam_args, workers)) as pipeline:
        build(pipeline, output, config)
    with fsspec.open(shards.join(balance.balance_folder(output), balance.STATS_FILE), "rt") as f:
        return json.load(f)
