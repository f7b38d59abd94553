"""The ingest stage: source records in, candidate pairs out, every row accounted for.

`plan` claims OUT/ingest and makes one task per source shard; `run` runs them on any engine.
Per source shard: read records, run the caption processor on each (normalise, filter, language ID, query
match), write `OUT/ingest/part-NNNNN.parquet` (rows with status `ok`) and
`OUT/ingest/dropped/part-NNNNN.parquet` (every other row, with its status), then the shard's stats
and completion marker. After all shards, `drop_repeated_pairs` runs globally: a uid keyed
on exactly that pair is kept at its first occurrence by (shard id, row index); later occurrences
move to `OUT/ingest/dropped/duplicate-NNNNN.parquet` with status `duplicate` (the engine's group-by
by uid). Every engine writes the same files; `stats.json` holds the totals.
"""

from __future__ import annotations

import collections
import functools
import traceback
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from wit_pipeline import claim, io, schema, shards
from wit_pipeline.config import IngestConfig, to_dict
from wit_pipeline.sources.base import Source, SourceShard
from wit_pipeline.stats import Clock, add_counts, stage_stats, write_stats
from wit_pipeline.text.processor import CaptionProcessor

STAGE = "ingest"


def ingest_folder(output: str) -> str:
    return io.join(output, STAGE)


def part_path(folder: str, shard_id: int) -> str:
    return io.join(folder, f"part-{shards.shard_name(shard_id)}.parquet")


def dropped_path(folder: str, shard_id: int) -> str:
    return io.join(folder, f"dropped/part-{shards.shard_name(shard_id)}.parquet")


def duplicates_path(folder: str, shard_id: int) -> str:
    return io.join(folder, f"dropped/duplicate-{shards.shard_name(shard_id)}.parquet")


def extra_column_names(source: Source, shard: SourceShard) -> tuple[str, ...]:
    """The user columns a source carries for this shard (`--keep-cols`, see `Source.extra_columns`).

    Other keys a source puts on its records (bookkeeping such as a row index) are not written.
    """
    return tuple(source.extra_columns(shard))


# Records per language-ID batch: large enough that the per-call overhead vanishes, small enough
# that a shard's rows are not all held twice.
TEXT_BATCH = 4096


def process_records(
    processor: CaptionProcessor, records: Iterable[dict], extra: tuple[str, ...] = ()
) -> Iterator[dict]:
    """Rows of the caption processor, one per record, in order: TEXT_SCHEMA columns plus `extra`.

    Records go through the processor in batches (one language-ID call each). A record it fails
    on becomes a row with status `internal_error` and its traceback, so one odd caption never
    loses a shard: a failing batch is redone record by record to find it.
    """
    names = schema.TEXT_SCHEMA.names + [name for name in extra if name not in schema.TEXT_SCHEMA.names]
    for batch in _batches(records, TEXT_BATCH):
        try:
            rows = processor.process_many(batch)
        except Exception:  # noqa: BLE001 - isolated below, record by record
            rows = [_process_or_record_failure(processor, record) for record in batch]
        for row in rows:
            yield {name: row.get(name) for name in names}


