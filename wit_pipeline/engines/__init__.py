"""The engine seam: what every stage needs from a local pool, Apache Beam or Apache Spark.

A stage is library code that calls two things on an `Engine`:

- `map_shards(fn, tasks)`: run a picklable module-level function on every task (one shard of
  work each) and return its results to the driver, in task order. Results are small stats dicts;
  the shard's real output is files the function wrote, with a completion marker written last.
- `group_by(emit, tasks, reduce)`: the engine's own global group-by, for the stages whose
  algorithm is one (ingest's drop of repeated (url, caption) pairs, dedup's pHash band buckets): `emit(task)`
  yields (key, value) pairs, every key's values meet in one `reduce(key, values)` call, and the
  items it yields come back to the driver. Values arrive in no particular order: `reduce` sorts.

Engines are thin (`local.py`, `beam.py`, `spark.py`); a command builds one with `build_engine`
from the shared flags (`--engine`, `--processes`, `--spark-master`, Beam flags after `--`) and
passes it to every stage it runs. The same tasks give the same files on every engine.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from typing import Any, Protocol

log = logging.getLogger("wit")

ENGINE_NAMES = ("local", "beam", "spark")


class Engine(Protocol):
    name: str

    def map_shards(
        self,
        fn: Callable[[Any], dict],
        tasks: Iterable[Any],
        desc: str = "shards",
        unit_key: str | None = "rows",
        unit_label: str | None = None,
    ) -> list[dict]:
        """`fn(task)` for every task, results in task order."""

    def group_by(
        self,
        emit: Callable[[Any], Iterable[tuple]],
        tasks: Iterable[Any],
        reduce: Callable[[Any, list], Iterable[Any]],
        desc: str = "group",
    ) -> list:
        """Every item `reduce(key, values)` yields, over the (key, value) pairs `emit` yields."""

    def close(self) -> None:
        """Release what the engine holds (a Spark session); safe to call twice."""


def build_engine(config) -> Engine:
    """The engine an `EngineConfig` names (imports Beam or Spark only when asked for)."""
    if config.engine == "beam":
        from wit_pipeline.engines.beam import BeamEngine

        return BeamEngine(config.beam_args, config.processes)
    if config.beam_args:
        raise ValueError(f"arguments after -- are for --engine beam: {' '.join(config.beam_args)}")
    if config.engine == "spark":
        from wit_pipeline.engines.spark import SparkEngine

        return SparkEngine(config.spark_master or f"local[{config.processes}]", config.spark_python)
    from wit_pipeline.engines.local import LocalEngine

    return LocalEngine(config.processes)


def log_result(desc: str, result: Any) -> None:
    """The INFO line of one finished shard: skipped or done, with its counts."""
    if not isinstance(result, dict):
        return
    counts = {
        key: value for key, value in result.items() if isinstance(value, (int, float)) and not isinstance(value, bool)
    }
    shard = result.get("shard", result.get("raw_shard", "?"))
    state = "skipped (finished earlier)" if result.get("skipped") else "done"
    log.info(
        "%s: shard %s %s %s",
        desc,
        shard,
        state,
        " ".join(f"{key}={value}" for key, value in sorted(counts.items()) if key != "shard"),
    )


_WORKER_OS_ERROR = re.compile(r"\b\w*Error: \[Errno (\d+)\] ([^\n:'\[]+)(?:: '([^'\n]+)')?")
_WORKER_OUTPUT_ERROR = re.compile(r"\bOutputError: ([^\n]+)")


def worker_storage_error(err: BaseException) -> Exception | None:
    """The storage error a Spark or Beam worker raised, rebuilt from the engine's wrapped report.

    Spark and Beam report a worker's exception as text inside their own error; a full disk or
    an unwritable folder on a worker then reaches the user as the same one line as locally:
    `io.OutputError` (raised where wit writes, naming the file) or a bare OSError.
    """
    output_error = _WORKER_OUTPUT_ERROR.search(str(err))
    if output_error is not None:
        from wit_pipeline.io import OutputError

        return OutputError(output_error.group(1).strip())
    match = _WORKER_OS_ERROR.search(str(err))
    if match is None:
        return None
    number, message, path = match.groups()
    return OSError(int(number), message.strip(), path) if path else OSError(int(number), message.strip())


def in_task_order(indexed: Iterable[tuple[int, Any]], desc: str) -> list:
    """The results of (task index, result) pairs that arrived in any order, in task order, each
    logged as its shard's INFO line (the Beam and Spark engines collect them this way)."""
    results = [result for _, result in sorted(indexed, key=lambda item: item[0])]
    for result in results:
        log_result(desc, result)
    return results


def reduce_group(reduce: Callable[[Any, list], Iterable[Any]], keyed: tuple[Any, Iterable[Any]]) -> list:
    """One (key, values) group of a distributed group-by through `reduce` (Beam's and Spark's)."""
    key, values = keyed
    return list(reduce(key, list(values)))


def group_locally(pairs: Iterable[tuple], reduce: Callable[[Any, list], Iterable[Any]]) -> list:
    """The group-by in one process, keys in sorted order (the local engine's, and tests')."""
    groups: dict = {}
    for key, value in pairs:
        groups.setdefault(key, []).append(value)
    out: list = []
    for key in sorted(groups):
        out.extend(reduce(key, groups[key]))
    return out
