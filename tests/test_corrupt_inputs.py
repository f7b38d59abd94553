"""Corrupt and surprising inputs: a status per row, or one line naming the file, shard or flag
(exit 2); never a traceback, and never a finished-looking result that is wrong."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers.cli import one_line_error, url_list, wit
from helpers.download import A, download_list, read_rows
from helpers.paths import COCO_IMAGES, TEST_DATA
from helpers.rawshards import RawSample, write_raw_shard

from wit_pipeline import io
from wit_pipeline.download.image import ImageError, check_image
from wit_pipeline.testing.devserver import bomb_png

JPEGS = sorted(COCO_IMAGES.glob("*.jpg"))


def raw_run(tmp_path, groups: list[list]) -> str:
    """OUT with OUT/raw holding one finished shard per group of RawSamples."""
    for shard_id, samples in enumerate(groups):
        write_raw_shard(str(tmp_path / "raw"), shard_id, samples)
    return str(tmp_path)


def sample(index: int, caption: str | None = None) -> RawSample:
    path = JPEGS[index]
    return RawSample(f"http://127.0.0.1/{path.name}", caption or path.stem, path.read_bytes())


# --- 6: reshard verifies every copied image ---------------------------------------------------------


def test_reshard_refuses_a_stored_image_that_no_longer_matches_its_sha256(tmp_path):
    out = raw_run(tmp_path, [[sample(0), sample(1)], [sample(2)]])
    assert wit("dedup", out).returncode == 0
    tar = tmp_path / "raw" / "00000.tar"
    data = bytearray(tar.read_bytes())
    image = JPEGS[1].read_bytes()
    at = bytes(data).index(image[200:232])  # flip bytes inside the second image's data, not its header
    data[at : at + 8] = bytes(b ^ 0xFF for b in data[at : at + 8])
    tar.write_bytes(bytes(data))
    result = wit("reshard", out, "--processes", "1")
    one_line_error(result, "raw shard 00000", "do not match their sha256", sample(1).uid)
    assert not (tmp_path / "final" / "manifest.json").exists()


# --- 8: a uid appears once in the keep list --------------------------------------------------------


def test_the_same_pair_in_two_raw_shards_is_kept_once_and_reshard_succeeds(tmp_path):
    same_pair = RawSample("http://127.0.0.1/same.jpg", "one caption", JPEGS[3].read_bytes())
    other_bytes = RawSample("http://127.0.0.1/same.jpg", "one caption", JPEGS[4].read_bytes())
    out = raw_run(tmp_path, [[same_pair, sample(0)], [other_bytes, sample(1)]])
    assert wit("dedup", out).returncode == 0
    keep = pq.read_table(tmp_path / "dedup" / "keep.parquet").to_pylist()
    uids = [row["uid"] for row in keep]
    assert len(uids) == len(set(uids)) == 3
    assert {"uid": same_pair.uid, "shard": 0} in keep  # the copy in the lowest shard stays
    assert json.loads((tmp_path / "dedup" / "stats.json").read_text())["repeated_uids"] == 1
    assert wit("reshard", out, "--processes", "1").returncode == 0


# --- 10, 12: readers give rows with statuses, never a traceback --------------------------------------


def test_one_non_utf8_byte_in_a_csv_costs_one_row(tmp_path, image_server):
    csv = tmp_path / "list.csv"
    csv.write_bytes(
        f"url,caption\n{image_server.url}/img/{A},a dog on the grass\n".encode()
        + f"{image_server.url}/img/{A},caf".encode()
        + b"\xe9 on a street\n"
        + f"{image_server.url}/img/{A},a third good row\n".encode()
    )
    download_list(csv, tmp_path / "out")
    rows = list(io.read_parquet(str(tmp_path / "out" / "raw" / "00000.parquet")).to_pylist())
    assert [r["status"] for r in rows] == ["ok", "malformed_record", "ok"]
    assert "not UTF-8" in rows[1]["error"] and "caption" in rows[1]["error"]


def test_integer_and_binary_url_and_caption_columns_become_statuses(tmp_path, image_server):
    table = pa.table({"url": pa.array([7, None], pa.int64()), "caption": pa.array([b"a b c", b"\xff\xfe"])})
    pq.write_table(table, tmp_path / "ints.parquet")
    download_list(tmp_path / "ints.parquet", tmp_path / "out")
    statuses = [r["status"] for r in io.read_parquet(str(tmp_path / "out" / "raw" / "00000.parquet")).to_pylist()]
    assert statuses == ["malformed_record", "malformed_record"]
    table = pa.table(
        {"url": pa.array([f"{image_server.url}/img/{A}".encode()]), "caption": pa.array([b"a good photo"])}
    )
    pq.write_table(table, tmp_path / "bytes.parquet")
    download_list(tmp_path / "bytes.parquet", tmp_path / "out2")
    assert read_rows(tmp_path / "out2")["a good photo"]["status"] == "ok"


@pytest.mark.parametrize("name, content", [("zero.parquet", None), ("empty.jsonl", b""), ("blank.jsonl", b"\n\n")])
def test_an_empty_list_is_one_line(tmp_path, name, content):
    path = tmp_path / name
    if content is None:
        pq.write_table(pa.table({"url": pa.array([], pa.string()), "caption": pa.array([], pa.string())}), path)
    else:
        path.write_bytes(content)
    one_line_error(wit("download", "--input", path, "--output", tmp_path / "out"), name, "no rows to download")
    assert not (tmp_path / "out" / "raw" / "run.json").exists()  # a corrected rerun is not refused


def test_keep_cols_naming_a_wit_column_is_one_line(tmp_path):
    path = url_list(tmp_path / "list.parquet", ["http://127.0.0.1/a.jpg"])
    table = pq.read_table(path).append_column("uid", pa.array(["mine"]))
    pq.write_table(table, path)
    one_line_error(
        wit("download", "--input", path, "--output", tmp_path / "out", "--keep-cols", "uid"), "--keep-cols uid"
    )


def test_a_truncated_raw_tar_or_sidecar_names_the_file(tmp_path):
    out = raw_run(tmp_path, [[sample(0), sample(1)], [sample(2)]])
    sidecar = tmp_path / "raw" / "00001.parquet"
    good = sidecar.read_bytes()
    sidecar.write_bytes(good[: len(good) // 2])
    one_line_error(wit("dedup", out), "00001.parquet", "not a readable Parquet file")
    sidecar.write_bytes(good)
    assert wit("dedup", out).returncode == 0
    tar = tmp_path / "raw" / "00000.tar"
    tar.write_bytes(tar.read_bytes()[:3000])
    one_line_error(wit("reshard", out, "--processes", "1"), "00000.tar", "truncated")


def test_decompression_bomb_message_quotes_max_pixels():
    with pytest.raises(ImageError) as caught:
        check_image(bomb_png(), max_pixels=1_000_000)
    assert caught.value.status == "decompression_bomb"
    assert str(caught.value) == "400000000 pixels exceeds --max-pixels 1000000"


# --- 13, 14: the wrong --source, and a missing --metadata --------------------------------------------


@pytest.mark.parametrize("source, path", [("yfcc", TEST_DATA / "coco" / "captions_train2017.json"), ("warc", None)])
def test_a_file_given_to_the_wrong_source_exits_2_naming_it(tmp_path, source, path):
    if path is None:
        path = url_list(tmp_path / "list.parquet", ["http://127.0.0.1/a.jpg"])
    result = wit("ingest", "--source", source, "--input", path, "--output", tmp_path / "out", "--processes", "1")
    one_line_error(result, str(path), f"--source {source}")
    assert "\\x" not in result.stderr and "PAR1" not in result.stderr  # no binary garbage


@pytest.mark.parametrize("mistake", [("--url-col", "URLX"), ("--source", "yfcc")], ids=["wrong-column", "wrong-source"])
def test_a_corrected_rerun_after_a_refused_ingest_is_not_refused(tmp_path, mistake):
    # The refused run ingested nothing usable: its run.json must not bind the folder to the mistake.
    path = url_list(tmp_path / "list.parquet", ["http://127.0.0.1/a.jpg"])
    flags = {"--source": "urls", "--input": str(path), "--output": str(tmp_path / "out"), "--processes": "1"}
    wrong = wit(
        "ingest",
        *[item for pair in (flags | dict([mistake])).items() for item in pair],
        *([] if mistake[0] == "--source" else list(mistake)),
    )
    assert wrong.returncode == 2, wrong.stderr
    right = wit("ingest", *[item for pair in flags.items() for item in pair])
    assert right.returncode == 0, right.stderr
    assert "ingest: 1 rows in" in right.stdout


def test_ingest_without_metadata_says_so_and_balance_keeps_every_pair(tmp_path):
    captions = ["a brown dog runs across the green park", "two people ride bicycles down a city street"]
    rows = [{"url": f"http://127.0.0.1/{i}.jpg", "caption": c} for i, c in enumerate(captions)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "list.parquet")
    ingest = wit(
        "ingest", "--source", "urls", "--input", tmp_path / "list.parquet", "--output", tmp_path, "--processes", "1"
    )
    assert ingest.returncode == 0 and "no --metadata" in ingest.stderr and "keeps every pair" in ingest.stderr
    balance = wit("balance", tmp_path, "--processes", "1")
    assert balance.returncode == 0 and "balance: 2 rows in, 2 kept" in balance.stdout
    assert "--metadata" in balance.stderr


def test_balance_that_matches_nothing_points_to_metadata_and_keep_unmatched(tmp_path):
    rows = [{"url": "http://127.0.0.1/0.jpg", "caption": "a brown dog runs across the green park"}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "list.parquet")
    (tmp_path / "entries.json").write_text('["zebra"]')
    ingest = wit(
        "ingest",
        "--source",
        "urls",
        "--input",
        tmp_path / "list.parquet",
        "--output",
        tmp_path,
        "--metadata",
        tmp_path / "entries.json",
        "--processes",
        "1",
    )
    assert ingest.returncode == 0, ingest.stderr
    balance = wit("balance", tmp_path, "--processes", "1")
    assert balance.returncode == 0 and "balance: 1 rows in, 0 kept" in balance.stdout
    assert "--metadata" in balance.stderr and "--keep-unmatched" in balance.stderr


# --- 5, 12: train refuses to overwrite or to fake a resume; skips a shard being written -------------


@pytest.fixture(scope="module")
def final_shards(tmp_path_factory):
    from helpers.training import coco_pairs

    from wit_pipeline.shards import write_pair_shards

    folder = tmp_path_factory.mktemp("final")
    write_pair_shards(coco_pairs()[:16], str(folder), samples_per_shard=8)
    return folder


TRAIN = ["--preset", "tiny", "--batch-size", "4", "--workers", "0", "--lr", "1e-3"]


@pytest.mark.slow
def test_train_refuses_an_existing_run_without_resume_or_overwrite(final_shards, tmp_path):
    run = tmp_path / "run"
    one_line_error(
        wit("train", "--shards", final_shards, "--output", run, "--steps", "2", "--resume", *TRAIN),
        "--resume",
        "no checkpoint.pt",
    )
    assert wit("train", "--shards", final_shards, "--output", run, "--steps", "2", *TRAIN).returncode == 0
    checkpoint, log = (run / "checkpoint.pt").read_bytes(), (run / "log.jsonl").read_text()
    one_line_error(
        wit("train", "--shards", final_shards, "--output", run, "--steps", "2", *TRAIN),
        str(run),
        "--resume",
        "--overwrite",
    )
    assert (run / "checkpoint.pt").read_bytes() == checkpoint and (run / "log.jsonl").read_text() == log
    assert (
        wit("train", "--shards", final_shards, "--output", run, "--steps", "2", "--overwrite", *TRAIN).returncode == 0
    )
    assert (run / "log.jsonl").read_text().count('"step": 2') == log.count('"step": 2')  # replaced, not appended


@pytest.mark.slow
def test_train_on_a_folder_with_a_half_written_tar_skips_it(final_shards, tmp_path):
    folder = tmp_path / "shards"
    folder.mkdir()
    for path in final_shards.glob("*.tar"):
        (folder / path.name).write_bytes(path.read_bytes())
    whole = (folder / "00001.tar").read_bytes()
    (folder / "00002.tar").write_bytes(whole[:1100])  # a reshard still writing its next shard
    result = wit("train", "--shards", folder, "--output", tmp_path / "run", "--epochs", "1", *TRAIN)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1])["steps"] >= 4
