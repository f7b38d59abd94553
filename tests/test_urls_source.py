"""URL lists in every supported format, sharded without reading the whole file."""

from __future__ import annotations

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from wit_pipeline.sources.urls import InputError, UrlListConfig, UrlListSource

ROWS = [{"URL": f"http://example.com/{i}.jpg", "TEXT": f"caption {i}", "id": str(i)} for i in range(25)]


def records(path, tmp_path, **config):
    source = UrlListSource(str(path), UrlListConfig(**config), staging_dir=str(tmp_path / "staging"))
    planned = source.shards()
    return planned, [r for shard in planned for r in source.read(shard)]


def write(path, fmt, rows, compress=False):
    opener = gzip.open if compress else open
    if fmt == "parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
    elif fmt == "jsonl":
        with opener(path, "wt") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
    else:
        sep = "\t" if fmt == "tsv" else ","
        with opener(path, "wt") as f:
            f.write(sep.join(rows[0]) + "\n")
            f.writelines(sep.join(r.values()) + "\n" for r in rows)
    return path


@pytest.mark.parametrize(
    ("fmt", "compress"),
    [
        ("parquet", False),
        ("csv", False),
        ("csv", True),
        ("tsv", False),
        ("tsv", True),
        ("jsonl", False),
        ("jsonl", True),
    ],
)
def test_every_format_reads_img2dataset_columns_in_shards(tmp_path, fmt, compress):
    path = write(tmp_path / f"list.{fmt}{'.gz' if compress else ''}", fmt, ROWS, compress)
    planned, got = records(path, tmp_path, shard_size=10, keep_cols=("id",))
    assert [s.stop - s.start for s in planned] == [10, 10, 5]
    assert [s.shard_id for s in planned] == [0, 1, 2]
    assert [r["url"] for r in got] == [r["URL"] for r in ROWS]
    assert [r["caption"] for r in got] == [r["TEXT"] for r in ROWS]
    assert [r["id"] for r in got] == [r["id"] for r in ROWS]
    assert all(r["status"] == "ok" and r["source"] == "urls" for r in got)
    assert [r["source_id"] for r in got] == [f"{path.name}:{i}" for i in range(25)]


def test_bad_rows_become_rows_with_a_status(tmp_path):
    rows = [
        {"url": "http://example.com/ok.jpg", "caption": "fine"},
        {"url": None, "caption": "no url"},
        {"url": "   ", "caption": "blank url"},
        {"url": "file:///etc/passwd", "caption": "local file"},
        {"url": "http:///nohost.jpg", "caption": "no host"},
        {"url": "http://example.com/nocaption.jpg", "caption": None},
    ]
    path = tmp_path / "list.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    _, got = records(path, tmp_path)
    assert [r["status"] for r in got] == [
        "ok",
        "invalid_url",
        "invalid_url",
        "invalid_url",
        "invalid_url",
        "missing_caption",
    ]
    assert "scheme 'file'" in got[3]["error"]


def test_malformed_csv_and_jsonl_lines_are_recorded_not_dropped(tmp_path):
    csv_path = tmp_path / "list.csv"
    csv_path.write_text("url,caption\nhttp://a.com/1.jpg,one\nhttp://a.com/2.jpg,two,extra\nhttp://a.com/3.jpg,three\n")
    _, got = records(csv_path, tmp_path)
    assert [r["status"] for r in got].count("ok") == 2
    bad = [r for r in got if r["status"] == "malformed_record"]
    assert len(bad) == 1 and "expected 2 fields, got 3" in bad[0]["error"]

    jsonl_path = tmp_path / "list.jsonl"
    jsonl_path.write_text('{"url": "http://a.com/1.jpg", "caption": "one"}\n{not json\n[1, 2]\n')
    _, got = records(jsonl_path, tmp_path / "j")
    assert [r["status"] for r in got] == ["ok", "malformed_record", "malformed_record"]
    assert "line 2: not JSON" in got[1]["error"] and "line 3: not a JSON object" in got[2]["error"]


def test_clear_errors_for_missing_columns_and_unreadable_files(tmp_path):
    path = tmp_path / "list.parquet"
    pq.write_table(pa.Table.from_pylist([{"link": "http://a.com/x.jpg", "alt": "x"}]), path)
    source = UrlListSource(str(path), UrlListConfig(), staging_dir=str(tmp_path / "s"))
    with pytest.raises(InputError, match="no url column 'url'.*--url-col"):
        list(source.read(source.shards()[0]))
    _, got = records(path, tmp_path, url_col="link", caption_col="alt")
    assert got[0]["url"] == "http://a.com/x.jpg"

    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(InputError, match="broken.parquet: not a readable Parquet file"):
        UrlListSource(str(broken), UrlListConfig(), staging_dir=str(tmp_path / "s")).shards()
    with pytest.raises(InputError, match="input not found"):
        UrlListSource(str(tmp_path / "missing.csv"), UrlListConfig(), staging_dir=str(tmp_path / "s")).shards()


def test_a_folder_of_lists_is_read_whole_in_name_order_and_fills_pair_fields_it_names(tmp_path):
    folder = tmp_path / "lists"
    folder.mkdir()
    for name in ("b", "a"):
        row = {"url": f"http://a.com/{name}.jpg", "caption": f"list {name}", "page_url": f"http://a.com/{name}"}
        pq.write_table(pa.Table.from_pylist([dict(row, lang="xx", note="n")]), folder / f"{name}.parquet")
    (folder / "_SUCCESS").write_text("")
    _, got = records(folder, tmp_path)
    assert [r["caption"] for r in got] == ["list a", "list b"]
    assert [(r["source"], r["page_url"]) for r in got] == [("urls", "http://a.com/a"), ("urls", "http://a.com/b")]
    # A text-stage column is wit's own finding, not a list's: only a stage folder carries it.
    assert all("lang" not in r and "note" not in r for r in got)


def test_a_user_list_keeps_only_what_keep_cols_names(tmp_path):
    # As img2dataset does; a wit stage's folder carries its extra columns on (test_sources_stage_folder.py).
    user_list = tmp_path / "list.parquet"
    pq.write_table(pa.Table.from_pylist([{"url": "http://a.com/0.jpg", "caption": "x", "coco_id": "42"}]), user_list)
    plain = UrlListSource(str(user_list), UrlListConfig(), staging_dir=str(tmp_path / "s"))
    assert plain.extra_columns(plain.shards()[0]) == {}
    keeping = UrlListSource(str(user_list), UrlListConfig(keep_cols=("coco_id",)), staging_dir=str(tmp_path / "s"))
    shard = keeping.shards()[0]
    assert keeping.extra_columns(shard) == {"coco_id": pa.string()}
    assert [r["coco_id"] for r in keeping.read(shard)] == ["42"]


def test_a_text_list_is_read_from_staged_parquet_but_named_by_its_own_file(tmp_path):
    path = write(tmp_path / "list.csv", "csv", ROWS)
    source = UrlListSource(
        str(path),
        UrlListConfig(url_col="URL", caption_col="TEXT", shard_size=10),
        staging_dir=str(tmp_path / "staging"),
    )
    planned = source.shards()
    assert all(shard.path.startswith(str(tmp_path / "staging")) for shard in planned)
    assert [source.origin(shard) for shard in planned] == [str(path)] * 3
    assert [r["source_id"] for r in source.read(planned[2])] == [f"list.csv:{i}" for i in range(20, 25)]
