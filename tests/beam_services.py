"""Beam's own Python job service and an external worker pool on 127.0.0.1, as test fixtures.

This is how Dataflow, Flink and Spark run Python: the pipeline is submitted to a job service
and its DoFns run in separate SDK worker processes, so everything must pickle and import there.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on port {port} after {seconds}s")


@contextmanager
def portable_runner_args(workdir):
    """Start a job service and a worker pool; yield the Beam flags that submit to them."""
    env = dict(os.environ)
    # The pool starts `python` from PATH for each worker: make it this interpreter's.
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    job_port, pool_port = free_port(), free_port()
    started = []
    try:
        pool = subprocess.Popen(
            [sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main", f"--service_port={pool_port}"],
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(workdir, "pool.log"), "w"),
        )
        started.append(pool)
        service = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "apache_beam.runners.portability.local_job_service_main",
                f"--port={job_port}",
                f"--staging_dir={os.path.join(workdir, 'staging')}",
            ],
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(workdir, "jobservice.log"), "w"),
        )
        started.append(service)
        wait_for_port(pool_port, pool)
        wait_for_port(job_port, service)
        yield [
            "--runner=PortableRunner",
            f"--job_endpoint=127.0.0.1:{job_port}",
            "--environment_type=EXTERNAL",
            f"--environment_config=127.0.0.1:{pool_port}",
        ]
    finally:
        for process in started:  # stop exactly what we started, by PID (and its process group)
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
