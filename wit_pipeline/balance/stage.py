"""The balance stage: MetaCLIP's Algorithm 1, at most about `t` pairs per query-list entry.

Every entry's global match count c gives it a probability p = t / max(c, t): rare entries keep
all their pairs, an entry matched a million times keeps about t of them. A pair is kept if the draw
of any of its entries falls below that entry's p. The draw for (uid, entry) is a pure function of
(seed, uid, entry) - a splitmix64 hash chain, mapped to [0, 1) - so the kept set is the same on
every engine, partitioning and rerun, and needs no shared random state.

`plan` claims OUT/balance and lists ingest's parts; `run` makes two passes over them on any engine
(count every entry's matches, then select each part's pairs).

Output: `OUT/balance/part-NNNNN.parquet` (kept), `OUT/balance/dropped/part-NNNNN.parquet`
(`not_sampled`, `no_query_match`), `OUT/balance/entry_counts.parquet` (per entry: count before and
after, p) and `stats.json`.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from wit_pipeline import claim, io, schema, shards
from wit_pipeline.config import BalanceConfig, to_dict
from wit_pipeline.stats import STATS_FILE, Clock, add_counts, stage_stats, write_stats

log = logging.getLogger("wit")

STAGE = "balance"
ENTRY_COUNTS_FILE = "entry_counts.parquet"
_PART = re.compile(r"^part-(\d+)\.parquet$")

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_M1, _M2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB

ENTRY_COUNTS_SCHEMA = pa.schema(
    [
        pa.field("entry", pa.int32(), nullable=False),
        pa.field("text", pa.string()),
        pa.field("count_before", pa.int64(), nullable=False),
        pa.field("count_after", pa.int64(), nullable=False),
        pa.field("probability", pa.float64(), nullable=False),
    ]
)


# ---- the draw: one pure function, in plain Python (the reference) and in NumPy (the fast path)


def _mix(x: int) -> int:
    # splitmix64's finaliser: a bijection on 64 bits whose output bits all depend on all input bits.
    x = ((x ^ (x >> 30)) * _M1) & _MASK
    x = ((x ^ (x >> 27)) * _M2) & _MASK
    return x ^ (x >> 31)


def draw(seed: int, uid: str, entry: int) -> float:
    """The uniform [0, 1) draw of pair `uid` for `entry` under `seed`."""
    high, low = int(uid[:16], 16), int(uid[16:32], 16)
    h = _mix(_mix(_mix(_mix(seed ^ _GOLDEN) ^ high) ^ low) ^ (entry & _MASK))
    return (h >> 11) * 2.0**-53


def _mix_array(x: np.ndarray) -> np.ndarray:
    # uint64 arithmetic in NumPy wraps modulo 2**64, exactly as the masked Python version.
    x = (x ^ (x >> np.uint64(30))) * np.uint64(_M1)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(_M2)
    return x ^ (x >> np.uint64(31))


def draws(seed: int, uid_words: np.ndarray, entries: np.ndarray) -> np.ndarray:
    """`draw` for many (uid, entry) pairs: `uid_words` is an (n, 2) uint64 array (see `uid_words`)."""
    with np.errstate(over="ignore"):
        h = _mix_array(np.full(len(entries), _mix(seed ^ _GOLDEN), dtype=np.uint64) ^ uid_words[:, 0])
        h = _mix_array(_mix_array(h ^ uid_words[:, 1]) ^ entries.astype(np.uint64))
    return (h >> np.uint64(11)).astype(np.float64) * 2.0**-53


def uid_words(uids: list[str]) -> np.ndarray:
    """32-hex uids as an (n, 2) array of their big-endian 64-bit halves."""
    if not uids:
        return np.zeros((0, 2), dtype=np.uint64)
    return np.frombuffer(bytes.fromhex("".join(uids)), dtype=">u8").astype(np.uint64).reshape(-1, 2)


def probabilities(counts: np.ndarray, t: int) -> np.ndarray:
    """p = t / max(count, t) for every entry (1 for entries never matched)."""
    return t / np.maximum(counts.astype(np.float64), float(t))


def pair_status(uid: str, entries: list[int] | None, counts: Mapping[int, int], config: BalanceConfig) -> str:
    """`ok`, `not_sampled` or `no_query_match` for one pair: the row-at-a-time form of `select`."""
    if not entries:
        return schema.OK if config.keep_unmatched else "no_query_match"
    for entry in entries:
        if draw(config.seed, uid, entry) < config.t / max(float(counts[entry]), float(config.t)):
            return schema.OK
    return "not_sampled"


def select(uids: list[str], entries: pa.ListArray, p: np.ndarray, config: BalanceConfig) -> list[str]:
    """The status of every pair of a part, vectorised; equal to `pair_status` row by row."""
    n = len(uids)
    flat = pc.list_flatten(entries).to_numpy(zero_copy_only=False).astype(np.int64)
    parents = pc.list_parent_indices(entries).to_numpy(zero_copy_only=False)
    words = uid_words(uids)[parents]
    hits = draws(config.seed, words, flat) < p[flat]
    kept = np.bincount(parents[hits], minlength=n) > 0
    matched = np.bincount(parents, minlength=n) > 0
    unmatched_status = schema.OK if config.keep_unmatched else "no_query_match"
    return [
        (schema.OK if keep else "not_sampled") if has_match else unmatched_status
        for keep, has_match in zip(kept.tolist(), matched.tolist(), strict=True)
    ]


# ---- counting


def count_entries(entries: pa.ListArray, size: int = 0) -> np.ndarray:
    """How many rows match each entry id (a dense array of at least `size`)."""
    flat = pc.list_flatten(entries).to_numpy(zero_copy_only=False).astype(np.int64)
    return np.bincount(flat, minlength=size)


def add_dense(total: np.ndarray, counts: np.ndarray) -> np.ndarray:
    if len(counts) > len(total):
        total = np.concatenate([total, np.zeros(len(counts) - len(total), dtype=total.dtype)])
    total[: len(counts)] += counts
    return total


def entry_counts_table(before: np.ndarray, after: np.ndarray, t: int, texts: list[str] | None) -> pa.Table:
    """One row per entry matched at least once: counts before and after balancing, and p."""
    size = max(len(before), len(after))
    before, after = add_dense(np.zeros(size, np.int64), before), add_dense(np.zeros(size, np.int64), after)
    ids = np.flatnonzero(before)
    return pa.table(
        {
            "entry": pa.array(ids, pa.int32()),
            "text": pa.array(
                [texts[i] if texts is not None and i < len(texts) else None for i in ids.tolist()], pa.string()
            ),
            "count_before": pa.array(before[ids], pa.int64()),
            "count_after": pa.array(after[ids], pa.int64()),
            "probability": pa.array(probabilities(before[ids], t), pa.float64()),
        },
        schema=ENTRY_COUNTS_SCHEMA,
    )


# ---- files


def ingest_parts(output: str) -> list[tuple[int, str]]:
    """(part id, path) of every kept part of `OUT/ingest`, sorted by id."""
    folder = io.join(output, "ingest")
    if not io.exists(folder):
        raise FileNotFoundError(f"no ingest output at {folder}; run `wit ingest` first")
    parts = [(int(m.group(1)), io.join(folder, m.group(0))) for m in map(_PART.match, io.names(folder)) if m]
    return sorted(parts)


def balance_folder(output: str) -> str:
    return io.join(output, STAGE)


def read_entry_texts(output: str) -> list[str] | None:
    """The entry strings of the metadata file ingest matched against, if it is still readable."""
    from wit_pipeline.text.matching import load_entries

    path = _ingest_metadata_path(output)
    try:
        return load_entries(path) if path else None
    except (FileNotFoundError, ValueError):
        return None


def ingest_ran_without_query_list(output: str) -> bool:
    """Whether ingest's stats say it matched no query list (so no pair has entries)."""
    match = _ingest_match_config(output)
    return match is not None and not match.get("metadata_path")


