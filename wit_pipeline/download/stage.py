"""The download stage end to end on the local engine: plan shards, run them, sum their stats."""

from __future__ import annotations

from collections import Counter

from wit_pipeline import claim, shards
from wit_pipeline.config import DownloadConfig, UrlListConfig, to_dict
from wit_pipeline.download.shard import DownloadTask, download_shard
from wit_pipeline.engines import local
from wit_pipeline.sources.urls import UrlListSource


def raw_dir(output: str) -> str:
    return shards.join(output, "raw")


def plan_tasks(input_path: str, output: str, url_config: UrlListConfig, config: DownloadConfig) -> list[DownloadTask]:
    """One task per input shard, in input order; the same plan on every engine and rerun."""
    out = raw_dir(output)
    # What shapes the shards: the input, its shard plan and the image settings. Fetch settings
    # and thread counts may change on a resume (a longer timeout for the unfinished shards).
    shards.claim_folder(out, {"stage": "download", "input": input_path, "url_list": to_dict(url_config),
                              "resize": to_dict(config.resize), "compute_phash": config.compute_phash})
    source = UrlListSource(input_path, url_config, staging_dir=shards.join(out, "_input"))
    try:
        tasks = [DownloadTask(source, shard, out, config) for shard in source.shards()]
        if not tasks:
            raise shards.InputError(f"{input_path}: no rows to download (the list is empty)")
    except shards.InputError:
        claim.abandon(out)  # nothing was downloaded: a corrected rerun starts afresh
        raise
    shards.write_atomic(shards.join(out, "config.json"),
                        shards.json_bytes({"stage": "download", "input": input_path, shards.PLANNED_SHARDS: len(tasks),
                                           "url_list": to_dict(url_config), "download": to_dict(config)}))
    return tasks


def run_local(tasks: list[DownloadTask], processes: int) -> dict:
    """Run every task on a local process pool and return the summed stats."""
    results = local.map_shards(download_shard, tasks, processes=processes, desc="download", unit_key="ok",
                               unit_label="images")
    return write_totals(tasks, summarise(results))


def write_totals(tasks: list[DownloadTask], totals: dict) -> dict:
    """Record the stage's totals beside its shards (every engine calls this once, at the end)."""
    if tasks:
        shards.write_atomic(shards.join(tasks[0].output_dir, "download_stats.json"), shards.json_bytes(totals))
    return totals


def run_spark(tasks: list[DownloadTask], master: str) -> dict:
    """Run every task as a Spark task (one partition per shard) and return the summed stats."""
    from wit_pipeline.engines import spark

    session = spark.session(master, app_name="wit download")
    try:
        return write_totals(tasks, summarise(spark.map_shards(session, download_shard, tasks)))
    finally:
        session.stop()


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


def run_download(input_path: str, output: str, url_config: UrlListConfig, config: DownloadConfig,
                 processes: int = 1) -> dict:
    return run_local(plan_tasks(input_path, output, url_config, config), processes)
