"""Beam's own Python job service and an external worker pool on 127.0.0.1, as test fixtures.

This is how Dataflow, Flink and Spark run Python: the pipeline is submitted to a job service
and its DoFns run in separate SDK worker processes, so everything must pickle and import there.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from wit_pipeline.testing.processes import free_port, services, wait_for_port


@contextmanager
def portable_runner_args(
    workdir, python: str = sys.executable, env: dict | None = None, cwd=None, grace: float = 10
) -> Iterator[list[str]]:
    """Start a job service and a worker pool with `python`; yield the Beam flags that submit to them.

    Their logs go to `workdir` (pool.log, jobservice.log), staged files to `workdir`/staging.
    """
    env = dict(os.environ if env is None else env)
    # The pool starts `python` from PATH for each worker: make it this interpreter's.
    env["PATH"] = os.path.dirname(python) + os.pathsep + env.get("PATH", "")
    job_port, pool_port = free_port(), free_port()
    with services(grace) as started:
        pool = started.start(
            [python, "-m", "apache_beam.runners.worker.worker_pool_main", f"--service_port={pool_port}"],
            open(os.path.join(workdir, "pool.log"), "w"),
            env=env,
            cwd=cwd,
        )
        service = started.start(
            [
                python,
                "-m",
                "apache_beam.runners.portability.local_job_service_main",
                f"--port={job_port}",
                f"--staging_dir={os.path.join(workdir, 'staging')}",
            ],
            open(os.path.join(workdir, "jobservice.log"), "w"),
            env=env,
            cwd=cwd,
        )
        wait_for_port(pool_port, pool)
        wait_for_port(job_port, service)
        yield [
            "--runner=PortableRunner",
            f"--job_endpoint=127.0.0.1:{job_port}",
            "--environment_type=EXTERNAL",
            f"--environment_config=127.0.0.1:{pool_port}",
        ]
