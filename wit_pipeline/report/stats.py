"""Every stage's totals in one shape, read from whatever stats files an output folder holds.

The report, `wit inspect` and `make demo` read stage totals only through `read_stage_stats`, so
the on-disk stats layout is adapted in this one place. The shape returned is the funnel's:

    {"stage", "rows_in", "kept", "dropped": {reason: count}, "seconds", "config", "files"}

A folder written with the common `<stage>/stats.json` is read as it is; older outputs keep their
stage's own file (`ingest_stats.json`, `balance_stats.json`, `raw/download_stats.json` or the
per-shard `raw/NNNNN_stats.json`, `dedup_stats.json`, `final/manifest.json`).
"""

from __future__ import annotations

import json

import fsspec

from wit_pipeline import schema, shards

# The funnel's order, and the folder of OUT that each stage writes.
STAGE_FOLDERS: dict[str, str] = {
    "ingest": "ingest",
    "balance": "balance",
    "download": "raw",
    "dedup": "dedup",
    "reshard": "final",
}


def read_json(path: str) -> dict | None:
    """A JSON file's content, or None when it does not exist."""
    fs, fs_path = fsspec.core.url_to_fs(path)
    if not fs.exists(fs_path):
        return None
    return json.loads(fs.cat_file(fs_path))


def stage_folder(output: str, stage: str) -> str:
    return shards.join(output, STAGE_FOLDERS[stage])


def read_stage_stats(output: str, stage: str) -> dict | None:
    """The totals of `stage` in the run folder `output`, in the funnel's shape; None if it has not run."""
    folder = stage_folder(output, stage)
    common = read_json(shards.join(folder, "stats.json"))
    if common is not None:
        return _funnel_shape(stage, common, ["stats.json"])
    return _LEGACY_READERS[stage](folder)


def _funnel_shape(stage: str, found: dict, files: list[str]) -> dict:
    return {
        "stage": stage,
        "rows_in": int(found.get("rows_in", 0)),
        "kept": int(found.get("kept", 0)),
        "dropped": {k: int(v) for k, v in sorted((found.get("dropped") or {}).items()) if v},
        "seconds": found.get("seconds"),
        "config": found.get("config"),
        "files": files,
        "raw": found,
    }


def _text_stage(name: str):
    def read(folder: str) -> dict | None:
        found = read_json(shards.join(folder, f"{name}_stats.json"))
        return None if found is None else _funnel_shape(name, found, [f"{name}_stats.json"])

    return read


def _download(folder: str) -> dict | None:
    totals = read_json(shards.join(folder, "download_stats.json"))
    files = ["download_stats.json"]
    if totals is None:
        # A run that is still going, or an engine that wrote only the shards' own stats.
        per_shard = [shards.read_stats(folder, i) for i in shards.finished_shards(folder)]
        if not per_shard:
            return None
        totals = _sum_shard_stats(per_shard)
        files = [f"{shards.shard_name(i)}_stats.json" for i in shards.finished_shards(folder)]
    statuses = totals.get("statuses", {})
    config = read_json(shards.join(folder, "config.json"))
    return _funnel_shape("download", {
        "rows_in": totals.get("rows", 0), "kept": statuses.get(schema.OK, totals.get("ok", 0)),
        "dropped": {k: v for k, v in statuses.items() if k != schema.OK},
        "seconds": totals.get("seconds"), "config": config,
    }, files) | {"bytes": totals.get("bytes", 0), "shards": totals.get("shards")}


def _sum_shard_stats(per_shard: list[dict]) -> dict:
    totals = {"rows": 0, "ok": 0, "bytes": 0, "seconds": 0.0, "statuses": {}, "shards": len(per_shard)}
    for stats in per_shard:
        for key in ("rows", "ok", "bytes", "seconds"):
            totals[key] += stats.get(key, 0)
        for status, count in stats.get("statuses", {}).items():
            totals["statuses"][status] = totals["statuses"].get(status, 0) + count
    return totals


def _dedup(folder: str) -> dict | None:
    found = read_json(shards.join(folder, "dedup_stats.json"))
    if found is None:
        return None
    dropped = {"exact_duplicate": found.get("exact_duplicates", 0), "near_duplicate": found.get("near_duplicates", 0),
               "eval_overlap": found.get("eval_overlaps", 0)}
    # Rows that failed download enter dedup's input too; they were counted as dropped by download.
    return _funnel_shape("dedup", {"rows_in": found.get("rows_ok", 0), "kept": found.get("kept", 0),
                                   "dropped": dropped, "seconds": found.get("seconds"),
                                   "config": found.get("config")}, ["dedup_stats.json"])


def _reshard(folder: str) -> dict | None:
    manifest = read_json(shards.join(folder, "manifest.json"))
    if manifest is None:
        return None
    keep = _reshard_rows_in(manifest)
    return _funnel_shape("reshard", {"rows_in": keep, "kept": manifest.get("samples", 0), "dropped": {},
                                     "config": manifest.get("reshard")}, ["manifest.json"])


def _reshard_rows_in(manifest: dict) -> int:
    """Reshard's input: dedup's survivors as the manifest recorded them (else its own samples)."""
    dedup = (manifest.get("stages") or {}).get("dedup", {}).get("dedup_stats.json") or {}
    return int(dedup.get("kept", manifest.get("samples", 0)))


_LEGACY_READERS = {
    "ingest": _text_stage("ingest"),
    "balance": _text_stage("balance"),
    "download": _download,
    "dedup": _dedup,
    "reshard": _reshard,
}


def read_funnel(output: str) -> dict[str, dict | None]:
    """Every stage's totals, in the funnel's order; a stage that has not run maps to None."""
    return {stage: read_stage_stats(output, stage) for stage in STAGE_FOLDERS}


def funnel_line(funnel: dict[str, dict | None]) -> str:
    """`ingest 120 -> 119 | balance 119 -> 119 | ...`: the run in one line."""
    parts = [f"{stage} {stats['rows_in']:,} -> {stats['kept']:,}" for stage, stats in funnel.items() if stats]
    return " | ".join(parts) if parts else "no stage has finished"
