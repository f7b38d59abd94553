"""The PySpark engine: the same shard functions, one Spark task per shard.

Spark is imported only here, when the engine is chosen. Executors run Python functions of this
package, so they must run an interpreter that has it installed: by default the driver's own
(`spark.pyspark.python` = `sys.executable`), which is right on one machine and on a cluster whose
nodes share the driver's environment path (the same venv or conda env at the same path on every
node, as a shared filesystem or an image gives). Another interpreter is named with
`--spark-python PATH` (or Spark's own `spark.pyspark.python` in spark-defaults.conf, which a
`spark-submit --conf` also sets); a cluster without wit installed gets it as documented by Spark,
an archived venv via `spark.archives` plus `--spark-python ./env/bin/python`.
"""

from __future__ import annotations

import functools
import os
import sys

from wit_pipeline.engines import in_task_order, reduce_group, worker_storage_error


class SparkEngine:
    """Shards as Spark tasks on `master` (`local[N]`, `spark://host:7077`, `yarn`, `k8s://...`)."""

    name = "spark"

    def __init__(self, master: str, python: str | None = None, conf: dict | None = None):
        self.master = master
        self.python = python or sys.executable
        self.conf = dict(conf or {})
        self._session = None

    @property
    def context(self):
        if self._session is None:
            self._session = session(self.master, python=self.python, conf=self.conf)
        return self._session.sparkContext

    def map_shards(self, fn, tasks, desc="shards", unit_key="rows", unit_label=None) -> list[dict]:
        tasks = list(tasks)
        if not tasks:
            return []
        self.context.setJobDescription(desc)
        rdd = self.context.parallelize(list(enumerate(tasks)), numSlices=len(tasks))
        return in_task_order(_collect(rdd.map(functools.partial(_call, fn))), desc)

    def group_by(self, emit, tasks, reduce, desc="group") -> list:
        tasks = list(tasks)
        if not tasks:
            return []
        self.context.setJobDescription(desc)
        partitions = max(self.context.defaultParallelism, 1)
        return _collect(
            self.context.parallelize(tasks, numSlices=len(tasks))
            .flatMap(emit)
            .groupByKey(numPartitions=partitions)
            .flatMap(functools.partial(reduce_group, reduce))
        )

    def close(self) -> None:
        if self._session is not None:
            self._session.stop()
            self._session = None


def _collect(rdd) -> list:
    """rdd.collect(); a worker's OSError (a full disk) is raised as itself, not as Spark's report
    (Py4JJavaError, or PySpark's PythonException that wraps it)."""
    try:
        return rdd.collect()
    except Exception as err:  # noqa: BLE001 - re-raised as is unless a worker's OSError is inside
        storage_error = worker_storage_error(err)
        if storage_error is None:
            raise
        raise storage_error from err


def _call(fn, item):
    index, task = item
    return index, fn(task)


def session(master: str, app_name: str = "wit", python: str | None = None, conf: dict | None = None):
    """A SparkSession for `master` whose Python workers run `python` (default: this interpreter).

    A local master binds to 127.0.0.1; a cluster master uses Spark's own address settings
    (SPARK_LOCAL_IP, spark.driver.host).
    """
    from pyspark.sql import SparkSession

    python = python or sys.executable
    # Local Python workers start PYSPARK_PYTHON; executors on a cluster read spark.pyspark.python.
    os.environ["PYSPARK_PYTHON"] = python
    builder = (
        SparkSession.builder.master(master)
        .appName(app_name)
        .config("spark.pyspark.python", python)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")  # our own log lines report the shards
        # Each shard is one long task: never retry it speculatively next to itself.
        .config("spark.speculation", "false")
    )
    if master.startswith("local"):
        builder = builder.config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
    for key, value in (conf or {}).items():
        builder = builder.config(key, value)
    return builder.getOrCreate()
