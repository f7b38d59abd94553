"""Dedup on real near duplicates of real COCO photos (local engine)."""

from __future__ import annotations

import json
import shutil

import pytest
from helpers.paths import COCO_IMAGES as IMAGES
from helpers.rawshards import (
    CHAIN,
    CROP_FAR,
    VARIANTS,
    VARIED,
    RawFailure,
    build_raw,
    crop,
    crop3,
    encode,
    load,
    photo,
    sample,
    write_raw_shard,
)

from wit_pipeline import io, shards
from wit_pipeline.config import DedupConfig
from wit_pipeline.dedup import stage
from wit_pipeline.download.hashing import phash_hex, phash_to_int
from wit_pipeline.engines.local import LocalEngine


def distance(a: bytes, b: bytes) -> int:
    return bin(phash_to_int(phash_hex(a)) ^ phash_to_int(phash_hex(b))).count("1")


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    folder = tmp_path_factory.mktemp("out") / "raw"
    return folder, build_raw(folder)


@pytest.fixture(scope="module")
def deduped(raw, tmp_path_factory):
    folder, samples = raw
    output = tmp_path_factory.mktemp("dedup")
    stats = stage.dedup_folder(str(folder), str(output), DedupConfig())
    return output, samples, stats


def decisions(output) -> tuple[set[str], dict[str, dict]]:
    keep = set(io.read_parquet(str(output / "keep.parquet"))["uid"].to_pylist())
    table = io.read_parquet(str(output / "clusters.parquet")).to_pylist()
    return keep, {row["uid"]: row for row in table}


def test_variants_measured_within_default_radius():
    varied = photo(VARIED)
    measured = {name: distance(varied, make(varied)) for name, make in VARIANTS.items()}
    assert all(value <= 4 for value in measured.values()), measured
    assert distance(photo(CROP_FAR), crop3(photo(CROP_FAR))) > 4
    chain = photo(CHAIN)
    one, two = crop(chain, 0.01), crop(chain, 0.02)
    assert distance(chain, one) <= 4 and distance(one, two) <= 4 and distance(chain, two) > 4


def test_every_variant_merges_into_the_largest(deduped):
    output, samples, _ = deduped
    keep, clusters = decisions(output)
    members = [s for key, s in samples.items() if key.startswith("varied")]
    survivor = samples["varied_double"]  # double the size: the largest original area
    assert survivor.uid in keep
    for member in members:
        assert clusters[member.uid]["cluster"] == survivor.uid
        if member is not survivor:
            assert member.uid not in keep
            assert clusters[member.uid]["status"] == "near_duplicate"
            assert clusters[member.uid]["distance"] <= 4


def test_same_bytes_under_two_urls_is_an_exact_duplicate(deduped):
    output, samples, _ = deduped
    keep, clusters = decisions(output)
    a, b = samples["two_urls_a"], samples["two_urls_b"]
    survivor, dropped = sorted([a, b], key=lambda s: s.uid)  # same area: the smaller uid wins
    assert survivor.uid in keep and dropped.uid not in keep
    assert clusters[dropped.uid]["status"] == "exact_duplicate"
    assert clusters[dropped.uid]["distance"] == 0


def test_chain_is_one_cluster(deduped):
    output, samples, _ = deduped
    keep, clusters = decisions(output)
    chain = [samples[CHAIN], samples["chain_1"], samples["chain_2"]]
    assert len({clusters[s.uid]["cluster"] for s in chain}) == 1
    assert sum(s.uid in keep for s in chain) == 1


def test_distinct_photos_never_merge(deduped):
    output, samples, _ = deduped
    keep, clusters = decisions(output)
    originals = [samples["varied"], samples["two_urls_a"]] + [
        samples[p.name] for p in IMAGES.glob("*.jpg") if p.name in samples
    ]
    cluster_of = {s.uid: clusters.get(s.uid, {}).get("cluster", s.uid) for s in originals}
    assert len(set(cluster_of.values())) == len(originals) == 24


def test_far_crop_stays_apart_at_default_radius(deduped, raw, tmp_path):
    output, samples, _ = deduped
    keep, _ = decisions(output)
    assert samples["crop_far"].uid in keep and samples[CROP_FAR].uid in keep
    # A wider radius does join it: the pHash moved, the photo did not.
    stage.dedup_folder(str(raw[0]), str(tmp_path), DedupConfig(radius=12))
    keep_wide, _ = decisions(tmp_path)
    assert (samples["crop_far"].uid in keep_wide) != (samples[CROP_FAR].uid in keep_wide)


