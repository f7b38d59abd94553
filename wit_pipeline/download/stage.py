"""The download stage on any engine: `plan_tasks` claims OUT/raw and makes one task per input
shard, `run` runs them (download/shard.py holds the unit of work) and sums their stats."""

from __future__ import annotations

from collections import Counter

from wit_pipeline import claim, io, shards
from wit_pipeline.config import DownloadConfig, to_dict
from wit_pipeline.download.shard import DownloadTask, download_shard
from wit_pipeline.sources.base import Source
from wit_pipeline.sources.stage_folder import StageFolderSource, is_stage_folder
from wit_pipeline.sources.urls import UrlListConfig, UrlListSource
from wit_pipeline.stats import Clock, stage_stats, write_stats


def raw_dir(output: str) -> str:
    return io.join(output, "raw")


def plan_tasks(input_path: str, output: str, url_config: UrlListConfig, config: DownloadConfig) -> list[DownloadTask]:
    """One task per input shard, in input order; the same plan on every engine and rerun."""
    out = raw_dir(output)
    # What shapes the shards: the input, its shard plan and the image settings. Fetch settings
    # and thread counts may change on a resume (a longer timeout for the unfinished shards).
    claim.claim(
        out,
        {
            "stage": "download",
            "input": input_path,
            "url_list": to_dict(url_config),
            "resize": to_dict(config.resize),
            "compute_phash": config.compute_phash,
        },
    )
    source: Source
    from_stage = is_stage_folder(input_path)
    if from_stage:
        source = StageFolderSource(input_path, url_config)
    else:
        source = UrlListSource(input_path, url_config, staging_dir=io.join(out, "_input"))
    try:
        tasks = [DownloadTask(source, shard, out, config) for shard in source.shards()]
        # An empty list the user gave is most likely the wrong file; an earlier stage that kept
        # nothing is a result (its stats say why), and the chain goes on with no shard.
        if not tasks and not from_stage:
            raise io.InputError(f"{input_path}: no rows to download (the list is empty)")
    except io.InputError:
        claim.abandon(out)  # nothing was downloaded: a corrected rerun starts afresh
        raise
    io.write_json(
        io.join(out, "config.json"),
        {
            "stage": "download",
            "input": input_path,
            shards.PLANNED_SHARDS: len(tasks),
            "url_list": to_dict(url_config),
            "download": to_dict(config),
        },
    )
    return tasks


def run(engine, output: str, config: DownloadConfig, *, input_path: str, url_config: UrlListConfig) -> dict:
    """Plan the shards of `input_path`, download them on `engine`, write and return the totals."""
    return run_tasks(engine, plan_tasks(input_path, output, url_config, config), raw_dir(output))


def run_tasks(engine, tasks: list[DownloadTask], raw_folder: str | None = None) -> dict:
    """Run planned tasks on `engine` (finished shards are skipped); write and return the stats.

    The stats (OUT/raw/stats.json, the shape of wit_pipeline/stats.py) add up the shards' own
    NNNNN_stats.json: rows, ok, statuses, bytes, shard_seconds (summed shard time), shards.
    `raw_folder` defaults to the tasks' folder; an input with no rows has no tasks, and its
    stats.json (0 shards) still records that the stage finished.
    """
    clock = Clock()
    results = engine.map_shards(download_shard, tasks, desc="download", unit_key="ok", unit_label="images")
    totals = summarise(results)
    config = {}
    if tasks:
        config = {"download": to_dict(tasks[0].config), "url_list": tasks[0].source.identity()["source_config"]}
    stats = stage_stats(
        "download",
        engine.name,
        clock,
        totals["rows"],
        totals["ok"],
        {k: v for k, v in totals["statuses"].items() if k != "ok"},
        config,
        totals,
    )
    raw_folder = raw_folder or (tasks[0].output_dir if tasks else None)
    return write_stats(raw_folder, stats) if raw_folder else stats


def summarise(results) -> dict:
    """Add up per-shard stats into the stage's totals."""
    totals: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    shard_count = skipped = 0
    for result in results:
        shard_count += 1
        skipped += bool(result.get("skipped"))
        totals.update({k: result.get(k, 0) for k in ("rows", "ok", "bytes")})
        totals["shard_seconds"] += result.get("seconds", 0.0)
        statuses.update(result.get("statuses", {}))
    totals["shard_seconds"] = round(totals["shard_seconds"], 3)
    return {
        "shards": shard_count,
        "skipped_shards": skipped,
        "rows": 0,
        "ok": 0,
        "bytes": 0,
        **dict(totals),
        "statuses": dict(sorted(statuses.items())),
    }
