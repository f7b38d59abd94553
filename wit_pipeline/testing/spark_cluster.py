"""A real standalone Spark cluster on 127.0.0.1, from pyspark's own distribution: one master and
two workers, each its own JVM process group, stopped by PID.

The workers run with a bare environment: no PYSPARK_PYTHON, no PYTHONPATH, and PATH without this
venv, so their executors' Python has no wit unless the driver tells them which interpreter to
run (`spark.pyspark.python`): exactly what a real cluster gives a new user.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from wit_pipeline.testing.processes import free_port, services, wait_for_port


@dataclass
class Cluster:
    master_url: str
    ui_url: str
    env: dict  # what a driver on this cluster needs: SPARK_CONF_DIR with small memory settings
    workers: list[subprocess.Popen] = field(default_factory=list)
    master: subprocess.Popen | None = None

    def alive_workers(self) -> int:
        try:
            with urllib.request.urlopen(f"{self.ui_url}/json/", timeout=5) as response:
                return int(json.load(response).get("aliveworkers", 0))
        except (urllib.error.URLError, ValueError):  # the master's UI is still starting
            return 0

    def kill_worker(self, index: int = 0) -> None:
        """SIGKILL one worker with its executors and their Python workers (a lost machine)."""
        os.killpg(self.workers[index].pid, signal.SIGKILL)
        self.workers[index].wait()


def _bare_env(workdir: pathlib.Path) -> dict:
    import pyspark

    spark_home = os.path.dirname(pyspark.__file__)
    venv_bin = os.path.dirname(os.path.abspath(sys.executable))
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON", "PYTHONPATH", "VIRTUAL_ENV")
    }
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    env.update(
        SPARK_HOME=spark_home,
        SPARK_LOCAL_IP="127.0.0.1",
        SPARK_NO_DAEMONIZE="1",
        SPARK_LOG_DIR=str(workdir / "logs"),
        SPARK_DAEMON_MEMORY="256m",
    )
    return env


@contextmanager
def standalone_cluster(workdir: pathlib.Path, workers: int = 2) -> Iterator[Cluster]:
    """Start the master and `workers` workers (1 core, 1 GiB each); yield a Cluster; stop them."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = _bare_env(workdir)
    spark_class = os.path.join(env["SPARK_HOME"], "bin", "spark-class")
    conf_dir = workdir / "conf"
    conf_dir.mkdir(exist_ok=True)
    # Small executors and driver: the machine is shared. A driver reads these through SPARK_CONF_DIR.
    (conf_dir / "spark-defaults.conf").write_text(
        "spark.executor.memory 512m\nspark.driver.memory 512m\nspark.ui.enabled false\n"
        "spark.ui.showConsoleProgress false\n"
    )
    with services(grace=15) as started:

        def start(name: str, args: list[str]) -> subprocess.Popen:
            return started.start([spark_class, *args], open(workdir / f"{name}.log", "w"), env=env, cwd=workdir)

        port, ui_port = free_port(), free_port()
        master = start(
            "master",
            [
                "org.apache.spark.deploy.master.Master",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--webui-port",
                str(ui_port),
            ],
        )
        wait_for_port(port, master, seconds=120)
        wait_for_port(ui_port, master, seconds=120)
        cluster = Cluster(
            f"spark://127.0.0.1:{port}", f"http://127.0.0.1:{ui_port}", {"SPARK_CONF_DIR": str(conf_dir)}, master=master
        )
        for number in range(workers):
            cluster.workers.append(
                start(
                    f"worker{number}",
                    [
                        "org.apache.spark.deploy.worker.Worker",
                        "--host",
                        "127.0.0.1",
                        "--cores",
                        "1",
                        "--memory",
                        "1g",
                        "--webui-port",
                        str(free_port()),
                        "--work-dir",
                        str(workdir / f"work{number}"),
                        cluster.master_url,
                    ],
                )
            )
        deadline = time.monotonic() + 120
        while cluster.alive_workers() < workers:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{workers} workers did not register; see {workdir}")
            time.sleep(0.5)
        yield cluster
