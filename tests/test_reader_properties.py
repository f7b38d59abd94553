"""Property tests of every input reader (hypothesis): random bytes, random column names and types,
truncated files. The result is records with registered statuses, or one InputError line; never
another exception, and for a URL list never a lost row. Example counts stay small: the suite is
run on two cores."""

from __future__ import annotations

import csv
import gzip
import io
import json
import shutil
import tempfile

import pyarrow as pa
import pyarrow.parquet as pq
from helpers.paths import TEST_DATA
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wit_pipeline import schema
from wit_pipeline.io import InputError
from wit_pipeline.sources import source_class

SETTINGS = settings(
    max_examples=int(__import__("os").environ.get("WIT_HYPOTHESIS_EXAMPLES", 25)),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
maybe_bad_bytes = st.one_of(text.map(str.encode), st.binary(max_size=40))


def read_records(kind: str, path: str) -> list[dict] | str:
    """Every record the source yields for `path`, or the InputError's line. Anything else raises."""
    folder = tempfile.mkdtemp()
    try:
        cls = source_class(kind)
        source = cls([path], staging_dir=folder) if kind == "urls" else cls([path])
        records = [record for shard in source.shards() for record in source.read(shard)]
    except InputError as err:
        assert "\n" not in str(err)
        return str(err)
    finally:
        shutil.rmtree(folder)
    for record in records:
        schema.check_status(record["status"])
        assert isinstance(record["uid"], str) and len(record["uid"]) == 32
        assert record["status"] != schema.OK or isinstance(record["url"], str)
    # What a stage writes next: every record fits wit's schema (an int URL once failed here).
    pa.Table.from_pylist(
        [{f.name: r.get(f.name) for f in schema.RAW_SCHEMA} for r in records], schema=schema.RAW_SCHEMA
    )
    return records


def write(tmp_path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


# --- URL lists: no row is ever lost --------------------------------------------------------------

arrow_values = st.sampled_from(
    [
        pa.array([1, None, 3], pa.int64()),
        pa.array([b"a", b"\xff", None]),
        pa.array([1.5, None, 2.0]),
        pa.array([True, False, None]),
        pa.array([[1], [], None], pa.list_(pa.int64())),
        pa.array([{"x": 1}, None, {"x": 2}], pa.struct([("x", pa.int64())])),
        pa.array(["http://127.0.0.1/a.jpg", "", None]),
        pa.array(["a b c", "\x00", None]),
        pa.array([None, None, None], pa.null()),
    ]
)
column_names = st.sampled_from(["url", "caption", "URL", "TEXT", "image_path", "license", "status", "x", "uid", ""])


@SETTINGS
@given(columns=st.dictionaries(column_names, arrow_values, max_size=5))
def test_parquet_with_random_column_names_and_types(tmp_path, columns):
    path = str(tmp_path / "list.parquet")
    pq.write_table(pa.table(columns) if columns else pa.table({"a": pa.array([1, 2, 3])}), path)
    result = read_records("urls", path)
    if {"url", "caption"} <= set(columns) or {"URL", "TEXT"} <= set(columns):
        assert isinstance(result, list) and len(result) == 3  # every row is a record with a status


@SETTINGS
@given(
    rows=st.lists(st.tuples(maybe_bad_bytes, maybe_bad_bytes), max_size=8),
    delimiter=st.sampled_from([",", "\t"]),
    compress=st.booleans(),
)
def test_csv_and_tsv_with_random_bytes_in_the_fields(tmp_path, rows, delimiter, compress):
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")  # quotes any field holding \r or \n
    writer.writerow(["url", "caption"])
    for url, caption in rows:
        # surrogateescape carries any byte through the csv module and back unchanged
        writer.writerow([url.decode("utf-8", "surrogateescape"), caption.decode("utf-8", "surrogateescape")])
    data = buffer.getvalue().encode("utf-8", "surrogateescape")  # the random bytes, unchanged
    name = "list.csv" if delimiter == "," else "list.tsv"
    if compress:
        data, name = gzip.compress(data), name + ".gz"
    result = read_records("urls", write(tmp_path, name, data))
    # Quoted fields keep stray bytes inside their row: one record per written row, never the file refused.
    assert isinstance(result, list) and len(result) == len(rows), result


@SETTINGS
@given(
    lines=st.lists(
        st.one_of(
            st.dictionaries(
                st.sampled_from(["url", "caption", "x", "image_path"]),
                st.one_of(text, st.integers(), st.none(), st.lists(st.integers(), max_size=2)),
                max_size=4,
            ).map(lambda d: json.dumps(d).encode()),
            st.binary(max_size=30).filter(lambda b: b"\n" not in b and b"\r" not in b and b.strip()),
        ),
        max_size=8,
    )
)
def test_jsonl_with_random_lines(tmp_path, lines):
    result = read_records("urls", write(tmp_path, "list.jsonl", b"\n".join(lines) + b"\n"))
    if isinstance(result, str):  # a list none of whose lines names a caption (or URL) key
        assert (
            "column" in result
            and not any(b'"caption"' in line for line in lines)
            or not any(b'"url"' in line for line in lines)
        )
    elif lines:
        assert len(result) == len(lines), result


@SETTINGS
@given(data=st.binary(max_size=300), name=st.sampled_from(["l.parquet", "l.csv", "l.tsv", "l.jsonl", "l.csv.gz"]))
def test_url_lists_of_random_bytes(tmp_path, data, name):
    read_records("urls", write(tmp_path, name, data))


def _sample_list(tmp_path) -> bytes:
    rows = [{"url": f"http://127.0.0.1/{i}.jpg", "caption": f"caption {i}"} for i in range(50)]
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buffer)
    return buffer.getvalue()


@SETTINGS
@given(cut=st.floats(0.0, 1.0))
def test_truncated_parquet_and_gzip_lists(tmp_path, cut):
    data = _sample_list(tmp_path)
    read_records("urls", write(tmp_path, "cut.parquet", data[: int(len(data) * cut)]))
    lines = "url,caption\n" + "".join(f"http://127.0.0.1/{i}.jpg,caption {i}\n" for i in range(50))
    packed = gzip.compress(lines.encode())
    read_records("urls", write(tmp_path, "cut.csv.gz", packed[: int(len(packed) * cut)]))


# --- the other sources: random bytes and truncated real files ---------------------------------------

REAL_FILES = {
    "coco": (TEST_DATA / "coco" / "captions_train2017.json", "captions.json"),
    "yfcc": (TEST_DATA / "yfcc" / "yfcc100m_dataset_sample.tsv", None),
    "warc": (TEST_DATA / "commoncrawl" / "iana.warc.gz", "cut.warc.gz"),
    "wat": (TEST_DATA / "commoncrawl" / "iana-numbers.warc.wat.gz", "cut.warc.wat.gz"),
}


@SETTINGS
@given(kind=st.sampled_from(sorted(REAL_FILES)), data=st.binary(max_size=400))
def test_every_source_on_random_bytes(tmp_path, kind, data):
    real, name = REAL_FILES[kind]
    read_records(kind, write(tmp_path, name or real.name, data))


@SETTINGS
@given(kind=st.sampled_from(sorted(REAL_FILES)), cut=st.floats(0.0, 1.0))
def test_every_source_on_a_truncated_real_file(tmp_path, kind, cut):
    real, name = REAL_FILES[kind]
    data = real.read_bytes()
    whole = read_records(kind, str(real))
    result = read_records(kind, write(tmp_path, name or real.name, data[: int(len(data) * cut)]))
    if isinstance(result, list):
        # What was read before the cut is what the whole file gives, in order; only the last
        # record (a line cut in two, or the row saying where reading stopped) may differ.
        read = [r["uid"] for r in result if r["status"] not in ("unreadable_input", "malformed_record")][:-1]
        assert read == [r["uid"] for r in whole][: len(read)]
