"""Reshard: shuffled final shards of a fixed size, byte-identical on rerun, read by webdataset."""

from __future__ import annotations

import json

import pytest
from helpers.paths import TEST_DATA
from helpers.rawshards import RawFailure, RawSample, half, write_raw_shard

from wit_pipeline import io, shards
from wit_pipeline.config import DedupConfig, ReshardConfig
from wit_pipeline.dedup import stage
from wit_pipeline.engines.local import LocalEngine
from wit_pipeline.reshard import stage as reshard

IMAGES = sorted((TEST_DATA / "coco" / "images").glob("*.jpg"))


def build_out(out) -> list[RawSample]:
    """OUT/raw with three shards (24 photos, 2 near duplicates, failures) and OUT/dedup."""
    samples = [RawSample(f"http://127.0.0.1/{p.name}", f"caption of {p.stem}", p.read_bytes()) for p in IMAGES]
    samples.append(RawSample("http://127.0.0.1/small.jpg", "a small copy", half(IMAGES[0].read_bytes())))
    samples.append(RawSample("http://127.0.0.1/mirror.jpg", "a mirror", IMAGES[1].read_bytes()))
    raw = out / "raw"
    for shard_id in range(3):
        part = samples[shard_id::3] + [RawFailure(f"http://127.0.0.1/gone{shard_id}.jpg", "gone")]
        write_raw_shard(str(raw), shard_id, part)
    (raw / "config.json").write_text(json.dumps({"download": {"threads": 4}}))
    stage.dedup_folder(str(raw), str(out / "dedup"), DedupConfig())
    return samples


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    folder = tmp_path_factory.mktemp("out")
    return folder, build_out(folder)


def run(out, folder="final", processes=1, **config):
    return reshard.run(
        LocalEngine(processes),
        None,
        ReshardConfig(**{"samples_per_shard": 5, "seed": 7, **config}),
        input_folder=str(out / "raw"),
        keep_path=str(out / "dedup" / "keep.parquet"),
        output_folder=str(out / folder),
        stage_folders={"download": str(out / "raw"), "dedup": str(out / "dedup")},
    )


def shard_bytes(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.suffix in (".tar", ".parquet")}


def test_fixed_size_shards_hold_every_kept_sample_once(out):
    folder, samples = out
    manifest = run(folder)
    kept = set(io.read_parquet(str(folder / "dedup" / "keep.parquet"))["uid"].to_pylist())
    assert len(kept) == 24  # 26 photos minus the half-size copy and the mirror
    assert [s["samples"] for s in manifest["shards"]] == [5, 5, 5, 5, 4]
    by_uid = {s.uid: s for s in samples}
    seen = []
    for facts in manifest["shards"]:
        tar = folder / "final" / f"{facts['shard']}.tar"
        keys = []
        for key, members in shards.iter_tar(str(tar)):
            assert set(members) == {"jpg", "txt", "json"}
            assert members["jpg"] == by_uid[key].jpeg
            assert members["txt"].decode() == by_uid[key].caption
            keys.append(key)
        sidecar = io.read_parquet(str(folder / "final" / f"{facts['shard']}.parquet"))
        assert sidecar["uid"].to_pylist() == keys  # same keys, same order
        assert set(sidecar["status"].to_pylist()) == {"ok"}
        assert facts["tar_bytes"] == tar.stat().st_size
        seen += keys
    assert sorted(seen) == sorted(kept)
    assert seen != sorted(seen)  # shuffled
    assert manifest["samples"] == 24 and manifest["schema_version"] == 1
    assert manifest["provenance"]["stages"]["download"]["config.json"] == {"download": {"threads": 4}}
    assert manifest["provenance"]["stages"]["dedup"]["stats.json"]["kept"] == 24
    assert manifest["provenance"]["stages"]["download"]["shard_stats_total"] == {"rows": 29, "ok": 26}
    assert manifest["reshard"] == {"samples_per_shard": 5, "seed": 7}
    assert not (folder / "final" / reshard.ROUTING_FOLDER).exists()


def test_rerun_and_processes_give_identical_bytes(out):
    folder, _ = out
    run(folder, "final_a")
    run(folder, "final_b", processes=2)
    first = shard_bytes(folder / "final_a")
    assert first == shard_bytes(folder / "final_b")
    run(folder, "final_a")  # over its own earlier output
    assert first == shard_bytes(folder / "final_a")
    run(folder, "final_c", seed=8)
    assert shard_bytes(folder / "final_c") != first


def test_webdataset_reads_the_shards_without_adapters(out):
    import webdataset as wds

    folder, samples = out
    manifest = run(folder, "final_wds")
    urls = [str(folder / "final_wds" / f"{s['shard']}.tar") for s in manifest["shards"]]
    dataset = wds.WebDataset(urls, shardshuffle=False).decode("pil").to_tuple("__key__", "jpg", "txt", "json")
    rows = list(dataset)
    assert len(rows) == 24
    captions = {s.uid: s.caption for s in samples}
    for key, image, text, meta in rows:
        assert image.size[0] > 0 and text == captions[key] and meta["uid"] == key


def test_keep_list_not_matching_raw_is_an_error(out, tmp_path):
    folder, _ = out
    keep = tmp_path / "keep.parquet"
    from wit_pipeline import schema

    shards.write_parquet(str(keep), [{"uid": "0" * 32, "shard": 0}], schema.KEEP_SCHEMA)
    with pytest.raises(ValueError, match="lacks 1 kept samples"):
        reshard.run(
            LocalEngine(),
            None,
            ReshardConfig(),
            input_folder=str(folder / "raw"),
            keep_path=str(keep),
            output_folder=str(tmp_path / "final"),
        )


def test_shard_writer_takes_a_folder_holding_a_percent_sign(tmp_path):
    from wit_pipeline.shards import ShardWriter

    folder = tmp_path / "50%done"
    folder.mkdir()
    with ShardWriter(str(folder / "%05d.tar"), max_count=1) as writer:
        writer.write("a", {"txt": b"a"})
        writer.write("b", {"txt": b"b"})
    assert [p.rsplit("/", 1)[1] for p in writer.paths] == ["00000.tar", "00001.tar"]
    assert sorted(p.name for p in folder.iterdir()) == ["00000.tar", "00001.tar"]
