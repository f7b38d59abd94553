"""COCO captions source on the real captions_train2017.json subset (80 images, 400 captions)."""

from __future__ import annotations

import bz2
import gzip
import json
import shutil

import pytest
from helpers.paths import TEST_DATA

from wit_pipeline.sources.coco import CocoConfig, CocoSource

CAPTIONS = TEST_DATA / "coco" / "captions_train2017.json"
IMAGES = TEST_DATA / "coco" / "images"


def read_all(path, **config) -> list[dict]:
    source = CocoSource(str(path), CocoConfig(**config))
    return [record for shard in source.shards() for record in source.read(shard)]


def statuses(records) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in records:
        counts[record["status"]] = counts.get(record["status"], 0) + 1
    return counts


def test_each_mode_gives_one_pair_per_caption_in_annotation_order():
    records = read_all(CAPTIONS)
    assert len(records) == 400 and statuses(records) == {"ok": 400}
    first = records[0]
    # The file's first annotation: id 88366 on image 125870.
    assert first["caption"] == "An airport filled with large passenger jets parked next to each other."
    assert first["source_id"] == "125870"
    assert first["url"] == "http://images.cocodataset.org/train2017/000000125870.jpg"
    assert first["source"] == "coco" and first["page_url"] is None and first["image_path"] is None
    assert len({r["source_id"] for r in records}) == 80


def test_license_id_becomes_name_and_url():
    records = {r["source_id"]: r for r in read_all(CAPTIONS, captions="first")}
    # images[0] is 493652 with license 3.
    assert records["493652"]["license"] == (
        "Attribution-NonCommercial-NoDerivs License (http://creativecommons.org/licenses/by-nc-nd/2.0/)"
    )


def test_first_and_join_give_one_record_per_image_in_images_order():
    first = read_all(CAPTIONS, captions="first")
    joined = read_all(CAPTIONS, captions="join")
    each = read_all(CAPTIONS)
    assert [r["source_id"] for r in first] == [r["source_id"] for r in joined]
    assert len(first) == 80 and first[0]["source_id"] == "493652"
    captions_of_493652 = [r["caption"] for r in each if r["source_id"] == "493652"]
    assert len(captions_of_493652) == 5
    assert first[0]["caption"] == captions_of_493652[0]
    for caption in captions_of_493652:
        assert caption.rstrip(".") in joined[0]["caption"]
    assert joined[0]["caption"].count(". ") >= 4


def test_flickr_url_by_flag():
    records = read_all(CAPTIONS, captions="first", url_field="flickr_url")
    assert records[0]["url"] == "http://farm4.staticflickr.com/3448/3176652494_ba19663418_z.jpg"


def test_local_mode_sets_image_path_and_keeps_uids():
    by_url = read_all(CAPTIONS, captions="first")
    local = read_all(CAPTIONS, captions="first", image_root=str(IMAGES))
    assert [r["uid"] for r in local] == [r["uid"] for r in by_url]
    assert [r["url"] for r in local] == [r["url"] for r in by_url]
    ok = [r for r in local if r["status"] == "ok"]
    missing = [r for r in local if r["status"] == "missing_image_file"]
    # tests/data/coco/images holds 24 of the file's 80 images.
    assert len(ok) == 24 and len(missing) == 56
    for record in ok:
        assert record["image_path"].startswith(str(IMAGES)) and open(record["image_path"], "rb").read(2) == b"\xff\xd8"
    assert "is not on disk" in missing[0]["error"]


def test_annotation_whose_image_is_missing_is_a_malformed_row(tmp_path):
    data = json.loads(CAPTIONS.read_text())
    data["annotations"].insert(3, {"image_id": 999999999, "id": 424242, "caption": "A cat on a mat."})
    data["images"].append(
        {
            "id": 7,
            "file_name": "000000000007.jpg",
            "license": 99,
            "coco_url": "http://images.cocodataset.org/train2017/000000000007.jpg",
        }
    )
    path = tmp_path / "captions.json"
    path.write_text(json.dumps(data))
    records = read_all(path)
    assert statuses(records) == {"ok": 400, "malformed_record": 1, "missing_caption": 1}
    bad = records[3]
    assert bad["status"] == "malformed_record" and bad["caption"] == "A cat on a mat."
    assert bad["error"] == "annotations[3] (id 424242): image_id 999999999 is not in the images list"
    lonely = records[-1]
    assert lonely["source_id"] == "7" and lonely["status"] == "missing_caption"
    assert lonely["license"] == "license id 99 (not in the licenses list)"


@pytest.mark.parametrize("suffix, opener", [(".json.gz", gzip.open), (".json.bz2", bz2.open)])
def test_compressed_files_give_the_same_records(tmp_path, suffix, opener):
    path = tmp_path / f"captions{suffix}"
    with open(CAPTIONS, "rb") as src, opener(path, "wb") as dst:
        shutil.copyfileobj(src, dst)
    assert read_all(path) == read_all(CAPTIONS)


def test_truncated_gzip_is_an_unreadable_input_row(tmp_path):
    whole = gzip.compress(CAPTIONS.read_bytes())
    path = tmp_path / "captions.json.gz"
    path.write_bytes(whole[: len(whole) // 2])
    records = read_all(path)
    assert len(records) == 1
    assert records[0]["status"] == "unreadable_input"
    assert "TruncatedInputError" in records[0]["error"] and str(path) in records[0]["error"]


def test_shards_are_one_per_file_in_given_order(tmp_path):
    second = tmp_path / "captions_val.json"
    shutil.copy(CAPTIONS, second)
    source = CocoSource([str(second), str(CAPTIONS)])
    assert [(s.shard_id, s.path) for s in source.shards()] == [(0, str(second)), (1, str(CAPTIONS))]


def test_a_file_that_is_not_json_is_an_unreadable_input_row(tmp_path):
    path = tmp_path / "captions.json"
    path.write_text('{"images": [{"id": 1, "file_name": "a.jpg"}, ')
    records = read_all(path)
    assert [r["status"] for r in records] == ["unreadable_input"]
    assert "IncompleteJSONError" in records[0]["error"]


def test_fsspec_urls_for_the_captions_and_the_image_root():
    import fsspec

    memory = fsspec.filesystem("memory")
    memory.pipe("/coco/annotations/captions_train2017.json", CAPTIONS.read_bytes())
    memory.pipe("/coco/train2017/000000493652.jpg", (IMAGES / "000000493652.jpg").read_bytes())
    try:
        records = read_all("memory://coco/annotations/*.json", captions="first", image_root="memory://coco/train2017")
    finally:
        memory.rm("/coco", recursive=True)
    assert len(records) == 80
    assert [r["source_id"] for r in records if r["status"] == "ok"] == ["493652"]
    assert records[0]["image_path"] == "memory://coco/train2017/000000493652.jpg"
