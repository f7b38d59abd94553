"""Every stage's totals in the funnel's shape, read from the stage's `stats.json`.

Every stage writes `<stage folder>/stats.json` in one shape (`wit_pipeline/stats.py`); the
report, `wit inspect` and `make demo` read stage totals only through `read_stage_stats`, which
returns:

    {"stage", "rows_in", "kept", "dropped": {reason: count}, "seconds", "config", "files", "raw"}

plus `bytes` and `shards` where the stage records them (download, adopt). `raw` is the file as
written, extras included.
"""

from __future__ import annotations

from wit_pipeline import io
from wit_pipeline.stats import STAGE_FOLDERS, STATS_FILE

# The funnel's order, and the folder of OUT that each stage writes.


def stage_folder(output: str, stage: str) -> str:
    return io.join(output, STAGE_FOLDERS[stage])


def read_stage_stats(output: str, stage: str) -> dict | None:
    """The totals of `stage` in the run folder `output`, in the funnel's shape; None if it has not run."""
    found = io.read_json(io.join(stage_folder(output, stage), STATS_FILE))
    if found is None:
        return None
    shape = {
        "stage": stage,
        "rows_in": int(found.get("rows_in", 0)),
        "kept": int(found.get("kept", 0)),
        "dropped": {k: int(v) for k, v in sorted((found.get("dropped") or {}).items()) if v},
        "seconds": found.get("seconds"),
        "config": found.get("config"),
        "files": [STATS_FILE],
        "raw": found,
    }
    return shape | {key: found[key] for key in ("bytes", "shards") if key in found}


def read_funnel(output: str) -> dict[str, dict | None]:
    """Every stage's totals, in the funnel's order; a stage that has not run maps to None."""
    return {stage: read_stage_stats(output, stage) for stage in STAGE_FOLDERS}


def funnel_line(funnel: dict[str, dict | None]) -> str:
    """`ingest 120 -> 119 | balance 119 -> 119 | ...`: the run in one line."""
    parts = [f"{stage} {stats['rows_in']:,} -> {stats['kept']:,}" for stage, stats in funnel.items() if stats]
    return " | ".join(parts) if parts else "no stage has finished"
