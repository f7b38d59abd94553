"""wit on a real standalone Spark cluster (1 master + 2 workers on 127.0.0.1, see spark_cluster.py):
the whole curation gives the local engine's shards, and a worker killed mid-download costs nothing.

One cluster serves the module; the kill test runs last, as it leaves one worker.
"""

from __future__ import annotations

import os
import subprocess
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("pyspark")

from helpers.curate import example_config, final_files  # noqa: E402
from helpers.download import raw_contents  # noqa: E402
from helpers.paths import COCO_IMAGES, REPO_ROOT  # noqa: E402

from wit_pipeline import shards  # noqa: E402
from wit_pipeline.testing.commands import wit_argv  # noqa: E402
from wit_pipeline.testing.spark_cluster import standalone_cluster  # noqa: E402

pytestmark = pytest.mark.slow

IMAGES = sorted(p.name for p in COCO_IMAGES.iterdir())


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with standalone_cluster(tmp_path_factory.mktemp("spark-cluster")) as running:
        yield running


def wit_command(cluster, *args):
    """`wit ARGS` as an argv, and an environment that reaches the cluster."""
    return wit_argv(*args), dict(os.environ, **cluster.env)


def test_curate_on_a_standalone_cluster_writes_the_local_shards(tmp_path, cluster):
    command, env = wit_command(cluster, "curate", str(example_config(tmp_path, "local")), "--engine", "local")
    subprocess.run(command, check=True, cwd=REPO_ROOT, env=env, capture_output=True, timeout=300)
    command, env = wit_command(
        cluster,
        "curate",
        str(example_config(tmp_path, "cluster")),
        "--engine",
        "spark",
        "--spark-master",
        cluster.master_url,
    )
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert final_files(tmp_path / "cluster") == final_files(tmp_path / "local")


def test_a_worker_killed_mid_download_loses_and_repeats_nothing(tmp_path, cluster, image_server):
    rows = [
        {"url": f"{image_server.url}/slow/0.3/{n}/{name}", "caption": f"copy {n} of {name}"}
        for n in range(6)
        for name in IMAGES
    ]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "urls.parquet")
    out = tmp_path / "out"
    spark = ("--engine", "spark", "--spark-master", cluster.master_url)
    fetch = ("--shard-size", 8, "--threads", 2, "--image-size", 32, "--allow-network", "127.0.0.1/32")
    command, env = wit_command(
        cluster, "download", "--input", tmp_path / "urls.parquet", "--output", out, *spark, *fetch
    )
    log = open(tmp_path / "download.log", "w")
    run = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while not shards.finished_shards(out / "raw") and time.monotonic() < deadline and run.poll() is None:
            time.sleep(0.1)
        finished_at_kill = len(shards.finished_shards(out / "raw"))
        cluster.kill_worker(0)
        assert run.wait(timeout=420) == 0, (tmp_path / "download.log").read_text()[-3000:]
    finally:
        if run.poll() is None:
            run.kill()
    assert 1 <= finished_at_kill < len(rows) // 8, "the kill should land mid-run"
    raw_rows, members = raw_contents(out)
    uids = [row["uid"] for row in raw_rows]
    assert len(uids) == len(set(uids)) == len(rows)
    assert all(row["status"] == "ok" for row in raw_rows)
    assert {name.split(".")[0] for name in members} == set(uids)
