"""Hands work to download threads so that no host holds more than its share of connections.

A plain thread pool with a per-host semaphore would park threads on a slow host's semaphore;
here a thread only ever receives an item whose host has a free slot, so one slow host cannot
occupy every thread while items for other hosts wait. An item to be retried later (a 429's
Retry-After, a backoff) is deferred: it gives back its host's slot and comes back into the queue
when its time is due, while the thread goes on with other items instead of sleeping.

Among the hosts with a free slot, the one with the most items waiting goes first. A big host can
only go `per_host` wide, so it sets the pace of the shard: served round-robin, its freed slot
waited behind every other ready host, the small hosts ran dry early, and the shard ended with the
big host's backlog trickling through its few slots while the other threads idled.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

Item = TypeVar("Item", bound=Hashable)


def host_of(url: str | None) -> str:
    try:
        return (urllib.parse.urlsplit(url or "").hostname or "").lower()
    except ValueError:
        return ""


class HostFairQueue(Generic[Item]):
    """Items grouped by host; `take()` returns one whose host is under its cap, from the host
    with the most items waiting."""

    def __init__(self, items: list[Item], host: Callable[[Item], str], per_host: int):
        self._per_host = per_host
        self._host = host
        self._pending: dict[str, deque[Item]] = {}
        for item in items:
            self._pending.setdefault(host(item), deque()).append(item)
        self._active: dict[str, int] = {}
        # Hosts with pending items and a free slot, as a heap of (-items waiting, sequence, host).
        # An entry whose count is no longer the host's is stale and skipped when it surfaces.
        self._ready: list[tuple[int, int, str]] = []
        self._in_ready: set[str] = set()
        self._deferred: list = []  # heap of (due, sequence, item)
        self._sequence = itertools.count()
        self._cond = threading.Condition()
        self._closed = False
        for name in self._pending:
            self._requeue(name)

    def take(self) -> Item | None:
        """The next item to work on, or None once every item has been handed out or the queue is
        closed (a thread waiting for a deferred item's Retry-After wakes at once)."""
        with self._cond:
            while not self._closed:
                self._release_due()
                host = self._pop_ready()
                if host is not None:
                    item = self._pending[host].popleft()
                    self._active[host] = self._active.get(host, 0) + 1
                    self._requeue(host)
                    return item
                if not self._pending and not self._deferred:
                    return None
                self._cond.wait(self._deferred[0][0] - time.monotonic() if self._deferred else None)
            return None

    def _pop_ready(self) -> str | None:
        while self._ready:
            negative_count, _, host = heapq.heappop(self._ready)
            queue = self._pending.get(host)
            if host in self._in_ready and queue and len(queue) == -negative_count:
                self._in_ready.discard(host)
                return host
        return None

    def close(self) -> None:
        """Hand out nothing more: every `take()`, waiting or not, returns None."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def defer(self, item: Item, delay: float) -> None:
        """Hand `item` out again once `delay` seconds have passed (its slot is released by `done`)."""
        with self._cond:
            heapq.heappush(self._deferred, (time.monotonic() + delay, next(self._sequence), item))
            self._cond.notify()

    def _release_due(self) -> None:
        now = time.monotonic()
        while self._deferred and self._deferred[0][0] <= now:
            item = heapq.heappop(self._deferred)[2]
            host = self._host(item)
            self._pending.setdefault(host, deque()).append(item)
            self._requeue(host)

    def done(self, item) -> None:
        """Release the host slot that `item` held."""
        host = self._host(item)
        with self._cond:
            self._active[host] -= 1
            self._requeue(host)
            self._cond.notify()

    def _requeue(self, host: str) -> None:
        queue = self._pending.get(host)
        if queue is not None and not queue:
            del self._pending[host]
            self._cond.notify_all()  # waiting threads may now find nothing left and exit
            return
        if queue and self._active.get(host, 0) < self._per_host:
            # Pushed again when its count changed while it waited: the old entry goes stale.
            heapq.heappush(self._ready, (-len(queue), next(self._sequence), host))
            self._in_ready.add(host)
