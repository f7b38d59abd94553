import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from wit_pipeline import schema
from wit_pipeline.balance import stage as balance
from wit_pipeline.config import BalanceConfig
from wit_pipeline.engines.local import LocalEngine
from wit_pipeline.ingest import stage as ingest

# A synthetic count distribution: entry e is matched by COUNTS[e] pairs, one entry per pair.
COUNTS = [3, 40, 300, 1000, 4000, 12000]
T = 500


def synthetic_rows(counts, extra_entries=None):
    rows = []
    for entry, count in enumerate(counts):
        for i in range(count):
            row = schema.empty_row(schema.TEXT_SCHEMA)
            url = f"http://img.example/{entry}/{i}.jpg"
            row.update(
                uid=schema.uid(url, "a caption"),
                url=url,
                caption="a caption",
                status="ok",
                entries=[entry] + (extra_entries or []),
            )
            rows.append(row)
    return rows


def write_ingest(out, rows, parts):
    folder = ingest.ingest_folder(str(out))
    for part_id, chunk in enumerate(np.array_split(np.arange(len(rows)), parts)):
        ingest.write_part(ingest.part_path(folder, part_id), [rows[i] for i in chunk])
    ingest.write_part(ingest.part_path(folder, parts), [])  # an empty part is fine too


def kept_uids(out):
    import glob

    return sorted(
        uid
        for p in glob.glob(f"{out}/balance/part-*.parquet")
        for uid in pq.read_table(p, columns=["uid"]).column("uid").to_pylist()
    )


def test_numpy_draws_equal_the_reference():
    uids = [schema.uid(f"http://x/{i}", "c") for i in range(2000)]
    entries = np.arange(2000) * 7919 % 100_000
    fast = balance.draws(42, balance.uid_words(uids), entries)
    assert fast.tolist() == [balance.draw(42, u, int(e)) for u, e in zip(uids, entries, strict=True)]
    assert 0.0 <= fast.min() and fast.max() < 1.0


def test_vectorised_select_equals_row_by_row():
    uids = [schema.uid(f"http://x/{i}", "c") for i in range(3000)]
    lists = [[i % 5, (i * 3) % 11] if i % 7 else [] for i in range(3000)]
    entries = pa.array(lists, pa.list_(pa.int32()))
    counts = balance.count_entries(entries)
    for config in (BalanceConfig(t=100, seed=3), BalanceConfig(t=100, seed=3, keep_unmatched=True)):
        fast = balance.select(uids, entries, balance.probabilities(counts, config.t), config)
        by_query = dict(enumerate(counts.tolist()))
        slow = [balance.pair_status(u, e, by_query, config) for u, e in zip(uids, lists, strict=True)]
        assert fast == slow
        assert set(fast) == ({"ok", "not_sampled"} | ({"no_query_match"} if not config.keep_unmatched else set()))


def test_balancing_law_expected_kept_is_min_count_t(tmp_path):
    write_ingest(tmp_path, synthetic_rows(COUNTS), parts=3)
    summary = balance.run(LocalEngine(), str(tmp_path), BalanceConfig(t=T, seed=1234))
    table = pq.read_table(tmp_path / "balance/entry_counts.parquet").to_pylist()
    assert [row["count_before"] for row in table] == COUNTS
    for row in table:
        c = row["count_before"]
        p = T / max(c, T)
        expected, sd = c * p, math.sqrt(c * p * (1 - p))
        # Each pair is kept independently with probability p: Binomial(c, p); 4 sd is 1 in 15,000.
        assert abs(row["count_after"] - expected) <= 4 * sd + 1e-9, row
        assert row["probability"] == pytest.approx(p)
    assert summary["entries_capped"] == 3 and summary["kept"] == sum(t["count_after"] for t in table)
    assert summary["rows_in"] == sum(COUNTS)


def test_a_pair_is_kept_if_any_entry_draw_succeeds(tmp_path):
    # Every pair also matches entry 6, matched by all pairs (count 17,343 > t): with two entries,
    # P(keep) = 1 - (1 - p_e)(1 - p_6), and the kept count follows that law.
    write_ingest(tmp_path, synthetic_rows(COUNTS, extra_entries=[6]), parts=2)
    balance.run(LocalEngine(), str(tmp_path), BalanceConfig(t=T, seed=7))
    table = {row["entry"]: row for row in pq.read_table(tmp_path / "balance/entry_counts.parquet").to_pylist()}
    p6 = T / sum(COUNTS)
    for entry, c in enumerate(COUNTS):
        q = 1 - (1 - T / max(c, T)) * (1 - p6)
        assert abs(table[entry]["count_after"] - c * q) <= 4 * math.sqrt(c * q * (1 - q)) + 1e-9


def test_selection_is_independent_of_partitioning_and_rerun(tmp_path):
    rows = synthetic_rows(COUNTS)
    for name, parts in (("a", 1), ("b", 5)):
        write_ingest(tmp_path / name, rows, parts)
        balance.run(LocalEngine(), str(tmp_path / name), BalanceConfig(t=T, seed=99))
    assert kept_uids(tmp_path / "a") == kept_uids(tmp_path / "b")
    balance.run(LocalEngine(2), str(tmp_path / "a"), BalanceConfig(t=T, seed=99))
    assert kept_uids(tmp_path / "a") == kept_uids(tmp_path / "b")
    balance.run(LocalEngine(), str(tmp_path / "b"), BalanceConfig(t=T, seed=100))
    assert kept_uids(tmp_path / "a") != kept_uids(tmp_path / "b")


def test_unmatched_pairs_dropped_by_default_kept_with_flag(tmp_path):
    rows = synthetic_rows([5])
    rows[0]["entries"], rows[1]["entries"] = [], None
    write_ingest(tmp_path, rows, parts=1)
    summary = balance.run(LocalEngine(), str(tmp_path), BalanceConfig(t=T))
    assert summary["kept"] == 3 and summary["dropped"] == {"no_query_match": 2}
    dropped = pq.read_table(tmp_path / "balance/dropped/part-00000.parquet").to_pylist()
    assert [row["status"] for row in dropped] == ["no_query_match"] * 2
    summary = balance.run(LocalEngine(), str(tmp_path), BalanceConfig(t=T, keep_unmatched=True))
    assert summary["kept"] == 5 and summary["dropped"] == {}


def test_entry_texts_come_from_the_metadata_ingest_used(tmp_path):
    from helpers.text import ENTRIES, ListSource

    from wit_pipeline.config import IngestConfig, MatchConfig

    source = ListSource([("http://a/1.jpg", "A dog on the beach at sunset")])
    ingest.run(LocalEngine(), str(tmp_path), IngestConfig(match=MatchConfig(metadata_path=str(ENTRIES))), source=source)
    balance.run(LocalEngine(), str(tmp_path), BalanceConfig())
    table = pq.read_table(tmp_path / "balance/entry_counts.parquet").to_pylist()
    entries = json.loads(ENTRIES.read_text())
    assert {row["text"] for row in table} >= {"A", "dog", "beach", "the"}
    assert all(entries[row["entry"]] == row["text"] for row in table)


def test_missing_ingest_output_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="run `wit ingest` first"):
        balance.run(LocalEngine(), str(tmp_path), BalanceConfig())