def _ingest_metadata_path(output: str) -> str | None:
    return (_ingest_match_config(output) or {}).get("metadata_path")


def _ingest_match_config(output: str) -> dict | None:
    try:
        return io.read_json(io.join(io.join(output, "ingest"), STATS_FILE))["config"]["match"]
    except (TypeError, KeyError, ValueError):  # not there (None), or not ingest's stats shape
        return None


def write_split(folder: str, part_id: int, table: pa.Table, statuses: list[str]) -> dict[str, int]:
    """Write a part's kept rows and its dropped rows (with their status); return status counts."""
    status_column = pa.array(statuses, pa.string())
    table = table.set_column(table.schema.get_field_index("status"), table.schema.field("status"), status_column)
    keep = pc.equal(status_column, schema.OK)
    name = f"part-{shards.shard_name(part_id)}.parquet"
    io.write_table(io.join(folder, name), table.filter(keep))
    io.write_table(io.join(folder, "dropped/" + name), table.filter(pc.invert(keep)))
    counts = pc.value_counts(status_column).to_pylist()
    return {item["values"]: item["counts"] for item in counts}


@dataclass(frozen=True)
class CountTask:
    path: str


def count_part(task: CountTask) -> dict:
    """Entry counts of one ingest part (the first pass)."""
    table = io.read_parquet(task.path, columns=["entries"])
    counts = count_entries(table.column("entries").combine_chunks())
    return {"rows": len(table), "counts": counts}