def test_stats_account_for_every_row(deduped):
    output, samples, stats = deduped
    written = json.loads((output / "stats.json").read_text())
    assert written["rows"] == len(samples) + 2
    assert written["rows_by_input_status"] == {"ok": len(samples), "http_404": 1, "timeout": 1}
    assert written["exact_duplicates"] == 1
    # 6 of the 7 "varied" rows (the photo and its 6 variants), 2 of the 3 chain rows.
    assert written["near_duplicates"] == 6 + 2
    assert written["kept"] + written["exact_duplicates"] + written["near_duplicates"] == len(samples)
    assert written["largest_clusters"][0] == {"survivor": samples["varied_double"].uid, "size": 7}


def test_decontamination_on_an_image_folder(raw, tmp_path):
    folder, samples = raw
    eval_set = tmp_path / "eval"
    (eval_set / "nested").mkdir(parents=True)
    shutil.copy(IMAGES / "000000539216.jpg", eval_set / "539216.jpg")
    # A smaller, recompressed copy in the eval set still finds the training photo.
    (eval_set / "nested" / "159269.jpg").write_bytes(encode(load(photo("000000159269.jpg")).reduce(2), 60))
    output = tmp_path / "dedup"
    stats = stage.dedup_folder(str(folder), str(output), DedupConfig(), decontaminate=str(eval_set))
    keep, clusters = decisions(output)
    for name in ("000000539216.jpg", "000000159269.jpg"):
        assert samples[name].uid not in keep
        assert clusters[samples[name].uid]["status"] == "eval_overlap"
        assert clusters[samples[name].uid]["cluster"] is None
    assert stats["eval_overlaps"] == 2
    assert stats["eval_images_distinct_phashes"] == 2


def test_decontamination_on_our_shards(raw, tmp_path):
    folder, samples = raw
    eval_raw = tmp_path / "eval_raw"
    write_raw_shard(str(eval_raw), 0, [sample("e.jpg", crop(photo("000000070133.jpg"), 0.005), "eval")])
    stats = stage.dedup_folder(str(folder), str(tmp_path / "dedup"), DedupConfig(), decontaminate=str(eval_raw))
    assert stats["eval_overlaps"] == 1


def test_bad_inputs_have_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="no finished raw shards"):
        stage.dedup_folder(str(tmp_path), str(tmp_path / "d"), DedupConfig())
    (tmp_path / "empty_eval").mkdir()
    write_raw_shard(str(tmp_path / "raw"), 0, [sample("x.jpg", photo(VARIED))])
    with pytest.raises(ValueError, match="no Parquet sidecars and no image files"):
        stage.dedup_folder(str(tmp_path / "raw"), str(tmp_path / "d"), DedupConfig(), str(tmp_path / "empty_eval"))
    (tmp_path / "broken_eval").mkdir()
    (tmp_path / "broken_eval" / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="broken.jpg does not decode"):
        stage.dedup_folder(str(tmp_path / "raw"), str(tmp_path / "d"), DedupConfig(), str(tmp_path / "broken_eval"))


def test_shards_without_ok_rows_give_empty_outputs(tmp_path):
    from wit_pipeline.config import ReshardConfig
    from wit_pipeline.reshard import stage as reshard

    write_raw_shard(str(tmp_path / "raw"), 0, [RawFailure("http://127.0.0.1/a.jpg", "a")])
    stats = stage.dedup_folder(str(tmp_path / "raw"), str(tmp_path / "dedup"), DedupConfig())
    assert stats["rows"] == 1 and stats["kept"] == 0
    manifest = reshard.run(
        LocalEngine(),
        None,
        ReshardConfig(),
        input_folder=str(tmp_path / "raw"),
        keep_path=str(tmp_path / "dedup" / "keep.parquet"),
        output_folder=str(tmp_path / "final"),
    )
    assert manifest["shards"] == [] and manifest["samples"] == 0


def test_malformed_phash_is_named(tmp_path):
    from wit_pipeline import schema

    rows = write_raw_shard(str(tmp_path / "raw"), 0, [sample("x.jpg", photo(VARIED))])
    rows[0]["phash"] = "not-a-phash-0000"
    shards.write_parquet(str(tmp_path / "raw" / "00000.parquet"), rows, schema.RAW_SCHEMA)
    with pytest.raises(io.InputError, match="not a 16-digit hex pHash"):
        stage.dedup_folder(str(tmp_path / "raw"), str(tmp_path / "d"), DedupConfig())
    rows[0]["phash"] = "abc"
    shards.write_parquet(str(tmp_path / "raw" / "00000.parquet"), rows, schema.RAW_SCHEMA)
    with pytest.raises(io.InputError, match="00000.parquet: phash: expected 16-character values, found 'abc'"):
        stage.dedup_folder(str(tmp_path / "raw"), str(tmp_path / "d"), DedupConfig())
