"""The local engine: a process pool over shards, with a progress bar.

The shard function is any picklable module-level callable (usually a functools.partial of one);
it runs in `spawn`ed worker processes, so it must not rely on state built in the parent.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from tqdm import tqdm


def map_shards(
    shard_fn: Callable[[Any], dict],
    tasks: Iterable[Any],
    processes: int = 1,
    desc: str = "shards",
    unit_key: str | None = "rows",
    unit_label: str | None = None,
) -> Iterator[dict]:
    """Run `shard_fn` on every task, yielding each result (a stats dict) as it completes.

    With processes == 1 the tasks run in this process, which keeps tracebacks and debuggers simple.
    `unit_key` names the count in each result that the progress bar reports per second, under
    `unit_label` (default: the key). Shards a rerun skipped do not count towards the rate.
    """
    label = unit_label or unit_key
    tasks = list(tasks)
    bar = tqdm(total=len(tasks), desc=desc, unit="shard", dynamic_ncols=True, mininterval=1.0)
    started, units = time.monotonic(), 0
    try:
        for result in _results(shard_fn, tasks, processes):
            if unit_key and not result.get("skipped"):
                units += int(result.get(unit_key, 0) or 0)
                rate = units / max(time.monotonic() - started, 1e-9)
                bar.set_postfix_str(f"{units} {label}, {rate:,.0f} {label}/s", refresh=False)
            bar.update(1)
            yield result
    finally:
        bar.close()


def die_with_parent(parent_pid: int) -> None:
    """Pool initializer: end this worker when the process that started it dies.

    A killed driver (SIGKILL gives it no chance to stop its pool) would otherwise leave workers
    finishing shards, and writing into a folder whose lock it no longer holds. Linux delivers
    SIGTERM on the parent's death (prctl PR_SET_PDEATHSIG); elsewhere this does nothing.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:  # the parent died before the line above took effect
        os._exit(1)


def _results(shard_fn, tasks, processes):
    if processes <= 1 or len(tasks) <= 1:
        for task in tasks:
            yield shard_fn(task)
        return
    context = multiprocessing.get_context("spawn")
    with context.Pool(min(processes, len(tasks)), maxtasksperchild=None, initializer=die_with_parent,
                      initargs=(os.getpid(),)) as pool:
        yield from pool.imap_unordered(shard_fn, tasks, chunksize=1)
