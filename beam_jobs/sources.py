"""Beam wiring for sources: shards in, records out, the same `Source.read` the local engine calls.

`Reshuffle` after `Create` stops Beam from fusing the shard list with the reads, so the shards
spread over workers instead of running one after another on the worker that created them.
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.metrics import Metrics


class ReadSource(beam.PTransform):
    """PBegin -> PCollection of records: every shard of `source`, read on the workers."""

    def __init__(self, source, label_prefix: str | None = None):
        super().__init__(label_prefix)
        self._source = source

    def expand(self, pbegin):
        return (
            pbegin
            | "Shards" >> beam.Create(self._source.shards())
            | "Reshuffle" >> beam.Reshuffle()
            | "Read" >> beam.ParDo(_ReadShard(self._source))
        )


class _ReadShard(beam.DoFn):
    """Yields one shard's records and counts them by status (`<source>_<status>` counters)."""

    def __init__(self, source):
        self._source = source

    def process(self, shard):
        name = self._source.name
        for record in self._source.read(shard):
            Metrics.counter("source", f"{name}_{record['status']}").inc()
            yield record