@dataclass(frozen=True)
class SelectTask:
    part_id: int
    path: str
    output: str
    p: np.ndarray
    config: BalanceConfig


def select_part(task: SelectTask) -> dict:
    """Decide and write one part (the second pass); returns status and kept-entry counts."""
    table = io.read_parquet(task.path)
    entries = table.column("entries").combine_chunks()
    statuses = select(table.column("uid").to_pylist(), entries, task.p, task.config)
    counts = write_split(balance_folder(task.output), task.part_id, table, statuses)
    kept = pc.filter(entries, pc.equal(pa.array(statuses), schema.OK))
    return {
        "shard": f"part-{task.part_id:05d}",
        "rows": len(table),
        "statuses": counts,
        "counts_after": count_entries(kept),
    }


def summarise(
    statuses: dict[str, int],
    before: np.ndarray,
    after: np.ndarray,
    config: BalanceConfig,
    engine_name: str,
    clock: Clock,
) -> dict:
    return stage_stats(
        STAGE,
        engine_name,
        clock,
        rows_in=int(sum(statuses.values())),
        kept=int(statuses.get(schema.OK, 0)),
        dropped={k: int(v) for k, v in statuses.items() if k != schema.OK},
        config=to_dict(config),
        extras={
            "entries_matched": int(np.count_nonzero(before)),
            "entries_capped": int(np.count_nonzero(before > config.t)),
            "pairs_matched_before": int(before.sum()),
            "pairs_matched_after": int(after.sum()),
        },
    )


def write_outputs(output: str, before: np.ndarray, after: np.ndarray, t: int, stats: dict) -> dict:
    """entry_counts.parquet and stats.json (written last: the stage's completion mark)."""
    folder = balance_folder(output)
    table = entry_counts_table(before, after, t, read_entry_texts(output))
    io.write_table(io.join(folder, ENTRY_COUNTS_FILE), table)
    return write_stats(folder, stats)


def plan(output: str, config: BalanceConfig) -> tuple[list[tuple[int, str]], BalanceConfig]:
    """The ingest parts to balance (id, path) and the settings they are balanced with, once
    OUT/balance is claimed; an ingest without a query list keeps every pair."""
    claim.claim(balance_folder(output), {"stage": "balance", "input": claim.location(io.join(output, "ingest"))})
    parts = ingest_parts(output)
    if not config.keep_unmatched and ingest_ran_without_query_list(output):
        log.warning("balance: ingest ran without a query list (--metadata): every pair is kept")
        config = dataclasses.replace(config, keep_unmatched=True)
    return parts, config


def run(engine, output: str, config: BalanceConfig) -> dict:
    """Balance `OUT/ingest` into `OUT/balance` on any engine: a count pass, then a select pass."""

    clock = Clock()
    parts, config = plan(output, config)
    io.makedirs(io.join(balance_folder(output), "dropped"))
    before = np.zeros(0, np.int64)
    for result in engine.map_shards(
        count_part, [CountTask(path) for _, path in parts], desc="balance: count", unit_key=None
    ):
        before = add_dense(before, result["counts"])
    p = probabilities(before, config.t)
    tasks = [SelectTask(part_id, path, output, p, config) for part_id, path in parts]
    statuses: dict[str, int] = {}
    after = np.zeros(0, np.int64)
    for result in engine.map_shards(select_part, tasks, desc="balance: select", unit_key="rows"):
        add_counts(statuses, result["statuses"])
        after = add_dense(after, result["counts_after"])
    stats = summarise(statuses, before, after, config, engine.name, clock)
    return write_outputs(output, before, after, config.t, stats)
