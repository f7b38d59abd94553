"""A source read through Beam (FnApiRunner) yields exactly the records of the local read."""

from __future__ import annotations

import json

import pytest

beam = pytest.importorskip("apache_beam")

from apache_beam.testing.util import assert_that, equal_to  # noqa: E402
from helpers.paths import TEST_DATA  # noqa: E402

from beam_jobs.options import pipeline_options  # noqa: E402
from beam_jobs.sources import ReadSource  # noqa: E402
from wit_pipeline.sources.warc import WarcSource  # noqa: E402


def as_json(record: dict) -> str:
    return json.dumps(record, sort_keys=True)


@pytest.mark.slow
def test_beam_read_equals_local_read():
    cc = TEST_DATA / "commoncrawl"
    source = WarcSource([str(cc / "iana.warc.gz"), str(cc / "whirlwind.warc.gz")])
    local = [as_json(record) for shard in source.shards() for record in source.read(shard)]
    assert len(local) == 23
    with beam.Pipeline(options=pipeline_options(["--direct_running_mode=in_memory"])) as pipeline:
        records = pipeline | ReadSource(source) | beam.Map(as_json)
        assert_that(records, equal_to(local))
