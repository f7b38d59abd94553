"""`wit inspect` on a real run's tar shard, sidecar, stage folder and run folder; bad paths in one line."""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
from helpers.report_runs import MARKUP_CAPTION

from wit_pipeline import cli, shards


@pytest.fixture
def run(small_run):
    return small_run


def inspect_json(capsys, *args) -> dict:
    capsys.readouterr()
    assert cli.main(["inspect", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_tar_shard(run, capsys):
    found = inspect_json(capsys, str(run / "raw/00000.tar"), "--n", "3")
    sidecar = pq.read_table(run / "raw/00000.parquet").to_pylist()
    ok = [row for row in sidecar if row["status"] == "ok"]
    assert found["kind"] == "tar" and found["rows"] == len(ok) and found["statuses"] == {"ok": len(ok)}
    keys = [key for key, _ in shards.iter_tar(str(run / "raw/00000.tar"))][:3]
    assert [s["uid"] for s in found["samples"]] == keys
    captions = {row["uid"]: row["caption"] for row in ok}
    assert all(s["caption"] == captions[s["uid"]] for s in found["samples"])
    assert {f["name"] for f in found["schema"]} == {".jpg", ".json", ".txt"}


def test_sidecar_with_status_filter(run, capsys):
    failed_shard = next(
        p
        for p in sorted(run.glob("raw/*.parquet"))
        if "http_404" in pq.read_table(p, columns=["status"])["status"].to_pylist()
    )
    found = inspect_json(capsys, str(failed_shard), "--status", "http_404")
    assert found["kind"] == "parquet" and found["statuses"]["http_404"] == 1
    assert [s["url"].split("/", 3)[-1] for s in found["samples"]] == ["status/404?from=small_run"]
    assert "status" in {f["name"] for f in found["schema"]}


def test_stage_folder_counts_kept_and_dropped_rows(run, capsys):
    found = inspect_json(capsys, str(run / "ingest"), "--status", "lang_not_en")
    stats = json.loads((run / "ingest/stats.json").read_text())
    assert found["kind"] == "stage" and found["rows"] == stats["rows_in"]
    assert found["statuses"] == {"ok": stats["kept"], **stats["dropped"]}
    assert [s["caption"] for s in found["samples"]] == ["Un chat noir dort sur le canapé rouge du salon"]
    grep = inspect_json(capsys, str(run / "ingest"), "--grep", "STRIPED")
    assert [s["caption"] for s in grep["samples"]] == [MARKUP_CAPTION]


def test_dedup_folder_counts_each_row_once(run, capsys):
    found = inspect_json(capsys, str(run / "dedup"))
    stats = json.loads((run / "dedup/stats.json").read_text())
    assert found["statuses"] == {"ok": stats["kept"], **stats["dropped"]}
    assert found["rows"] == stats["rows_in"]


def test_run_folder_shows_the_funnel_and_final_samples(run, capsys):
    found = inspect_json(capsys, str(run), "--n", "3")
    manifest = json.loads((run / "final/manifest.json").read_text())
    assert found["kind"] == "run" and found["rows"] == manifest["samples"] and len(found["samples"]) == 3
    assert found["funnel"]["reshard"]["kept"] == manifest["samples"]
    assert found["funnel"]["download"]["dropped"] == {"http_404": 1}


def test_table_output_shows_web_text_literally(run, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # one table row per line, so the caption is not folded
    capsys.readouterr()
    assert cli.main(["inspect", str(run / "ingest"), "--grep", "striped"]) == 0
    printed = capsys.readouterr().out
    assert "rows by status" in printed and "lang_not_en" in printed
    # Rich markup in a caption is text, not styling.
    assert MARKUP_CAPTION in printed


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("missing", None, "does not exist"),
        ("notes.txt", b"hello", "is not a tar shard, a Parquet file or a folder"),
        ("garbage.parquet", b"not parquet at all", "is not a readable Parquet file"),
        ("garbage.tar", b"not a tar at all" * 100, "is not a readable tar shard"),
        ("empty", "folder", "holds no Parquet files and no stage folders"),
    ],
)
def test_bad_paths_fail_in_one_line(tmp_path, name, content, message):
    path = tmp_path / name
    if content == "folder":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    result = subprocess.run(
        [sys.executable, "-m", "wit_pipeline", "inspect", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("wit inspect: error:")
