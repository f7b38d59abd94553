"""The local engine: a process pool over shards, with a progress bar.

The shard function is any picklable module-level callable (usually a functools.partial of one);
it runs in `spawn`ed worker processes, so it must not rely on state built in the parent.
"""

from __future__ import annotations

import multiprocessing
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


def _results(shard_fn, tasks, processes):
    if processes <= 1 or len(tasks) <= 1:
        for task in tasks:
            yield shard_fn(task)
        return
    context = multiprocessing.get_context("spawn")
    with context.Pool(min(processes, len(tasks)), maxtasksperchild=None) as pool:
        yield from pool.imap_unordered(shard_fn, tasks, chunksize=1)
