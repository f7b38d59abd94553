"""Ingest on Beam writes exactly what the local engine writes (real captions), and a source read
through Beam (FnApiRunner) yields exactly the records of the local read."""

import json

import pytest
from helpers.engines import IN_MEMORY, parquet_rows
from helpers.paths import TEST_DATA
from helpers.text import ENTRIES, ListSource, laion_pairs

from wit_pipeline import shards
from wit_pipeline.stats import without_provenance

beam = pytest.importorskip("apache_beam")

pytestmark = pytest.mark.slow


def test_ingest_on_beam_equals_local(tmp_path):
    from wit_pipeline.config import IngestConfig, MatchConfig
    from wit_pipeline.engines.beam import BeamEngine
    from wit_pipeline.engines.local import LocalEngine
    from wit_pipeline.ingest import stage as ingest

    pairs = laion_pairs(500, repeated=120)
    source = ListSource(pairs, shard_size=125)
    config = IngestConfig(match=MatchConfig(metadata_path=str(ENTRIES)))
    local, on_beam = str(tmp_path / "local"), str(tmp_path / "beam")
    engine = BeamEngine(IN_MEMORY)

    local_summary = ingest.run(LocalEngine(), local, config, source=source)
    beam_summary = ingest.run(engine, on_beam, config, source=source)
    assert without_provenance(beam_summary) == without_provenance(local_summary)
    assert local_summary["dropped"]["duplicate"] > 0
    assert parquet_rows(f"{on_beam}/ingest") == parquet_rows(f"{local}/ingest")
    # The same markers on Beam as on the local engine: a rerun skips every shard.
    assert shards.finished_shards(f"{on_beam}/ingest") == shards.finished_shards(f"{local}/ingest") == [0, 1, 2, 3, 4]
    assert without_provenance(ingest.run(engine, on_beam, config, source=source)) == without_provenance(local_summary)


def as_json(record: dict) -> str:
    return json.dumps(record, sort_keys=True)


def test_beam_read_equals_local_read():
    from apache_beam.testing.util import assert_that, equal_to

    from beam_jobs.options import pipeline_options
    from beam_jobs.sources import ReadSource
    from wit_pipeline.sources.warc import WarcSource

    cc = TEST_DATA / "commoncrawl"
    source = WarcSource([str(cc / "iana.warc.gz"), str(cc / "whirlwind.warc.gz")])
    local = [as_json(record) for shard in source.shards() for record in source.read(shard)]
    assert len(local) == 23
    with beam.Pipeline(options=pipeline_options(["--direct_running_mode=in_memory"])) as pipeline:
        records = pipeline | ReadSource(source) | beam.Map(as_json)
        assert_that(records, equal_to(local))
