"""Service processes for tests and benchmarks: free ports, readiness, a stop by PID, and the
children a process started (for a benchmark's memory readings).

Each service starts in its own session (process group), so stopping it reaches the children it
forked (a JVM's, a worker pool's) and nothing else: never a search by name, which would hit
other people's programs on a shared machine.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen[bytes], seconds: float = 60) -> None:
    """Return once something listens on 127.0.0.1:`port`; fail early if `process` exits first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on port {port} after {seconds}s")


def child_pids(pid: int) -> list[int]:
    """The PIDs `pid` started (Linux /proc); none once it has gone."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(child) for child in f.read().split()]
    except OSError:
        return []


class ProcessGroups:
    """Services started in their own process groups, all stopped on exit (see `services`)."""

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.started: list[subprocess.Popen] = []

    def start(self, args: list[str], log: IO | int | None = subprocess.DEVNULL, **popen: Any) -> subprocess.Popen:
        """Start `args` in a new session, its stdout and stderr to `log`."""
        process = subprocess.Popen(args, start_new_session=True, stdout=log, stderr=subprocess.STDOUT, **popen)
        self.started.append(process)
        return process

    def stop(self) -> None:
        """SIGTERM each group, SIGKILL the ones still running after `grace` seconds."""
        for process in self.started:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            try:
                process.wait(timeout=self.grace)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@contextmanager
def services(grace: float = 10) -> Iterator[ProcessGroups]:
    """Yield a `ProcessGroups` to start services with; stop exactly those on the way out."""
    groups = ProcessGroups(grace)
    try:
        yield groups
    finally:
        groups.stop()
