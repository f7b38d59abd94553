"""The Beam engine gives the same dedup files as the local engine."""

from __future__ import annotations

import shutil

import pytest
from helpers.engines import IN_MEMORY
from helpers.paths import TEST_DATA
from helpers.rawshards import build_raw

from wit_pipeline.config import DedupConfig
from wit_pipeline.dedup import stage
from wit_pipeline.engines.local import LocalEngine

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    folder = tmp_path_factory.mktemp("out")
    build_raw(folder / "raw")
    eval_set = folder / "eval"
    eval_set.mkdir()
    shutil.copy(TEST_DATA / "coco" / "images" / "000000539216.jpg", eval_set)
    return folder


def test_beam_dedup_writes_the_local_files(out):
    from wit_pipeline.engines.beam import BeamEngine

    config = DedupConfig()
    local = stage.run(LocalEngine(), str(out), config, decontaminate=str(out / "eval"))
    beam = stage.run(
        BeamEngine(IN_MEMORY), str(out), config, decontaminate=str(out / "eval"), output_folder=str(out / "dedup_beam")
    )
    for name in ("keep.parquet", "clusters.parquet"):
        assert (out / "dedup" / name).read_bytes() == (out / "dedup_beam" / name).read_bytes()
    for key in (
        "rows",
        "kept",
        "exact_duplicates",
        "near_duplicates",
        "eval_overlaps",
        "largest_clusters",
        "bands",
        "near_pairs_verified",
    ):
        assert local[key] == beam[key], key
    assert beam["eval_overlaps"] == 1 and beam["near_duplicates"] == 8
