"""YFCC100M metadata source on lines written in the official field formats (tests/data/yfcc)."""

from __future__ import annotations

import bz2
import gzip

import pytest
from helpers.paths import TEST_DATA

from wit_pipeline.filters.natural_title import natural_title
from wit_pipeline.sources.yfcc import YfccConfig, YfccSource, decode_text

SAMPLE = TEST_DATA / "yfcc" / "yfcc100m_dataset_sample.tsv"
WITH_HASH = TEST_DATA / "yfcc" / "yfcc100m_dataset_with_hash.tsv"
BAD = TEST_DATA / "yfcc" / "yfcc100m_dataset_bad.tsv"


def read_all(path, caption="both") -> list[dict]:
    source = YfccSource(str(path), YfccConfig(caption=caption))
    return [record for shard in source.shards() for record in source.read(shard)]


def test_sample_records_statuses_and_provenance():
    records = read_all(SAMPLE)
    assert [r["status"] for r in records] == ["ok", "ok", "not_an_image", "ok", "ok", "ok", "missing_caption", "ok"]
    cherry = records[1]
    assert cherry["source"] == "yfcc" and cherry["source_id"] == "2347235716"
    assert cherry["url"] == "http://farm3.staticflickr.com/2264/2347235716_ab12cd34ef.jpg"
    assert cherry["page_url"] == "http://www.flickr.com/photos/12370389@N05/2347235716/"
    assert cherry["license"] == "Attribution License (http://creativecommons.org/licenses/by/2.0/)"
    assert records[2]["error"].endswith("line 3: photo 4109812424 is a video")
    assert records[6]["error"].endswith("line 7: the title or description is empty")


def test_caption_modes_decode_plus_and_percent_and_strip_html():
    title = [r["caption"] for r in read_all(SAMPLE, "title")]
    description = [r["caption"] for r in read_all(SAMPLE, "description")]
    both = [r["caption"] for r in read_all(SAMPLE, "both")]
    assert title[:4] == ["IMG_1234", "Cherry blossoms in Ueno Park", "My dog playing in the snow", "DSC01234.JPG"]
    # <b>, &amp; and the <a href> link are gone; the link's text stays.
    assert description[1] == "Taken on a sunny afternoon & very crowded. More photos"
    assert description[0] is None
    assert both[1] == "Cherry blossoms in Ueno Park. Taken on a sunny afternoon & very crowded. More photos"
    # A camera file name as title is left out when the description is natural language.
    assert both[3] == "View from the top of the Eiffel Tower, looking towards La Défense."
    assert both[7] == "Grandpa fixing the old tractor in the barn."


def test_decode_text_uses_plus_as_space():
    assert decode_text("Caf%C3%A9+%2B+bar%0Anight") == "Café + bar night"


def test_line_number_and_hash_layout_gives_the_same_records():
    plain = read_all(SAMPLE)[1:4]
    hashed = read_all(WITH_HASH)
    strip = lambda r: {k: v for k, v in r.items() if k != "error"}  # noqa: E731  (errors name the file)
    assert [strip(r) for r in hashed] == [strip(r) for r in plain]


def test_bad_lines_become_rows_that_say_what_was_wrong():
    records = read_all(BAD)
    assert [r["status"] for r in records] == [
        "ok",
        "malformed_record",
        "malformed_record",
        "invalid_url",
        "malformed_record",
        "ok",
    ]
    errors = [r["error"] or "" for r in records]
    assert errors[1].endswith("line 2: expected 23 or 25 tab-separated fields, found 20")
    assert errors[2].endswith("line 3: photo/video marker is '2', not 0 or 1")
    assert errors[3].endswith("line 4: download URL 'ftp://example.org/x.jpg' is not http(s)")
    assert errors[4].endswith("line 5: expected 23 or 25 tab-separated fields, found 1")


@pytest.mark.parametrize("suffix, compress", [(".gz", gzip.compress), (".bz2", bz2.compress)])
def test_compressed_input_gives_the_same_records(tmp_path, suffix, compress):
    path = tmp_path / f"yfcc100m_dataset{suffix}"
    path.write_bytes(compress(SAMPLE.read_bytes()))
    assert [r["uid"] for r in read_all(path)] == [r["uid"] for r in read_all(SAMPLE)]


def test_truncated_gzip_keeps_the_lines_before_the_cut(tmp_path):
    data = SAMPLE.read_bytes() * 200  # 1600 lines, so the cut falls well inside the stream
    whole = gzip.compress(data)
    path = tmp_path / "yfcc100m_dataset.gz"
    path.write_bytes(whole[: len(whole) // 2])
    records = read_all(path)
    assert records[-1]["status"] == "unreadable_input"
    assert "TruncatedInputError" in records[-1]["error"]
    assert 100 < len(records) - 1 < 1600
    assert all(r["status"] != "malformed_record" for r in records[:-2])


def test_natural_title_filter_drops_camera_titles():
    reasons = [natural_title(r) for r in read_all(SAMPLE, "title")]
    assert reasons == [
        "not_natural_language",
        None,
        None,
        "not_natural_language",
        "not_natural_language",
        None,
        "not_natural_language",
        "not_natural_language",
    ]
