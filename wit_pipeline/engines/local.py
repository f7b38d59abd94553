"""The local engine: a process pool over shards, with a progress bar.

The shard function is any picklable module-level callable (usually a functools.partial of one);
it runs in `spawn`ed worker processes, so it must not rely on state built in the parent.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from tqdm import tqdm

from wit_pipeline.engines import group_locally, log_result

log = logging.getLogger("wit")


class LocalEngine:
    """`processes` spawned workers (1: everything in this process, simplest to debug)."""

    name = "local"

    def __init__(self, processes: int = 1):
        self.processes = max(1, int(processes))

    def map_shards(self, fn, tasks, desc="shards", unit_key="rows", unit_label=None) -> list[dict]:
        return list(map_shards(fn, tasks, self.processes, desc, unit_key, unit_label))

    def group_by(self, emit, tasks, reduce, desc="group") -> list:
        # The emit side runs in the pool; the groups meet in this process, as one machine's
        # memory is the limit of this engine anyway.
        lists = map_shards(functools.partial(_emitted, emit), tasks, self.processes, desc, unit_key=None)
        return group_locally((pair for pairs in lists for pair in pairs), reduce)

    def close(self) -> None:
        pass


def _emitted(emit, task) -> list[tuple]:
    return list(emit(task))


def map_shards(
    shard_fn: Callable[[Any], Any],
    tasks: Iterable[Any],
    processes: int = 1,
    desc: str = "shards",
    unit_key: str | None = "rows",
    unit_label: str | None = None,
) -> Iterator[Any]:
    """Run `shard_fn` on every task, yielding the results in task order.

    With processes == 1 the tasks run in this process, which keeps tracebacks and debuggers simple.
    `unit_key` names the count in each result that the progress bar reports per second, under
    `unit_label` (default: the key), with an ETA; shards a rerun skipped do not count towards the
    rate. With no `unit_key` there is no bar and no per-shard log line (a helper pass).
    """
    label = unit_label or unit_key
    tasks = list(tasks)
    # One bar per stage: its main pass. Helper passes (unit_key None) run without one.
    bar = tqdm(total=len(tasks), desc=desc, unit="shard", dynamic_ncols=True, mininterval=1.0, disable=unit_key is None)
    started, units = time.monotonic(), 0
    done: dict[int, Any] = {}
    next_index = 0
    try:
        for index, result in _results(shard_fn, tasks, processes, desc if unit_key else None):
            if unit_key and isinstance(result, dict) and not result.get("skipped"):
                units += int(result.get(unit_key, 0) or 0)
                rate = units / max(time.monotonic() - started, 1e-9)
                bar.set_postfix_str(f"{units} {label}, {rate:,.0f} {label}/s", refresh=False)
            bar.update(1)
            if unit_key:
                log_result(desc, result)
            done[index] = result
            while next_index in done:  # in task order, as soon as the order allows
                yield done.pop(next_index)
                next_index += 1
    finally:
        bar.close()


def _call(shard_fn, desc, level, item):
    index, task = item
    if desc:
        if not logging.getLogger().handlers:  # a spawned worker: log as the driver does
            logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        log.info("%s: task %d started", desc, index)
    return index, shard_fn(task)


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


def _results(shard_fn, tasks, processes, desc):
    call = functools.partial(_call, shard_fn, desc, log.getEffectiveLevel())
    if processes <= 1 or len(tasks) <= 1:
        for item in enumerate(tasks):
            yield call(item)
        return
    context = multiprocessing.get_context("spawn")
    with context.Pool(
        min(processes, len(tasks)), maxtasksperchild=None, initializer=die_with_parent, initargs=(os.getpid(),)
    ) as pool:
        yield from pool.imap_unordered(call, enumerate(tasks), chunksize=1)
