"""The download stage on Apache Beam: Create(shards) | Reshuffle() | ParDo(download_shard).

The DoFn only wires the library's shard function in; the Reshuffle keeps the runner from fusing
the tiny Create with the heavy download step, so shards spread over workers.
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.metrics import Metrics

from beam_jobs.options import pipeline_options
from wit_pipeline import shards
from wit_pipeline.download import stage
from wit_pipeline.download.shard import DownloadTask, download_shard

NAMESPACE = "wit.download"


class DownloadShardFn(beam.DoFn):
    """Runs `download_shard` and reports its per-status counts as Beam counters."""

    def process(self, task: DownloadTask):
        result = download_shard(task)
        if result.get("skipped"):
            Metrics.counter(NAMESPACE, "shards_skipped").inc()
            return
        Metrics.counter(NAMESPACE, "shards").inc()
        Metrics.counter(NAMESPACE, "rows").inc(result["rows"])
        Metrics.counter(NAMESPACE, "bytes").inc(result["bytes"])
        for status, count in result["statuses"].items():
            Metrics.counter(NAMESPACE, f"status_{status}").inc(count)
        yield result["shard"]


def build(pipeline: beam.Pipeline, tasks: list[DownloadTask]):
    return (
        pipeline
        | "Shards" >> beam.Create(tasks)
        | "Spread" >> beam.Reshuffle()
        | "Download" >> beam.ParDo(DownloadShardFn())
    )


def run_pipeline(tasks: list[DownloadTask], beam_args: list[str] | None = None, local_workers: int = 2) -> dict:
    """Run the download on Beam and return the stage totals, read back from the shards' stats files."""
    with beam.Pipeline(options=pipeline_options(beam_args, local_workers)) as pipeline:
        build(pipeline, tasks)
    return stage.write_totals(tasks, stage.summarise(shards.read_stats(task.output_dir, task.shard.shard_id)
                                                     for task in tasks))

