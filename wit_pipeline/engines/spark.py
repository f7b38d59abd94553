"""The PySpark engine: the same shard functions, one Spark task per shard.

Spark is imported only here, when the engine is chosen. The caller owns the SparkSession (a
`local[N]` one for a laptop, or the cluster's); `local_session` makes one for tests and the CLI.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from typing import Any


def map_shards(session, shard_fn: Callable[[Any], dict], tasks: Iterable[Any]) -> list[dict]:
    """Run `shard_fn` on every task as its own Spark partition and collect the result dicts."""
    tasks = list(tasks)
    if not tasks:
        return []
    rdd = session.sparkContext.parallelize(tasks, numSlices=len(tasks))
    return rdd.map(shard_fn).collect()


def session(master: str, app_name: str = "wit"):
    """A SparkSession for `master`; a local one binds to 127.0.0.1 and runs this interpreter."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master(master).appName(app_name)
    if master.startswith("local"):
        _use_this_interpreter_for_workers()
    return builder.getOrCreate()


def _use_this_interpreter_for_workers() -> None:
    # Local Python workers would otherwise start the first `python3` on PATH, which lacks our
    # packages; PySpark reads this variable when it launches them.
    os.environ["PYSPARK_PYTHON"] = sys.executable


def local_session(cores: int = 2, app_name: str = "wit"):
    """A local SparkSession on 127.0.0.1 with `cores` worker threads."""
    from pyspark.sql import SparkSession

    _use_this_interpreter_for_workers()
    return (
        SparkSession.builder.master(f"local[{cores}]")
        .appName(app_name)
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        # Each shard is one long task: never retry it speculatively next to itself.
        .config("spark.speculation", "false")
        .getOrCreate()
    )
