"""A wit stage's output folder read by the next stage (sources/stage_folder.py)."""

from __future__ import annotations

import pickle

import pyarrow as pa
import pyarrow.parquet as pq

from wit_pipeline import schema
from wit_pipeline.sources.stage_folder import StageFolderSource, is_stage_folder
from wit_pipeline.sources.urls import UrlListConfig

PART_SCHEMA = schema.with_extra_columns(schema.TEXT_SCHEMA, {"coco_id": pa.string()})


def kept_row(i: int, url: str | None = None) -> dict:
    url = url or f"http://a.com/{i}.jpg"
    caption = f"a cat number {i} on a mat"
    return dict(
        schema.empty_row(PART_SCHEMA),
        uid=schema.uid(url, caption),
        url=url,
        caption=caption,
        source="coco",
        source_id=str(100 + i),
        license="CC BY 2.0",
        status="ok",
        lang="en",
        lang_score=0.75,
        entries=[i, 7],
        coco_id=f"c{i}",
    )


def balance_folder(tmp_path, rows: list[dict]):
    """A folder shaped as balance writes it: kept parts, dropped parts, entry counts, run.json."""
    folder = tmp_path / "balance"
    (folder / "dropped").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows[3:], schema=PART_SCHEMA), folder / "part-00001.parquet")
    pq.write_table(pa.Table.from_pylist(rows[:3], schema=PART_SCHEMA), folder / "part-00000.parquet")
    dropped = dict(kept_row(99), status="not_sampled")
    pq.write_table(pa.Table.from_pylist([dropped], schema=PART_SCHEMA), folder / "dropped/part-00000.parquet")
    pq.write_table(pa.Table.from_pylist([{"entry": 1, "count": 2}]), folder / "entry_counts.parquet")
    (folder / "run.json").write_text('{"stage": "balance"}')
    return folder


def test_the_kept_parts_are_read_in_name_order_with_every_column_they_carry(tmp_path):
    rows = [kept_row(i) for i in range(5)]
    folder = balance_folder(tmp_path, rows)
    assert is_stage_folder(str(folder)) and not is_stage_folder(str(tmp_path))
    source = StageFolderSource(str(folder), UrlListConfig(shard_size=2))
    planned = source.shards()
    assert [(s.shard_id, s.path.rsplit("/", 1)[1], s.start, s.stop) for s in planned] == [
        (0, "part-00000.parquet", 0, 2),
        (1, "part-00000.parquet", 2, 3),
        (2, "part-00001.parquet", 0, 2),
    ]
    got = [record for shard in planned for record in source.read(shard)]
    # Every column comes back as the stage wrote it: the dropped row and entry_counts are not read.
    assert [{name: record[name] for name in PART_SCHEMA.names} for record in got] == rows
    assert all(source.extra_columns(shard) == {"coco_id": pa.string()} for shard in planned)
    clone = pickle.loads(pickle.dumps(source))
    assert clone.shards() == planned


def test_a_kept_url_that_cannot_be_fetched_is_checked_again(tmp_path):
    folder = balance_folder(tmp_path, [kept_row(0), kept_row(1, url="ftp://a.com/1.jpg"), kept_row(2)])
    source = StageFolderSource(str(folder))
    got = [record for shard in source.shards() for record in source.read(shard)]
    assert [(r["status"], r["error"]) for r in got] == [
        ("ok", None),
        ("invalid_url", "url scheme 'ftp' is not http or https"),
        ("ok", None),
    ]


def test_a_stage_that_kept_nothing_gives_no_shard(tmp_path):
    folder = tmp_path / "ingest"
    folder.mkdir()
    (folder / "run.json").write_text('{"stage": "ingest"}')
    assert StageFolderSource(str(folder)).shards() == []
