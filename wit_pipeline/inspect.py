"""`wit inspect`: what a shard, a sidecar, a stage folder or a whole run folder holds.

One function, `inspect_path`, recognises the path (a WebDataset tar, a Parquet file, a stage
folder of Parquet parts or shards, a run folder of stages) and returns its row count, counts by
status, schema and the first samples that match the filters. Reading is column-pruned and stops
once enough samples are found; counts read the `status` column only.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from wit_pipeline import io, shards
from wit_pipeline.report.stats import STAGE_FOLDERS, funnel_line, read_funnel

SAMPLE_COLUMNS = ["uid", "status", "caption", "url", "error", "width", "height", "entries"]


@dataclass(frozen=True)
class Filters:
    """Which samples to show: the first `n` with this status (if given) whose caption or URL holds `grep`."""

    n: int = 10
    status: str | None = None
    grep: str | None = None


@dataclass
class Inspection:
    path: str
    kind: str  # tar, parquet, stage, run
    rows: int = 0
    files: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    schema: list[tuple[str, str]] = field(default_factory=list)
    samples: list[dict] = field(default_factory=list)
    funnel: dict | None = None
    note: str = ""

    def to_json(self) -> dict:
        return {
            "path": self.path,
            "kind": self.kind,
            "rows": self.rows,
            "files": self.files,
            "statuses": self.statuses,
            "schema": [{"name": n, "type": t} for n, t in self.schema],
            "samples": self.samples,
            "funnel": self.funnel,
            "note": self.note,
        }


def inspect_path(path: str, filters: Filters = Filters()) -> Inspection:
    """Describe `path`; raises io.InputError for a path that is missing or not wit's data."""
    fs, fs_path = io.fs_path(path)
    if not fs.exists(fs_path):
        raise io.InputError(f"{path} does not exist")
    if fs.isdir(fs_path):
        return _inspect_folder(path, fs, fs_path, filters)
    if path.endswith(".tar"):
        return inspect_tar(path, filters)
    if path.endswith(".parquet"):
        return inspect_parquet_files(path, [path], "parquet", filters)
    raise io.InputError(f"{path} is not a tar shard, a Parquet file or a folder")


def _inspect_folder(path: str, fs, fs_path: str, filters: Filters) -> Inspection:
    names = {entry.rstrip("/").rsplit("/", 1)[-1] for entry in fs.ls(fs_path, detail=False)}
    if names & set(STAGE_FOLDERS.values()):
        return inspect_run(path, filters)
    if {"keep.parquet", "clusters.parquet"} <= names:
        return inspect_dedup(path, filters)
    files = parquet_files(path)
    if not files:
        raise io.InputError(f"{path} holds no Parquet files and no stage folders (ingest, balance, raw, dedup, final)")
    return inspect_parquet_files(path, files, "stage", filters)


# Tables beside a stage's rows, not rows themselves: shown by the report, left out of row counts.
SIDE_TABLES = {"entry_counts.parquet"}


def parquet_files(folder: str) -> list[str]:
    """The row-holding Parquet files of a stage folder, its dropped/ parts included, sorted. A shard
    without its completion marker is unfinished and left out, as every stage leaves it out."""
    fs, root = io.fs_path(folder)
    root = root.rstrip("/")
    done = set(shards.finished_shards(folder))
    paths = []
    for found in sorted(fs.glob(root + "/*.parquet") + fs.glob(root + "/dropped/*.parquet")):
        relative = found[len(root) + 1 :]
        stem = relative.removesuffix(".parquet")
        if relative in SIDE_TABLES or (stem.isdigit() and int(stem) not in done):
            continue
        paths.append(io.join(folder, relative))
    return paths


def inspect_dedup(path: str, filters: Filters) -> Inspection:
    """dedup/: survivors from keep.parquet; the duplicates and overlaps, with their clusters, from
    clusters.parquet (which also lists each cluster's survivor, so its `ok` rows are not added)."""
    result = inspect_parquet_files(path, [io.join(path, "clusters.parquet")], "stage", filters)
    with _open_parquet(io.join(path, "keep.parquet")) as keep:
        survivors = keep.metadata.num_rows
    dropped = {k: v for k, v in result.statuses.items() if k != "ok"}
    result.statuses = {"ok": survivors, **dropped}
    result.rows = survivors + sum(dropped.values())
    result.files = 2
    result.note = "samples from clusters.parquet (survivor: status ok, distance 0)"
    return result


