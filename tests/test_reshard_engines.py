"""The Beam engine gives the same final shards as the local engine, byte for byte."""

from __future__ import annotations

import pytest
from helpers.engines import IN_MEMORY
from helpers.rawshards import build_raw

from wit_pipeline.config import DedupConfig, ReshardConfig
from wit_pipeline.dedup import stage
from wit_pipeline.engines.local import LocalEngine
from wit_pipeline.reshard import stage as reshard

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    """Raw shards with near duplicates, deduplicated: what reshard reads."""
    folder = tmp_path_factory.mktemp("out")
    build_raw(folder / "raw")
    stage.run(LocalEngine(), str(folder), DedupConfig())
    return folder


def test_beam_reshard_writes_the_local_shards(out):
    from wit_pipeline.engines.beam import BeamEngine

    config = ReshardConfig(samples_per_shard=4, seed=3)
    local = reshard.run(LocalEngine(), str(out), config)
    beam = reshard.run(BeamEngine(IN_MEMORY), str(out), config, output_folder=str(out / "final_beam"))
    assert local["shards"] == beam["shards"]  # names, counts, sizes and tar checksums
    for facts in local["shards"]:
        for ext in ("tar", "parquet"):
            name = f"{facts['shard']}.{ext}"
            assert (out / "final" / name).read_bytes() == (out / "final_beam" / name).read_bytes()
