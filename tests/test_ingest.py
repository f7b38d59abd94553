import json

import pyarrow.parquet as pq
import pytest
from helpers.text import ENTRIES, ListSource, laion_rows

from wit_pipeline import schema, shards
from wit_pipeline.config import IngestConfig, MatchConfig
from wit_pipeline.engines.local import LocalEngine
from wit_pipeline.ingest import stage as ingest
from wit_pipeline.sources.base import make_record
from wit_pipeline.stats import without_provenance
from wit_pipeline.text.matching import naive_match

# Real LAION rows (index in tests/data/text/laion_3000.parquet) and the status each must get,
# checked by hand: the captions are quoted in tests/test_filters.py and tests/test_langid.py.
EXPECTED = {
    0: "ok",  # 'Classical Masterpieces: Xerses & More, Vol. 8 by Various Artists'
    1: "ok",  # 'Tavern Brawl by velinov'
    5: "too_few_words",  # 'Hogsmeade Station'
    63: "lang_not_en",  # French: 'Extend Bar Barres Tendres Beurre D'Arachide et Chocolat ...'
    95: "ok",  # '&quot;Keep Calm&quot; - Blue Canvas' (unescaped)
    146: "lang_not_en",  # German: 'Socionext hat den Display-Controller ...'
    185: "filename_only",  # '7672-eco-cotton-culottes-87-lfs.jpg'
    930: "too_long",  # 1,368 characters of scraped page text
    1622: "url_only",  # a bare upload.wikimedia.org URL
    2212: "url_only",  # 'http://www.mytowntutors.com/2013/01/...'
}


def pairs():
    rows = laion_rows()
    chosen = [(rows[i]["URL"], rows[i]["TEXT"]) for i in EXPECTED]
    # Duplicates: row 0 exactly, and row 1 whose caption only normalises to the same text; a
    # duplicate of a dropped row stays dropped for its own reason.
    chosen += [chosen[0], (rows[1]["URL"], "Tavern  Brawl by\tvelinov"), chosen[2]]
    return chosen


def read_all(folder):
    """Every row written under OUT/ingest, by file name."""
    import glob
    import os

    return {
        os.path.relpath(p, folder): pq.read_table(p).to_pylist()
        for p in sorted(glob.glob(f"{folder}/**/*.parquet", recursive=True))
    }


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    out = tmp_path_factory.mktemp("ingest")
    config = IngestConfig(match=MatchConfig(metadata_path=str(ENTRIES)))
    summary = ingest.run(LocalEngine(), str(out), config, source=ListSource(pairs(), shard_size=4))
    return out, summary


def test_hand_checked_statuses_and_exact_dedup(ingested):
    out, summary = ingested
    files = read_all(out / "ingest")
    status_by_source_id = {row["source_id"]: row["status"] for rows in files.values() for row in rows}
    for position, index in enumerate(EXPECTED):
        assert status_by_source_id[str(position)] == EXPECTED[index], index
    assert status_by_source_id["10"] == "duplicate"  # row 0 again (shard 2)
    assert status_by_source_id["11"] == "duplicate"  # row 1 after normalisation
    assert status_by_source_id["12"] == "too_few_words"  # duplicate of a dropped row
    assert summary["rows_in"] == 13 and summary["kept"] == 3
    assert summary["dropped"] == {
        "duplicate": 2,
        "filename_only": 1,
        "lang_not_en": 2,
        "too_few_words": 2,
        "too_long": 1,
        "url_only": 2,
    }
    assert sorted(files) == ["dropped/duplicate-00002.parquet"] + [
        f"dropped/part-0000{i}.parquet" for i in range(4)
    ] + [f"part-0000{i}.parquet" for i in range(4)]


def test_rows_carry_language_matches_and_original(ingested):
    out, _ = ingested
    kept = [row for i in range(4) for row in pq.read_table(out / f"ingest/part-0000{i}.parquet").to_pylist()]
    entries = json.loads(ENTRIES.read_text())
    for row in kept:
        assert row["lang"] == "en" and row["lang_score"] >= 0.5
        assert row["entries"] == naive_match(row["caption"], entries)
        assert row["uid"] == schema.uid(row["url"], row["caption"])
    keep_calm = next(row for row in kept if row["caption"] == '"Keep Calm" - Blue Canvas')
    assert keep_calm["caption_original"] == "&quot;Keep Calm&quot; - Blue Canvas"
    dropped = pq.read_table(out / "ingest/dropped/part-00000.parquet").to_pylist()
    assert all(row["lang"] for row in dropped)  # language on every row, dropped ones too
    assert all(row["entries"] is None for row in dropped)


