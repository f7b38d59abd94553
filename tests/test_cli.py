"""`wit` as a user meets it: help for every flag, one-line errors with exit code 2."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers.cli import wit, wit_download


def test_help_describes_every_download_flag():
    result = wit("download", "--help")
    assert result.returncode == 0
    for flag in [
        "--input",
        "--output",
        "--url-col",
        "--caption-col",
        "--keep-cols",
        "--shard-size",
        "--processes",
        "--threads",
        "--timeout",
        "--retries",
        "--image-size",
        "--resize-mode",
        "--min-image-size",
        "--max-aspect-ratio",
        "--allow-private",
        "--engine",
        "--resizer",
    ]:
        assert flag in result.stdout
    assert wit("--help").returncode == 0


def one_line_error(result, *fragments):
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_bad_values_missing_inputs_and_unreadable_files_fail_in_one_line(tmp_path):
    one_line_error(
        wit("download", "--input", str(tmp_path / "nope.parquet"), "--output", str(tmp_path)),
        "input not found",
        "nope.parquet",
    )
    one_line_error(wit("download", "--input", "x", "--output", "y", "--threads", "0"), "--threads", "positive")
    one_line_error(wit("download", "--input", "x", "--output", "y", "--timeout", "soon"), "--timeout")
    one_line_error(wit("download", "--input", "x", "--output", "y", "--resize-mode", "stretch"), "--resize-mode")
    one_line_error(wit("download", "--input", "x", "--output", "y", "--resizer", "pillow"), "--resizer")
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"not parquet at all")
    one_line_error(
        wit("download", "--input", str(garbage), "--output", str(tmp_path / "o")),
        "garbage.parquet",
        "not a readable Parquet file",
    )
    one_line_error(
        wit("download", "--input", str(garbage), "--output", str(tmp_path / "o"), "--allow-network", "localhost"),
        "allow_networks",
        "localhost",
    )
    one_line_error(wit("nonsense"), "invalid choice")


@pytest.mark.slow
def test_download_command_end_to_end_prints_totals(tmp_path, image_server):
    names = sorted(image_server.images)[:3]
    rows = [
        {"URL": f"{image_server.url}/img/{name}", "TEXT": f"photo {name}", "pid": i} for i, name in enumerate(names)
    ]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "urls.parquet")
    result = wit_download(tmp_path / "urls.parquet", tmp_path / "out", "--keep-cols", "pid", "--image-size", 48)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("download: 3 rows in, 3 kept")
    totals = json.loads((tmp_path / "out" / "raw" / "stats.json").read_text())
    assert totals["statuses"] == {"ok": 3} and totals["rows"] == 3
    table = pq.read_table(tmp_path / "out" / "raw" / "00000.parquet")
    assert table.column("pid").to_pylist() == [0, 1, 2]
    assert set(table.column("width").to_pylist()) == {48}


@pytest.mark.slow
def test_resizer_img2dataset_stores_img2datasets_exact_bytes(tmp_path, image_server):
    import io

    from img2dataset.resizer import Resizer

    from wit_pipeline import shards

    names = sorted(image_server.images)[:3]
    rows = [{"url": f"{image_server.url}/img/{name}", "caption": name} for name in names]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "urls.parquet")
    result = wit_download(
        tmp_path / "urls.parquet",
        tmp_path / "out",
        "--image-size",
        96,
        "--resize-mode",
        "center_crop",
        "--resizer",
        "img2dataset",
    )
    assert result.returncode == 0, result.stderr
    stored = {
        sample["txt"].decode(): sample["jpg"]
        for _, sample in shards.iter_tar(str(tmp_path / "out" / "raw" / "00000.tar"))
    }
    resizer = Resizer(image_size=96, resize_mode="center_crop", resize_only_if_bigger=False)
    assert stored == {name: resizer(io.BytesIO(image_server.images[name]))[0] for name in names}


@pytest.mark.slow
def test_resuming_with_other_settings_is_refused_not_mixed(tmp_path, image_server):
    names = sorted(image_server.images)[:4]
    rows = [{"url": f"{image_server.url}/img/{name}", "caption": f"a photo of {name}"} for name in names]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "urls.parquet")
    base = [tmp_path / "urls.parquet", tmp_path / "out", "--image-size", 32]
    assert wit_download(*base, "--shard-size", 2).returncode == 0
    # Another shard plan would duplicate rows across shards of two plans: refused, naming the setting.
    one_line_error(wit_download(*base, "--shard-size", 3), "url_list.shard_size", "new output folder")
    # Execution settings may change on a resume.
    resumed = wit_download(*base, "--shard-size", 2, "--threads", 3)
    assert resumed.returncode == 0 and "(2 already finished)" in resumed.stdout

    ingest = [
        "ingest",
        "--source",
        "urls",
        "--input",
        str(tmp_path / "urls.parquet"),
        "--output",
        str(tmp_path / "out"),
    ]
    assert wit(*ingest).returncode == 0
    one_line_error(wit(*ingest, "--min-words", "12"), "ingest.filters.min_words")


def test_missing_columns_are_named_before_any_work(tmp_path):
    pq.write_table(pa.Table.from_pylist([{"url": "http://a.com/x.jpg", "caption": "x"}]), tmp_path / "urls.parquet")
    for command in ("download", "ingest"):
        extra = ["--source", "urls"] if command == "ingest" else []
        one_line_error(
            wit(
                command,
                *extra,
                "--input",
                str(tmp_path / "urls.parquet"),
                "--output",
                str(tmp_path / command),
                "--caption-col",
                "alt",
            ),
            "no caption column 'alt'",
        )
