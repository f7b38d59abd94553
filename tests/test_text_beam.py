"""Both text stages on Beam write exactly what the local engine writes (real captions)."""

import glob
import json
import os

import pyarrow.parquet as pq
import pytest

from text_helpers import ENTRIES, ListSource, laion_rows

beam = pytest.importorskip("apache_beam")

pytestmark = pytest.mark.slow

IN_MEMORY = ["--direct_running_mode=in_memory"]


def files(folder):
    return {os.path.relpath(p, folder): pq.read_table(p).to_pylist()
            for p in sorted(glob.glob(f"{folder}/**/*.parquet", recursive=True))}


def test_ingest_and_balance_on_beam_equal_local(tmp_path):
    from apache_beam.metrics.metric import MetricsFilter

    from beam_jobs import balance as beam_balance
    from beam_jobs import ingest as beam_ingest
    from beam_jobs.options import pipeline_options
    from wit_pipeline import balance, ingest
    from wit_pipeline.config import BalanceConfig, IngestConfig, MatchConfig

    rows = laion_rows(500)
    pairs = [(r["URL"], r["TEXT"]) for r in rows] + [(r["URL"], r["TEXT"]) for r in rows[:120]]
    source = ListSource(pairs, shard_size=125)
    config = IngestConfig(match=MatchConfig(metadata_path=str(ENTRIES)))
    local, on_beam = str(tmp_path / "local"), str(tmp_path / "beam")

    local_summary = ingest.run_local(source, local, config)
    pipeline = beam.Pipeline(options=pipeline_options(IN_MEMORY))
    beam_ingest.build(pipeline, source, on_beam, config)
    result = pipeline.run()
    result.wait_until_finish()
    beam_summary = json.loads(open(f"{on_beam}/ingest/ingest_stats.json").read())
    assert beam_summary == local_summary
    assert local_summary["dropped"]["duplicate"] > 0
    assert files(f"{on_beam}/ingest") == files(f"{local}/ingest")
    counters = {c.key.metric.name: c.committed
                for c in result.metrics().query(MetricsFilter().with_namespace("ingest"))["counters"]}
    assert counters == {"ok": local_summary["kept"], **local_summary["dropped"]}

    balance_config = BalanceConfig(t=4, seed=11)
    local_balance = balance.run_local(local, balance_config)
    pipeline = beam.Pipeline(options=pipeline_options(IN_MEMORY))
    beam_balance.build(pipeline, on_beam, balance_config)
    result = pipeline.run()
    result.wait_until_finish()
    beam_balance_summary = json.loads(open(f"{on_beam}/balance/balance_stats.json").read())
    assert beam_balance_summary == local_balance
    counters = {c.key.metric.name: c.committed
                for c in result.metrics().query(MetricsFilter().with_namespace("balance"))["counters"]}
    assert counters == {"ok": local_balance["kept"], **local_balance["dropped"]}
    assert local_balance["entries_capped"] > 0 and local_balance["dropped"]["not_sampled"] > 0
    assert files(f"{on_beam}/balance") == files(f"{local}/balance")
