"""Both engines give the same raw shards; a killed run resumes with every uid exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers.download import raw_contents
from helpers.paths import COCO_IMAGES

from wit_pipeline import shards
from wit_pipeline.config import DownloadConfig, FetchConfig, ResizeConfig
from wit_pipeline.download import stage
from wit_pipeline.engines.local import LocalEngine
from wit_pipeline.sources.urls import UrlListConfig
from wit_pipeline.testing.commands import download_argv

IMAGES = sorted(p.name for p in COCO_IMAGES.iterdir())


def url_list(path, base, copies=2, extra=()):
    rows = [
        {"url": f"{base}/img/{n}/{name}", "caption": f"a photo, copy {n} of {name}"}
        for n in range(copies)
        for name in IMAGES
    ]
    rows += list(extra)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return rows


@pytest.mark.slow
def test_local_and_beam_engines_write_the_same_rows_and_members(tmp_path, image_server):
    from wit_pipeline.engines.beam import BeamEngine

    input_path = str(tmp_path / "urls.parquet")
    url_list(input_path, image_server.url, extra=[{"url": f"{image_server.url}/status/404", "caption": "gone"}])
    config = DownloadConfig(
        fetch=FetchConfig(allow_networks=("127.0.0.1/32",), retries=0), resize=ResizeConfig(image_size=64), threads=4
    )
    url_config = UrlListConfig(shard_size=10)
    local_totals = stage.run(
        LocalEngine(2), str(tmp_path / "local"), config, input_path=input_path, url_config=url_config
    )
    beam_totals = stage.run(
        BeamEngine(["--direct_running_mode=multi_processing", "--direct_num_workers=2"]),
        str(tmp_path / "beam"),
        config,
        input_path=input_path,
        url_config=url_config,
    )
    assert local_totals["statuses"] == beam_totals["statuses"] == {"ok": 2 * len(IMAGES), "http_404": 1}
    local_rows, local_members = raw_contents(tmp_path / "local")
    beam_rows, beam_members = raw_contents(tmp_path / "beam")
    assert local_rows == beam_rows
    assert local_members == beam_members


@pytest.mark.slow
def test_killed_run_resumes_with_every_uid_exactly_once(tmp_path, image_server):
    input_path = str(tmp_path / "urls.parquet")
    rows = [
        {"url": f"{image_server.url}/slow/0.05/{n}/{name}", "caption": f"copy {n} of {name}"}
        for n in range(4)
        for name in IMAGES
    ]
    pq.write_table(pa.Table.from_pylist(rows), input_path)
    out = str(tmp_path / "out")
    fetch = ("--processes", 1, "--threads", 2, "--image-size", 32, "--allow-network", "127.0.0.1/32")
    command = download_argv(input_path, out, "--shard-size", 12, *fetch)
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        # Kill mid-run: after some shards finished and while another is half written.
        while len(shards.finished_shards(os.path.join(out, "raw"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    finished_before = shards.finished_shards(os.path.join(out, "raw"))
    assert 2 <= len(finished_before) < len(rows) // 12, "the kill should land mid-run"

    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
    raw_rows, members = raw_contents(out)
    uids = [row["uid"] for row in raw_rows]
    assert len(uids) == len(set(uids)) == len(rows)
    assert all(row["status"] == "ok" for row in raw_rows)
    assert {name.split(".")[0] for name in members} == set(uids)


def plan_against_local(tmp_path, image_server, engine_name):
    """Run one copy of each image locally; return the same plan for another engine's folder."""
    input_path = str(tmp_path / "urls.parquet")
    url_list(input_path, image_server.url, copies=1)
    config = DownloadConfig(
        fetch=FetchConfig(allow_networks=("127.0.0.1/32",), retries=0), resize=ResizeConfig(image_size=48), threads=4
    )
    url_config = UrlListConfig(shard_size=8)
    stage.run_tasks(LocalEngine(), stage.plan_tasks(input_path, str(tmp_path / "local"), url_config, config))
    return stage.plan_tasks(input_path, str(tmp_path / engine_name), url_config, config)


@pytest.mark.slow
def test_portable_runner_with_external_worker_pool_matches_local(tmp_path, image_server):
    from wit_pipeline.engines.beam import BeamEngine
    from wit_pipeline.testing.beam_services import portable_runner_args

    tasks = plan_against_local(tmp_path, image_server, "portable")
    with portable_runner_args(tmp_path) as beam_args:
        totals = stage.run_tasks(BeamEngine(beam_args), tasks)
    assert totals["statuses"] == {"ok": len(IMAGES)}
    assert raw_contents(tmp_path / "local") == raw_contents(tmp_path / "portable")


@pytest.mark.slow
def test_spark_engine_matches_local(tmp_path, image_server):
    from wit_pipeline.engines.spark import SparkEngine

    tasks = plan_against_local(tmp_path, image_server, "spark")
    engine = SparkEngine("local[2]")
    try:
        totals = stage.run_tasks(engine, tasks)
    finally:
        engine.close()
    assert totals["statuses"] == {"ok": len(IMAGES)}
    assert raw_contents(tmp_path / "local") == raw_contents(tmp_path / "spark")


def test_downloaded_copies_of_an_eval_folder_are_decontaminated(tmp_path, image_server):
    """The default `border` resize pads the stored image: eval images are hashed as stored too."""
    from wit_pipeline.config import DedupConfig
    from wit_pipeline.dedup import stage as dedup_stage

    input_path = str(tmp_path / "urls.parquet")
    url_list(input_path, image_server.url, copies=1)
    config = DownloadConfig(
        fetch=FetchConfig(allow_networks=("127.0.0.1/32",)),
        resize=ResizeConfig(image_size=64, resize_mode="border"),
        threads=4,
    )
    stage.run(LocalEngine(), str(tmp_path), config, input_path=input_path, url_config=UrlListConfig())
    eval_folder = tmp_path / "eval"
    eval_folder.mkdir()
    for name in IMAGES[:5]:
        (eval_folder / name).write_bytes((COCO_IMAGES / name).read_bytes())
    stats = dedup_stage.dedup_folder(str(tmp_path / "raw"), str(tmp_path / "dedup"), DedupConfig(), str(eval_folder))
    assert stats["eval_overlaps"] == 5
    assert stats["kept"] == len(IMAGES) - 5
