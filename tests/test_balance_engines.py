"""Balance on Beam writes exactly what the local engine writes, from the same ingest output."""

import shutil

import pytest
from helpers.engines import IN_MEMORY, parquet_rows
from helpers.text import ENTRIES, ListSource, laion_pairs

from wit_pipeline.stats import without_provenance

beam = pytest.importorskip("apache_beam")

pytestmark = pytest.mark.slow


def test_balance_on_beam_equals_local(tmp_path):
    from apache_beam.metrics.metric import MetricsFilter

    from wit_pipeline.balance import stage as balance
    from wit_pipeline.config import BalanceConfig, IngestConfig, MatchConfig
    from wit_pipeline.engines.beam import BeamEngine
    from wit_pipeline.engines.local import LocalEngine
    from wit_pipeline.ingest import stage as ingest

    pairs = laion_pairs(500, repeated=120)
    local, on_beam = str(tmp_path / "local"), str(tmp_path / "beam")
    config = IngestConfig(match=MatchConfig(metadata_path=str(ENTRIES)))
    ingest.run(LocalEngine(), local, config, source=ListSource(pairs, shard_size=125))
    # Ingest's engine equality is test_ingest_engines.py's: both engines balance the same folder.
    shutil.copytree(local, on_beam)
    engine = BeamEngine(IN_MEMORY)

    balance_config = BalanceConfig(t=4, seed=11)
    local_balance = balance.run(LocalEngine(), local, balance_config)
    beam_balance = balance.run(engine, on_beam, balance_config)
    assert without_provenance(beam_balance) == without_provenance(local_balance)
    assert beam_balance["engine"] == "beam" and local_balance["engine"] == "local"
    # The select pass's per-status counts are Beam counters.
    counters = {
        c.key.metric.name: c.committed
        for c in engine.last_result.metrics().query(MetricsFilter().with_namespace("balance"))["counters"]
    }
    assert counters == {"ok": local_balance["kept"], **local_balance["dropped"]}
    assert local_balance["entries_capped"] > 0 and local_balance["dropped"]["not_sampled"] > 0
    assert parquet_rows(f"{on_beam}/balance") == parquet_rows(f"{local}/balance")