def test_source_statuses_and_missing_captions_pass_through(tmp_path):
    class Odd(ListSource):
        def read(self, shard):
            yield make_record("not a url", "A man riding a horse.", "odd", status="invalid_url", error="no scheme")
            yield make_record("http://a/b.jpg", None, "odd")

    summary = ingest.run(LocalEngine(), str(tmp_path), IngestConfig(), source=Odd([("x", "y")]))
    assert summary["dropped"] == {"invalid_url": 1, "missing_caption": 1}
    rows = pq.read_table(tmp_path / "ingest/dropped/part-00000.parquet").to_pylist()
    assert rows[0]["error"] == "no scheme"


def test_rerun_skips_finished_shards_and_redoes_unfinished(tmp_path):
    source, config = ListSource(pairs(), shard_size=4), IngestConfig()
    first = ingest.run(LocalEngine(), str(tmp_path), config, source=source)
    before = read_all(tmp_path / "ingest")
    (tmp_path / "ingest" / "00001.done").unlink()
    (tmp_path / "ingest" / "part-00001.parquet").unlink()
    again = ingest.run(LocalEngine(), str(tmp_path), config, source=source)
    assert without_provenance(again) == without_provenance(first)
    assert read_all(tmp_path / "ingest") == before


def test_two_processes_write_what_one_does(tmp_path):
    rows = laion_rows(300)
    source = ListSource([(r["URL"], r["TEXT"]) for r in rows] * 2, shard_size=150)
    one = ingest.run(LocalEngine(1), str(tmp_path / "one"), IngestConfig(), source=source)
    two = ingest.run(LocalEngine(2), str(tmp_path / "two"), IngestConfig(), source=source)
    assert without_provenance(one) == without_provenance(two)
    assert one["dropped"]["duplicate"] == one["kept"]  # the second copy of every kept row
    assert read_all(tmp_path / "one/ingest") == read_all(tmp_path / "two/ingest")


def test_completion_markers_and_stats_per_shard(ingested):
    out, _ = ingested
    folder = str(out / "ingest")
    assert shards.finished_shards(folder) == [0, 1, 2, 3]
    stats = json.loads((out / "ingest/00000_stats.json").read_text())
    assert stats["rows"] == 4 and sum(stats["statuses"].values()) == 4


def test_declared_extra_columns_are_kept_and_bookkeeping_is_not(tmp_path):
    class WithExtras(ListSource):
        def read(self, shard):
            for record in super().read(shard):
                yield dict(record, row_index=7, photographer="Ansel")

        def extra_columns(self, shard):
            return {"photographer": None}

    rows = laion_rows(3)
    ingest.run(LocalEngine(), str(tmp_path), IngestConfig(), source=WithExtras([(r["URL"], r["TEXT"]) for r in rows]))
    names = pq.read_table(tmp_path / "ingest/part-00000.parquet").schema.names
    assert names == schema.TEXT_SCHEMA.names + ["photographer"]
    assert pq.read_table(tmp_path / "ingest/part-00000.parquet").column("photographer").to_pylist()[0] == "Ansel"


def test_lowercase_language_id_keeps_all_caps_english(tmp_path):
    from wit_pipeline.config import LangIdConfig
    from wit_pipeline.text.processor import CaptionProcessor

    # Real COCO captions (tests/data/coco) that lid.176 reads as Japanese and Portuguese.
    caps = ["THE TOP VIEW OF A TOOTHBRUSH HOLDER WITH FOUR TOOTHBRUSHES IN IT.", "A PERSON IS SKIING ON THE SLOPE"]
    plain, lower = (
        CaptionProcessor(IngestConfig()).load(),
        CaptionProcessor(IngestConfig(lang=LangIdConfig(lowercase=True))).load(),
    )
    for caption in caps:
        record = make_record("http://images.cocodataset.org/x.jpg", caption, "coco")
        assert plain.process(dict(record))["status"] == "lang_not_en"
        row = lower.process(dict(record))
        assert (row["status"], row["lang"], row["caption"]) == ("ok", "en", caption)  # caption unchanged
