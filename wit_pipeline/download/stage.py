"""The download stage on any engine: plan shards, run them, sum their stats."""

from __future__ import annotations

from collections import Counter

from wit_pipeline import shards
from wit_pipeline.config import DownloadConfig, UrlListConfig, to_dict
from wit_pipeline.download.shard import DownloadTask, download_shard
from wit_pipeline.sources.urls import UrlListSource


def raw_dir(output: str) -> str:
    return shards.join(output, "raw")


def plan_tasks(input_path: str, output: str, url_config: UrlListConfig, config: DownloadConfig) -> list[DownloadTask]:
    """One task per input shard, in input order; the same plan on every engine and rerun."""
    out = raw_dir(output)
    source = UrlListSource(input_path, url_config, staging_dir=shards.join(out, "_input"))
    tasks = [DownloadTask(source, shard, out, config) for shard in source.shards()]
    # What shapes the shards: the input, its shard plan and the image settings. Fetch settings
    # and thread counts may change on a resume (a longer timeout for the unfinished shards).
    shards.claim_folder(out, {"stage": "download", "input": input_path, "url_list": to_dict(url_config),
                              "resize": to_dict(config.resize), "compute_phash": config.compute_phash})
    shards.write_atomic(shards.join(out, "config.json"),
                        shards.json_bytes({"stage": "download", "input": input_path,
                                           "url_list": to_dict(url_config), "download": to_dict(config)}))
    return tasks


def run(engine, output: str, config: DownloadConfig, *, input_path: str, url_config: UrlListConfig) -> dict:
    """Plan the shards of `input_path`, download them on `engine`, write and return the totals."""
    return run_tasks(engine, plan_tasks(input_path, output, url_config, config))


def run_tasks(engine, tasks: list[DownloadTask]) -> dict:
    """Run planned tasks on `engine` (finished shards are skipped) and return the summed stats."""
    results = engine.map_shards(download_shard, tasks, desc="download", unit_key="ok", unit_label="images")
    return write_totals(tasks, summarise(results))


def write_totals(tasks: list[DownloadTask], totals: dict) -> dict:
    """Record the stage's totals beside its shards (every engine calls this once, at the end)."""
    if tasks:
        shards.write_atomic(shards.join(tasks[0].output_dir, "download_stats.json"), shards.json_bytes(totals))
    return totals


def summarise(results) -> dict:
    """Add up per-shard stats into the stage's totals."""
    totals = Counter()
    statuses = Counter()
    shard_count = skipped = 0
    for result in results:
        shard_count += 1
        skipped += bool(result.get("skipped"))
        totals.update({k: result.get(k, 0) for k in ("rows", "ok", "bytes")})
        totals["seconds"] += result.get("seconds", 0.0)
        statuses.update(result.get("statuses", {}))
    return {"shards": shard_count, "skipped_shards": skipped, **dict(totals),
            "statuses": dict(sorted(statuses.items()))}