def inspect_parquet_files(path: str, files: list[str], kind: str, filters: Filters) -> Inspection:
    result = Inspection(path=path, kind=kind, files=len(files))
    for file_path in files:
        with _open_parquet(file_path) as parquet:
            if not result.schema:
                result.schema = [(f.name, str(f.type)) for f in parquet.schema_arrow]
            result.rows += parquet.metadata.num_rows
            if "status" in parquet.schema_arrow.names:
                for item in pc.value_counts(parquet.read(columns=["status"])["status"]).to_pylist():
                    result.statuses[item["values"]] = result.statuses.get(item["values"], 0) + item["counts"]
            if len(result.samples) < filters.n:
                result.samples += _matching_rows(parquet, filters, filters.n - len(result.samples))
    result.statuses = dict(sorted(result.statuses.items(), key=lambda kv: -kv[1]))
    return result


@contextlib.contextmanager
def _open_parquet(path: str) -> Iterator[pq.ParquetFile]:
    try:
        with io.open_parquet(path) as parquet:
            yield parquet
    except (pa.ArrowInvalid, OSError) as err:
        raise io.InputError(f"{path} is not a readable Parquet file ({err})") from err


def _matching_rows(parquet: pq.ParquetFile, filters: Filters, wanted: int) -> list[dict]:
    columns = [c for c in SAMPLE_COLUMNS if c in parquet.schema_arrow.names] or parquet.schema_arrow.names[:6]
    table = parquet.read(columns=columns)
    if filters.status is not None and "status" in columns:
        table = table.filter(pc.equal(table["status"], filters.status))
    elif filters.status is not None:
        return []
    if filters.grep:
        table = table.filter(_contains(table, filters.grep))
    return table.slice(0, wanted).to_pylist()


def _contains(table: pa.Table, word: str):
    """Rows whose caption or URL holds `word`, case-insensitively."""
    mask = pa.array([False] * table.num_rows)
    for column in ("caption", "url"):
        if column in table.column_names:
            found = pc.fill_null(pc.match_substring(table[column], word, ignore_case=True), False)
            mask = pc.or_(mask, found)
    return mask


def inspect_tar(path: str, filters: Filters) -> Inspection:
    """A WebDataset tar: samples and their members; status, caption and URL from each `.json`."""
    result = Inspection(path=path, kind="tar", files=1)
    extensions: dict[str, int] = {}
    try:
        for key, members in shards.iter_tar(path):
            result.rows += 1
            for ext in members:
                extensions[ext] = extensions.get(ext, 0) + 1
            sample = _tar_sample(key, members)
            result.statuses[sample["status"]] = result.statuses.get(sample["status"], 0) + 1
            if len(result.samples) < filters.n and _tar_sample_matches(sample, filters):
                result.samples.append(sample)
    except Exception as err:  # noqa: BLE001 - tarfile raises several types for a damaged file
        raise io.InputError(f"{path} is not a readable tar shard ({err})") from err
    result.schema = [(f".{ext}", f"{count} members") for ext, count in sorted(extensions.items())]
    return result


def _tar_sample(key: str, members: dict[str, bytes]) -> dict:
    meta = json.loads(members["json"]) if "json" in members else {}
    caption = members["txt"].decode("utf-8", "replace") if "txt" in members else meta.get("caption")
    return {
        "uid": key,
        "status": meta.get("status", "ok"),
        "caption": caption,
        "url": meta.get("url"),
        "width": meta.get("width"),
        "height": meta.get("height"),
        "image": next((ext for ext in ("jpg", "jpeg", "png", "webp") if ext in members), None),
    }


def _tar_sample_matches(sample: dict, filters: Filters) -> bool:
    if filters.status is not None and sample["status"] != filters.status:
        return False
    if filters.grep:
        word = filters.grep.lower()
        return any(word in (sample.get(k) or "").lower() for k in ("caption", "url"))
    return True


def inspect_run(path: str, filters: Filters) -> Inspection:
    """A run folder: the funnel of every stage, and samples from its last stage with rows."""
    funnel = read_funnel(path)
    result = Inspection(path=path, kind="run", funnel=funnel, note=funnel_line(funnel))
    for stage in reversed(list(STAGE_FOLDERS)):
        files = parquet_files(io.join(path, STAGE_FOLDERS[stage])) if stage != "dedup" else []
        if files:
            last = inspect_parquet_files(path, files, "run", filters)
            result.rows, result.files, result.statuses = last.rows, last.files, last.statuses
            result.schema, result.samples = last.schema, last.samples
            result.note += f"\nsamples from {STAGE_FOLDERS[stage]}/"
            break
    return result
