"""Test helper: the output folder of a 100,000-row run, synthesized cheaply from real rows.

Real LAION captions and URLs (tests/data/text) are repeated with distinct uids; every stage's
files are written in the layout and with the stats its stage writes, so the report reads it as it
reads a real run. Images are one real COCO photo stored small (the report downscales whatever it
finds), so the folder costs a few hundred megabytes of disk instead of gigabytes.
"""

from __future__ import annotations

import io
import json
import pathlib

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from helpers.paths import TEST_DATA as DATA
from wit_pipeline import schema, shards

SHARD_ROWS = 1000


def small_jpeg() -> bytes:
    photo = sorted((DATA / "coco" / "images").iterdir())[0]
    with Image.open(photo) as image:
        image = image.convert("RGB")
        image.thumbnail((48, 48))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=60)
    return buffer.getvalue()


def synthesize(out: pathlib.Path, rows: int = 100_000, seed: int = 0) -> pathlib.Path:
    rng = np.random.default_rng(seed)
    laion = pq.read_table(DATA / "text" / "laion_3000.parquet")
    index = np.arange(rows) % laion.num_rows
    urls = [f"{u}#{i}" for i, u in enumerate(np.asarray(laion["URL"].to_pylist(), dtype=object)[index])]
    captions = np.asarray(laion["TEXT"].to_pylist(), dtype=object)[index].tolist()
    uids = [schema.uid(u, c) for u, c in zip(urls, captions, strict=True)]
    entries = [rng.zipf(1.3, size=3).clip(max=499_999).astype(np.int32).tolist() for _ in range(rows)]
    text = pa.table(
        {
            "uid": uids,
            "url": urls,
            "caption": captions,
            "status": ["ok"] * rows,
            "error": [None] * rows,
            "lang": ["en"] * rows,
            "entries": pa.array(entries, pa.list_(pa.int32())),
        }
    )
    ingest_status = rng.choice(["ok", "lang_not_en", "too_short"], size=rows, p=[0.9, 0.07, 0.03])
    _text_stage(out / "ingest", "ingest", text, ingest_status)
    kept = text.filter(pa.array(ingest_status == "ok"))
    balance_status = rng.choice(["ok", "not_sampled"], size=kept.num_rows, p=[0.95, 0.05])
    _text_stage(out / "balance", "balance", kept, balance_status)
    _entry_counts(out / "balance", rng)
    balanced = kept.filter(pa.array(balance_status == "ok"))
    ok_uids = _raw(out / "raw", balanced, rng)
    survivors = _dedup(out / "dedup", ok_uids, rng)
    _final(out / "final", survivors)
    return out


def _text_stage(folder: pathlib.Path, stage: str, table: pa.Table, statuses: np.ndarray) -> None:
    (folder / "dropped").mkdir(parents=True, exist_ok=True)
    table = table.set_column(table.schema.get_field_index("status"), "status", pa.array(statuses.tolist()))
    keep = pa.array(statuses == "ok")
    for part, start in enumerate(range(0, table.num_rows, 10 * SHARD_ROWS)):
        piece = table.slice(start, 10 * SHARD_ROWS)
        mask = keep.slice(start, 10 * SHARD_ROWS)
        pq.write_table(piece.filter(mask), folder / f"part-{part:05d}.parquet")
        pq.write_table(piece.filter(pa.compute.invert(mask)), folder / "dropped" / f"part-{part:05d}.parquet")
    values, counts = np.unique(statuses, return_counts=True)
    counts = dict(zip(values.tolist(), counts.tolist(), strict=True))
    kept = counts.pop("ok", 0)
    _write_stats(folder, stage, int(table.num_rows), kept, counts, {"t": 20_000} if stage == "balance" else {})


def _write_stats(
    folder: pathlib.Path, stage: str, rows_in: int, kept: int, dropped: dict, config: dict, **extras
) -> None:
    """The stage's stats.json in the one shape every stage writes (wit_pipeline/stats.py)."""
    (folder / "stats.json").write_text(
        json.dumps(
            {
                "stage": stage,
                "engine": "local",
                "rows_in": rows_in,
                "kept": kept,
                "dropped": dropped,
                "seconds": 1.0,
                "config": config,
                **extras,
            }
        )
    )


def _entry_counts(folder: pathlib.Path, rng) -> None:
    # 500,000 entries with a Zipf head, as a real query list has; balance caps the head at t.
    before = (rng.zipf(1.4, size=500_000) - 1).clip(max=2_000_000).astype(np.int64)
    after = np.minimum(before, 20_000)
    pq.write_table(
        pa.table(
            {
                "entry": pa.array(np.arange(500_000), pa.int32()),
                "text": [f"entry {i}" for i in range(500_000)],
                "count_before": before,
                "count_after": after,
                "probability": np.minimum(1.0, 20_000 / np.maximum(before, 1)),
            }
        ),
        folder / "entry_counts.parquet",
    )


