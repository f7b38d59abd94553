"""The Apache Beam engine: each `map_shards` or `group_by` call is one Beam pipeline.

    Create(tasks) | Reshuffle | Map(fn)                              -> results
    Create(tasks) | Reshuffle | FlatMap(emit) | GroupByKey | FlatMap(reduce) -> results

The Reshuffle keeps the runner from fusing the tiny Create with the heavy step, so shards spread
over workers. Results come back to the driver through one pickle file under the pipeline's
`--temp_location` (which Dataflow requires anyway; a local temporary folder when none is given),
read with Beam's FileSystems, so gs:// works as well as a local path.

Without `--runner`, pipelines run on Beam's FnApiRunner (see beam_jobs/options.py). Beam is imported
when this module is; only `build_engine` imports it. Shard counts
appear as Beam counters (`<desc>/<status>`) when a result carries `statuses`.
"""

from __future__ import annotations

import functools
import pickle
import shutil
import tempfile
import uuid
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from wit_pipeline.engines import in_task_order, reduce_group, worker_storage_error


class BeamEngine:
    name = "beam"

    def __init__(self, beam_args=(), local_workers: int = 2):
        self.beam_args = list(beam_args or [])
        self.local_workers = max(1, int(local_workers))
        self._local_temp: str | None = None
        self.last_result: Any = None  # the PipelineResult of the last run: metrics, for tests

    def options(self):
        from beam_jobs.options import pipeline_options

        return pipeline_options(self.beam_args, self.local_workers)

    def map_shards(self, fn, tasks, desc="shards", unit_key="rows", unit_label=None) -> list[dict]:
        numbered = list(enumerate(tasks))
        if not numbered:
            return []
        call = beam.ParDo(_CallFn(fn, desc))
        results = self._run(lambda pipeline: _spread(pipeline, "Shards", numbered) | "Run" >> call)
        return in_task_order(results, desc)

    def group_by(self, emit, tasks, reduce, desc="group") -> list:
        tasks = list(tasks)
        if not tasks:
            return []

        def body(pipeline):
            return (
                _spread(pipeline, "Tasks", tasks)
                | "Emit" >> beam.FlatMap(emit)
                | "Group" >> beam.GroupByKey()
                | "Reduce" >> beam.FlatMap(functools.partial(reduce_group, reduce))
            )

        return self._run(body)

    def _run(self, body) -> list:
        """Run the pipeline that `body` builds; its output PCollection comes back as a list."""
        path = self._results_path()
        pipeline = beam.Pipeline(options=self.options())
        (body(pipeline) | "Gather" >> beam.combiners.ToList() | "Return" >> beam.Map(_write_pickle, path))
        try:
            self.last_result = pipeline.run()
            self.last_result.wait_until_finish()
        except Exception as err:  # noqa: BLE001 - re-raised as is unless a worker's OSError is inside
            storage_error = worker_storage_error(err)
            if storage_error is None:
                raise
            raise storage_error from err
        with FileSystems.open(path) as f:
            results = pickle.loads(f.read())
        FileSystems.delete([path])
        return results

    def _results_path(self) -> str:
        from apache_beam.options.pipeline_options import GoogleCloudOptions

        temp = self.options().view_as(GoogleCloudOptions).temp_location
        if not temp:
            if self._local_temp is None:
                self._local_temp = tempfile.mkdtemp(prefix="wit-beam-")
            temp = self._local_temp
        return FileSystems.join(temp, f"wit-results-{uuid.uuid4().hex}.pickle")

    def close(self) -> None:
        if self._local_temp is not None:
            shutil.rmtree(self._local_temp, ignore_errors=True)
            self._local_temp = None


def _spread(pipeline, label: str, tasks: list):
    """The tasks as a PCollection spread over the workers.

    Without the Reshuffle the runner fuses the steps after Create with it, and one worker runs every task.
    """
    return pipeline | label >> beam.Create(tasks) | "Spread" >> beam.Reshuffle()


def _write_pickle(results, path):
    with FileSystems.create(path) as f:
        f.write(pickle.dumps(results))


def _counter_namespace(desc: str) -> str:
    return desc.split(":", 1)[0].strip()


class _CallFn(beam.DoFn):
    """Runs the shard function; its per-status counts become Beam counters."""

    def __init__(self, fn, desc):
        self.fn, self.namespace = fn, _counter_namespace(desc)

    def process(self, item):
        index, task = item
        result = self.fn(task)
        if isinstance(result, dict) and not result.get("skipped"):
            for status, count in (result.get("statuses") or {}).items():
                Metrics.counter(self.namespace, status).inc(count)
        yield index, result
