"""One stats shape for every stage: `<stage folder>/stats.json`, written last by the stage.

    {
      "stage": "download",              ingest | balance | download | dedup | reshard
      "engine": "local",                local | beam | spark
      "rows_in": 1000,                  rows the stage read
      "kept": 900,                      rows it passed on to the next stage
      "dropped": {"http_404": 100},     every other row, by reason: rows_in = kept + sum(dropped)
      "seconds": 12.3,                  wall time of this run of the stage
      "started": "2026-11-30T01:02:03Z", "ended": "...",    UTC, ISO 8601
      "wit_version": "0.1.0",
      "config": {...},                  the resolved stage configuration (its dataclass's fields)
      ...                               stage-specific extras (bytes, entries_matched, clusters ...)
    }

Stage folders: OUT/ingest, OUT/balance, OUT/raw (download), OUT/dedup, OUT/final (reshard).
Per-shard files (`NNNNN_stats.json` beside each shard's marker) keep their own, smaller shape.
A rerun that skipped finished shards still reports the whole stage's rows; `seconds` is the
rerun's own time.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

from wit_pipeline import io

STATS_FILE = "stats.json"
# The folder under OUT that each stage writes its outputs and stats.json into.
STAGE_FOLDERS: dict[str, str] = {
    "ingest": "ingest",
    "balance": "balance",
    "download": "raw",
    "dedup": "dedup",
    "reshard": "final",
}


PROVENANCE = ("engine", "seconds", "started", "ended", "wit_version")


def without_provenance(stats: dict) -> dict:
    """The stats less what differs between runs of the same work (engine, times, version)."""
    return {key: value for key, value in stats.items() if key not in PROVENANCE}


def wit_version() -> str:
    """The installed wit's version (package metadata); `0+unknown` from a bare source tree."""
    from importlib import metadata

    try:
        return metadata.version("wit-pipeline")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Clock:
    """When a stage started; `provenance()` adds when it ended and how long it took."""

    def __init__(self):
        self.started, self._t0 = utc_now(), time.monotonic()

    def provenance(self, engine_name: str) -> dict:
        return {
            "engine": engine_name,
            "seconds": round(time.monotonic() - self._t0, 3),
            "started": self.started,
            "ended": utc_now(),
            "wit_version": wit_version(),
        }


def stage_stats(
    stage: str,
    engine_name: str,
    clock: Clock,
    rows_in: int,
    kept: int,
    dropped: dict,
    config: dict,
    extras: dict | None = None,
) -> dict:
    """The stats of one stage in the one shape; `extras` add stage-specific fields (never replace)."""
    shared = {
        "stage": stage,
        "rows_in": int(rows_in),
        "kept": int(kept),
        "dropped": {str(k): int(v) for k, v in sorted(dropped.items()) if v},
        "config": config,
        **clock.provenance(engine_name),
    }
    return {**{key: value for key, value in (extras or {}).items() if key not in shared}, **shared}


def write_stats(folder: str, stats: dict) -> dict:
    """Write `folder/stats.json` atomically; returns the stats as written (JSON types)."""
    data = io.json_bytes(stats)
    io.makedirs(folder)
    io.write_atomic(io.join(folder, STATS_FILE), data)
    return json.loads(data)


def read_stats(folder: str) -> dict | None:
    """A stage folder's stats.json, or None where the stage has not finished."""
    return io.read_json(io.join(folder, STATS_FILE))


def add_counts(total: dict[str, int], counts: dict[str, int]) -> dict[str, int]:
    """Add per-shard counts (statuses, say) into the stage's running totals."""
    for key, value in counts.items():
        total[key] = total.get(key, 0) + value
    return total