def _raw(folder: pathlib.Path, table: pa.Table, rng) -> list[tuple[str, int]]:
    folder.mkdir(parents=True, exist_ok=True)
    jpeg = small_jpeg()
    failures = ["http_404", "timeout", "connection_error", "decode_error", "too_small"]
    statuses = rng.choice(["ok"] + failures, size=table.num_rows, p=[0.9, 0.04, 0.02, 0.02, 0.01, 0.01])
    sizes = rng.integers(200, 2000, size=(table.num_rows, 2))
    ok_uids, totals = [], {"rows": 0, "ok": 0, "bytes": 0, "seconds": 0.0, "statuses": {}}
    for shard_id, start in enumerate(range(0, table.num_rows, SHARD_ROWS)):
        piece = table.slice(start, SHARD_ROWS).to_pylist()
        rows = []
        with shards.TarSampleWriter(str(folder / f"{shard_id:05d}.tar")) as tar:
            for offset, row in enumerate(piece):
                status = str(statuses[start + offset])
                width, height = (int(v) for v in sizes[start + offset])
                row = dict(
                    row,
                    status=status,
                    error=None if status == "ok" else f"synthetic {status}",
                    width=None,
                    height=None,
                    original_width=None,
                    original_height=None,
                    bytes=None,
                )
                if status == "ok":
                    tar.write(row["uid"], {"jpg": jpeg})
                    ok_uids.append((row["uid"], shard_id))
                    row.update(width=256, height=256, original_width=width, original_height=height, bytes=len(jpeg))
                rows.append(row)
        pq.write_table(pa.Table.from_pylist(rows), folder / f"{shard_id:05d}.parquet")
        counts = {s: sum(r["status"] == s for r in rows) for s in {r["status"] for r in rows}}
        stats = {
            "shard": f"{shard_id:05d}",
            "rows": len(rows),
            "ok": counts.get("ok", 0),
            "statuses": counts,
            "bytes": tar.bytes_written,
            "seconds": 1.5,
        }
        shards.mark_done(str(folder), shard_id, stats)
        for key in ("rows", "ok", "bytes", "seconds"):
            totals[key] += stats[key]
        for status, count in counts.items():
            totals["statuses"][status] = totals["statuses"].get(status, 0) + count
    _write_stats(
        folder,
        "download",
        totals["rows"],
        totals["ok"],
        {k: v for k, v in totals["statuses"].items() if k != "ok"},
        {},
        bytes=totals["bytes"],
        shards=shard_id + 1,
    )
    return ok_uids


def _dedup(folder: pathlib.Path, ok_uids: list[tuple[str, int]], rng) -> list[tuple[str, int]]:
    """Clusters of 2-5 over a tenth of the rows: the first member survives, the rest are duplicates."""
    folder.mkdir(parents=True, exist_ok=True)
    rows, survivors, position = [], [], 0
    while position < len(ok_uids):
        size = int(rng.integers(2, 6)) if rng.random() < 0.04 else 1
        members = ok_uids[position : position + size]
        position += size
        survivors.append(members[0])
        if len(members) > 1:
            for rank, (uid, shard) in enumerate(members):
                status = "ok" if rank == 0 else ("exact_duplicate" if rank % 2 else "near_duplicate")
                rows.append(
                    {
                        "uid": uid,
                        "shard": shard,
                        "cluster": members[0][0],
                        "distance": 0 if status != "near_duplicate" else int(rng.integers(1, 5)),
                        "status": status,
                    }
                )
    pq.write_table(pa.Table.from_pylist(rows, schema=schema.CLUSTER_SCHEMA), folder / "clusters.parquet")
    pq.write_table(
        pa.Table.from_pylist([{"uid": u, "shard": s} for u, s in survivors], schema=schema.KEEP_SCHEMA),
        folder / "keep.parquet",
    )
    dropped = {s: sum(r["status"] == s for r in rows) for s in ("exact_duplicate", "near_duplicate")}
    _write_stats(folder, "dedup", len(ok_uids), len(survivors), dropped, {"radius": 4})
    return survivors


def _final(folder: pathlib.Path, survivors: list[tuple[str, int]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    jpeg = small_jpeg()
    listed = []
    for shard_id, start in enumerate(range(0, len(survivors), SHARD_ROWS)):
        piece = survivors[start : start + SHARD_ROWS]
        with shards.TarSampleWriter(str(folder / f"{shard_id:05d}.tar")) as tar:
            for uid, _ in piece:
                tar.write(uid, {"jpg": jpeg})
        pq.write_table(
            pa.table(
                {
                    "uid": [u for u, _ in piece],
                    "caption": ["a synthetic caption"] * len(piece),
                    "status": ["ok"] * len(piece),
                    "width": [256] * len(piece),
                    "height": [256] * len(piece),
                }
            ),
            folder / f"{shard_id:05d}.parquet",
        )
        shards.mark_done(str(folder), shard_id, {"shard": f"{shard_id:05d}", "samples": len(piece)})
        listed.append({"shard": f"{shard_id:05d}", "samples": len(piece)})
    (folder / "manifest.json").write_text(
        json.dumps(
            {"samples": len(survivors), "shards": listed, "reshard": {"samples_per_shard": SHARD_ROWS, "seed": 0}}
        )
    )
    _write_stats(folder, "reshard", len(survivors), len(survivors), {}, {"samples_per_shard": SHARD_ROWS, "seed": 0})