def _batches(items: Iterable, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _process_or_record_failure(processor: CaptionProcessor, record: dict) -> dict:
    try:
        return processor.process(record)
    except Exception:  # noqa: BLE001 - recorded on the row, counted in the stats
        row = schema.empty_row(schema.TEXT_SCHEMA)
        row.update(record)
        row["status"], row["error"] = "internal_error", traceback.format_exc(limit=5)
        return row


def rows_to_table(rows: list[dict]) -> pa.Table:
    """TEXT_SCHEMA rows as a table; extra source columns (`--keep-cols`) follow, as strings if all null."""
    extra = sorted({key for row in rows for key in row} - set(schema.TEXT_SCHEMA.names))
    table = pa.Table.from_pylist(rows, schema=schema.TEXT_SCHEMA)
    for name in extra:
        column = pa.array([row.get(name) for row in rows])
        table = table.append_column(name, column.cast(pa.string()) if pa.types.is_null(column.type) else column)
    return table


def write_part(path: str, rows: list[dict]) -> None:
    io.makedirs(path.rsplit("/", 1)[0])
    io.write_table(path, rows_to_table(rows))


def status_counts(rows: Iterable[dict]) -> dict[str, int]:
    return dict(sorted(collections.Counter(row["status"] for row in rows).items()))


@dataclass(frozen=True)
class IngestTask:
    """One unit of local work: a shard of a source, and where and how to process it."""

    source: Source
    shard: SourceShard
    output: str
    config: IngestConfig


def ingest_shard(task: IngestTask) -> dict:
    """Run the caption processor over one shard and write its parts, stats and marker (marker last).

    A shard with a marker is skipped: its stats are returned as they were written.
    """
    folder = ingest_folder(task.output)
    shard_id = task.shard.shard_id
    if shards.is_done(folder, shard_id):
        return shards.read_stats(folder, shard_id) | {"skipped": True}
    processor = CaptionProcessor(task.config).load()
    extra = extra_column_names(task.source, task.shard)
    rows = list(process_records(processor, task.source.read(task.shard), extra))
    write_part(part_path(folder, shard_id), [row for row in rows if row["status"] == schema.OK])
    write_part(dropped_path(folder, shard_id), [row for row in rows if row["status"] != schema.OK])
    stats = {"shard": shard_id, "rows": len(rows), "statuses": status_counts(rows)}
    shards.mark_done(folder, shard_id, stats)
    return stats


def uid_occurrences(folder: str, shard_id: int) -> Iterator[tuple[str, tuple[int, int]]]:
    """(uid, (shard id, row index)) for every row of a finished part: the dedup group-by's input."""
    uids = io.read_parquet(part_path(folder, shard_id), columns=["uid"]).column("uid").to_pylist()
    for index, uid in enumerate(uids):
        yield uid, (shard_id, index)


def later_occurrences(uid: str, places: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """All but the first (shard id, row index) of one uid: the rows that become `duplicate`."""
    return sorted(places)[1:]


@dataclass(frozen=True)
class DuplicatesTask:
    folder: str
    shard_id: int
    rows: tuple[int, ...]  # indexes into the part's current rows


def move_duplicates(task: DuplicatesTask) -> dict:
    """Move a part's duplicate rows to `dropped/duplicate-NNNNN.parquet`, then rewrite the part.

    The duplicates file is written before the part is rewritten without them, so an interrupted
    run resumes correctly: a rewritten part has no duplicates left (the first occurrence of a
    uid is never moved), and its duplicates file stays.
    """
    table = io.read_parquet(part_path(task.folder, task.shard_id))
    flags = [False] * len(table)
    for index in task.rows:
        flags[index] = True
    mask = pa.array(flags, pa.bool_())
    duplicates = table.filter(mask)
    duplicates = duplicates.set_column(
        duplicates.schema.get_field_index("status"),
        schema.TEXT_SCHEMA.field("status"),
        pa.array(["duplicate"] * len(duplicates), pa.string()),
    )
    io.makedirs(io.join(task.folder, "dropped"))
    io.write_table(duplicates_path(task.folder, task.shard_id), duplicates)
    io.write_table(part_path(task.folder, task.shard_id), table.filter(pc.invert(mask)))
    return {"shard": task.shard_id, "duplicates": len(duplicates)}


def drop_repeated_pairs(engine, folder: str, shard_ids: list[int]) -> int:
    """Drop repeated (url, caption) pairs across all finished parts; returns how many were dropped.

    The engine's group-by meets every occurrence of a uid; the first by (shard id, row index)
    stays, the others move out, part by part. On the local engine the uids meet in one process
    (about 100 bytes each, 1 GB per 10 million pairs); Beam and Spark shuffle them.
    """
    later = engine.group_by(
        functools.partial(uid_occurrences, folder), shard_ids, later_occurrences, desc="ingest: dedup"
    )
    by_shard: dict[int, list[int]] = {}
    for shard_id, index in later:
        by_shard.setdefault(shard_id, []).append(index)
    tasks = [DuplicatesTask(folder, shard_id, tuple(sorted(rows))) for shard_id, rows in sorted(by_shard.items())]
    engine.map_shards(move_duplicates, tasks, desc="ingest: move duplicates", unit_key=None)
    return count_duplicates(folder, shard_ids)


def count_duplicates(folder: str, shard_ids: list[int]) -> int:
    paths = [duplicates_path(folder, shard_id) for shard_id in shard_ids]
    return sum(io.parquet_rows(path) for path in paths if io.exists(path))


def summarise(statuses: dict[str, int], duplicates: int, config: IngestConfig) -> dict:
    """The stage totals: rows in, kept, dropped per reason (duplicates moved out of `ok`)."""
    statuses = dict(statuses)
    statuses[schema.OK] = statuses.get(schema.OK, 0) - duplicates
    if duplicates:
        statuses["duplicate"] = statuses.get("duplicate", 0) + duplicates
    dropped = {k: v for k, v in sorted(statuses.items()) if k != schema.OK and v}
    return {
        "stage": STAGE,
        "rows_in": sum(statuses.values()),
        "kept": statuses.get(schema.OK, 0),
        "dropped": dropped,
        "config": to_dict(config),
    }


def plan(source: Source, output: str, config: IngestConfig) -> list[IngestTask]:
    """One task per source shard, in source order, once OUT/ingest is claimed for this input."""
    claim_output(source, output, config)
    try:
        return [IngestTask(source, shard, output, config) for shard in source.shards()]
    except io.InputError:
        claim.abandon(ingest_folder(output))  # nothing was ingested: a corrected rerun starts afresh
        raise


def run(engine, output: str, config: IngestConfig, *, source: Source) -> dict:
    """The whole stage on any engine: every shard (finished ones skipped), then the global dedup.

    Returns the stage's stats (see wit_pipeline/stats.py), also written to OUT/ingest/stats.json.
    """
    clock = Clock()
    folder = ingest_folder(output)
    tasks = plan(source, output, config)
    io.makedirs(io.join(folder, "dropped"))
    statuses: dict[str, int] = {}
    for result in engine.map_shards(ingest_shard, tasks, desc=STAGE, unit_key="rows"):
        add_counts(statuses, result["statuses"])
    duplicates = drop_repeated_pairs(engine, folder, [task.shard.shard_id for task in tasks])
    summary = summarise(statuses, duplicates, config)
    return write_stats(
        folder,
        stage_stats(
            STAGE, engine.name, clock, summary["rows_in"], summary["kept"], summary["dropped"], summary["config"]
        ),
    )


UNREAD = ("malformed_record", "unreadable_input")


def unreadable_inputs(source: Source, output: str) -> dict[str, int]:
    """Input files of which no record could be read ({file: rows}): every row they gave is
    malformed or unreadable, the mark of a file given to the wrong --source."""
    folder = ingest_folder(output)
    totals: dict[str, list[int]] = {}
    for shard in source.shards():
        if not shards.is_done(folder, shard.shard_id):
            continue
        origin = source.origin(shard)
        statuses = shards.read_stats(folder, shard.shard_id)["statuses"]
        counts = totals.setdefault(str(origin), [0, 0])
        counts[0] += sum(statuses.values())
        counts[1] += sum(statuses.get(status, 0) for status in UNREAD)
    return {origin: rows for origin, (rows, unread) in totals.items() if rows and rows == unread}


def claim_output(source: Source, output: str, config: IngestConfig) -> None:
    """Refuse to resume into OUT/ingest with another source, input or configuration (every engine)."""
    import dataclasses

    claim.claim(ingest_folder(output), {"stage": STAGE, **source.identity(), "ingest": dataclasses.asdict(config)})
