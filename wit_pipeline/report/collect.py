"""What the report shows, gathered from an output folder as aggregated counts and a few samples.

Every distribution is a histogram summed file by file (one or two columns read at a time), so a
run of any size costs the report the same few kilobytes of numbers; only the sampled rows carry
text and thumbnails. Sampling uses a fixed seed: the same folder gives the same page.
"""

from __future__ import annotations

import base64
import re
from collections import Counter
from io import BytesIO
from urllib.parse import urlsplit

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from wit_pipeline import io, schema, shards
from wit_pipeline.report.stats import stage_folder

THUMBNAIL_PIXELS = 112
SAMPLE_GRID = 24
DROPPED_PER_REASON = 4
CLUSTERS_SHOWN = 4
TOP_ENTRIES = 15
TOP_HOSTS = 10
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
_PART = re.compile(r"^(part|duplicate)-\d+\.parquet$")
_SHARD_PARQUET = re.compile(r"^(\d{5,})\.parquet$")


# ---- files


def list_files(folder: str, pattern: re.Pattern) -> list[str]:
    """Paths in `folder` whose name matches `pattern`, sorted; empty when the folder is missing."""
    return [io.join(folder, name) for name in io.names(folder) if pattern.match(name)]


def text_parts(output: str, stage: str) -> tuple[list[str], list[str]]:
    """(kept parts, dropped parts) of a text stage (ingest or balance)."""
    folder = stage_folder(output, stage)
    return list_files(folder, _PART), list_files(io.join(folder, "dropped"), _PART)


def shard_sidecars(folder: str) -> dict[int, str]:
    """Finished shards' Parquet sidecars by shard id (a shard without its marker is not read)."""
    done = set(shards.finished_shards(folder))
    found = {}
    for name in io.names(folder):
        match = _SHARD_PARQUET.match(name)
        if match and int(match.group(1)) in done:
            found[int(match.group(1))] = io.join(folder, name)
    return found


def read_columns(paths, columns: list[str]) -> pa.Table:
    """The named columns of several Parquet files as one table (columns a file lacks are null)."""
    tables = [pa.table({name: pa.nulls(0) for name in columns})]  # no file: no row
    for path in paths:
        with io.open_parquet(path) as file:
            present = [c for c in columns if c in file.schema_arrow.names]
            table = file.read(columns=present)
        for name in columns:
            if name not in table.column_names:
                table = table.append_column(name, pa.nulls(table.num_rows))  # null type: merges with any
        tables.append(table.select(columns))
    return pa.concat_tables(tables, promote_options="permissive")


# ---- histograms


def histogram(values: np.ndarray, edges: np.ndarray) -> dict:
    """Counts of `values` in `edges`, the last bin open-ended so that nothing falls outside."""
    clipped = np.clip(values, edges[0], edges[-1] - 1e-9) if len(values) else values
    counts, _ = np.histogram(clipped, bins=edges)
    return {"edges": edges.tolist(), "counts": counts.tolist(), "n": int(len(values))}


def log_edges(low: float, high: float, bins: int = 40) -> np.ndarray:
    return np.geomspace(low, high, bins + 1)


# ---- text


def text_section(output: str) -> dict | None:
    kept, dropped = text_parts(output, "ingest")
    if not kept and not dropped:
        return None
    table = read_columns(kept + dropped, ["caption", "lang", "status"])
    langs = Counter(lang if lang else "(none)" for lang in table["lang"].to_pylist())
    lengths = pc.utf8_length(pc.fill_null(table["caption"], "")).to_numpy(zero_copy_only=False)
    ok = pc.equal(table["status"], schema.OK).to_numpy(zero_copy_only=False)
    edges = np.arange(0, 310, 10, dtype=float)
    return {
        "languages": langs.most_common(12),
        "languages_other": sum(langs.values()) - sum(c for _, c in langs.most_common(12)),
        "caption_length_kept": histogram(lengths[ok], edges),
        "caption_length_dropped": histogram(lengths[~ok], edges),
        "entries": entries_section(output),
    }


def entries_section(output: str) -> dict | None:
    path = io.join(stage_folder(output, "balance"), "entry_counts.parquet")
    if not io.exists(path):
        return None
    table = io.read_parquet(path)
    before = table["count_before"].to_numpy()
    after = table["count_after"].to_numpy()
    texts = table["text"].to_pylist() if "text" in table.column_names else [None] * len(before)
    return {
        "before": rank_curve(before),
        "after": rank_curve(after),
        "matched_before": int(np.count_nonzero(before)),
        "matched_after": int(np.count_nonzero(after)),
        "pairs_before": int(before.sum()),
        "pairs_after": int(after.sum()),
        "top_before": top_entries(before, after, texts),
        "top_after": top_entries(after, before, texts),
        "t": _balance_t(output),
    }


def _balance_t(output: str) -> int | None:
    found = io.read_json(io.join(stage_folder(output, "balance"), "stats.json")) or {}
    return (found.get("config") or {}).get("t")


def rank_curve(counts: np.ndarray, points: int = 400) -> dict:
    """Counts sorted high to low at about `points` log-spaced ranks, and the head's cumulative share.

    The share at rank k is the fraction of all matches held by the k most frequent entries:
    MetaCLIP's curve, flat after balancing where the head no longer dominates.
    """
    ordered = np.sort(counts[counts > 0])[::-1]
    if not len(ordered):
        return {"ranks": [], "counts": [], "share": []}
    ranks = np.unique(np.geomspace(1, len(ordered), num=min(points, len(ordered))).astype(np.int64))
    share = np.cumsum(ordered, dtype=np.float64) / ordered.sum()
    return {"ranks": ranks.tolist(), "counts": ordered[ranks - 1].tolist(), "share": share[ranks - 1].tolist()}


def top_entries(by: np.ndarray, other: np.ndarray, texts: list) -> list[dict]:
    order = np.argsort(-by, kind="stable")[:TOP_ENTRIES]
    return [
        {"entry": int(i), "text": texts[i], "count": int(by[i]), "other": int(other[i])} for i in order if by[i] > 0
    ]


def entry_texts(output: str, ids: set[int]) -> dict[int, str]:
    """The strings of the given query-list entries, from balance's entry_counts.parquet."""
    path = io.join(stage_folder(output, "balance"), "entry_counts.parquet")
    if not ids or not io.exists(path):
        return {}
    table = io.read_parquet(path, columns=["entry", "text"])
    table = table.filter(pc.is_in(table["entry"], pa.array(sorted(ids), pa.int32())))
    return dict(zip(table["entry"].to_pylist(), table["text"].to_pylist(), strict=True))


# ---- download and images


def download_section(output: str, totals: dict | None) -> dict | None:
    folder = stage_folder(output, "download")
    sidecars = shard_sidecars(folder)
    if not sidecars:
        return None
    table = read_columns(sidecars.values(), ["url", "status", "error"])
    failed = table.filter(pc.not_equal(table["status"], schema.OK))
    return {
        "statuses": sorted(Counter(table["status"].to_pylist()).items(), key=lambda kv: -kv[1]),
        "bytes": (totals or {}).get("bytes", 0),
        "shards": len(sidecars),
        "throughput": throughput(folder, sorted(sidecars)),
        "hosts": failing_hosts(failed["url"].to_pylist(), failed["status"].to_pylist()),
    }


def throughput(folder: str, shard_ids: list[int]) -> dict:
    """Images stored over wall time, from when each shard finished (its marker's time) and its count."""
    points = []
    for shard_id in shard_ids:
        stats = shards.read_stats(folder, shard_id)
        finished = (stats.get("times") or {}).get("finished") or _mtime(shards.marker_path(folder, shard_id))
        if finished is not None:
            points.append((float(finished), int(stats.get("ok", 0)), float(stats.get("seconds", 0.0))))
    if not points:
        return {"seconds": [], "images": []}
    points.sort()
    start = min(t - seconds for t, _, seconds in points)
    seconds = [0.0] + [t - start for t, _, _ in points]
    images = np.cumsum([0] + [ok for _, ok, _ in points]).tolist()
    return {"seconds": seconds, "images": images}


def _mtime(path: str) -> float | None:
    fs, inner = io.fs_path(path)
    info = fs.info(inner)
    created = info.get("mtime") or info.get("LastModified") or info.get("updated")
    return created.timestamp() if hasattr(created, "timestamp") else created


def failing_hosts(urls: list, statuses: list) -> list[dict]:
    by_host: dict[str, Counter] = {}
    for url, status in zip(urls, statuses, strict=True):
        host = _host(url)
        by_host.setdefault(host, Counter())[status] += 1
    ranked = sorted(by_host.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))[:TOP_HOSTS]
    return [
        {"host": host, "failures": sum(reasons.values()), "reasons": reasons.most_common()} for host, reasons in ranked
    ]


def _host(url) -> str:
    try:
        return urlsplit(url or "").hostname or "(no host)"
    except ValueError:
        return "(unparseable)"


def images_section(output: str) -> dict | None:
    sidecars = shard_sidecars(stage_folder(output, "download"))
    if not sidecars:
        return None
    columns = ["status", "width", "height", "original_width", "original_height", "bytes"]
    table = read_columns(sidecars.values(), columns)
    table = table.filter(pc.equal(table["status"], schema.OK))
    if not table.num_rows:
        return None
    facts = {c: table[c].to_numpy(zero_copy_only=False).astype(np.float64) for c in columns[1:]}
    side_edges = np.arange(0, 2048 + 64, 64, dtype=float)
    ratio_edges = log_edges(0.25, 4.0, 32)
    with np.errstate(divide="ignore", invalid="ignore"):
        stored_ratio = facts["width"] / facts["height"]
        original_ratio = facts["original_width"] / facts["original_height"]
    return {
        "n": table.num_rows,
        "width": (histogram(facts["original_width"], side_edges), histogram(facts["width"], side_edges)),
        "height": (histogram(facts["original_height"], side_edges), histogram(facts["height"], side_edges)),
        "aspect": (histogram(_finite(original_ratio), ratio_edges), histogram(_finite(stored_ratio), ratio_edges)),
        "bytes": histogram(facts["bytes"], log_edges(1_000, 10_000_000)),
    }


def _finite(values: np.ndarray) -> np.ndarray:
    return values[np.isfinite(values)]


# ---- thumbnails


def thumbnails(folder: str, wanted: dict[int, set[str]]) -> dict[str, str | None]:
    """Downscaled JPEG data URIs of the wanted samples, by uid: {shard id: uids} in `folder`'s tars."""
    found = {}
    for shard_id, uids in sorted(wanted.items()):
        if not uids:
            continue
        tar_path = io.join(folder, f"{shards.shard_name(shard_id)}.tar")
        for key, members in shards.iter_tar(tar_path):
            if key in uids:
                image = next((members[e] for e in IMAGE_EXTENSIONS if e in members), None)
                if image is not None:
                    found[key] = thumbnail_uri(image)
    return found


def thumbnail_uri(data: bytes) -> str | None:
    """A small JPEG of an encoded image as a data: URI; None when the bytes do not decode."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(BytesIO(data)) as image:
            rgb = image.convert("RGB")
            rgb.thumbnail((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))
            buffer = BytesIO()
            rgb.save(buffer, format="JPEG", quality=70)
    except (UnidentifiedImageError, OSError, ValueError):
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


# ---- dedup


def dedup_section(output: str, totals: dict | None) -> dict | None:
    folder = stage_folder(output, "dedup")
    path = io.join(folder, "clusters.parquet")
    if totals is None or not io.exists(path):
        return None
    clusters = io.read_parquet(path)
    members = clusters.filter(pc.is_valid(clusters["cluster"]))
    sizes = members.group_by("cluster").aggregate([("uid", "count"), ("distance", "max")])
    size_counts = Counter(sizes["uid_count"].to_pylist())
    eval_rows = clusters.filter(pc.equal(clusters["status"], "eval_overlap"))
    shown = _clusters_to_show(sizes)
    rows = members.filter(pc.is_in(members["cluster"], pa.array(shown, pa.string()))).to_pylist()
    return {
        "dropped": totals["dropped"],
        "size_histogram": sorted(size_counts.items()),
        "clusters": len(sizes),
        "eval_overlaps": eval_rows.slice(0, 20).to_pylist(),
        "eval_overlap_count": eval_rows.num_rows,
        "shown": [_cluster_view(cluster, rows) for cluster in shown],
    }


def _clusters_to_show(sizes: pa.Table) -> list[str]:
    """The clusters with near duplicates (largest distance first), then the largest ones."""
    ordered = sizes.sort_by([("distance_max", "descending"), ("uid_count", "descending"), ("cluster", "ascending")])
    return ordered["cluster"].to_pylist()[:CLUSTERS_SHOWN]


def _cluster_view(cluster: str, rows: list[dict]) -> dict:
    mine = [row for row in rows if row["cluster"] == cluster]
    # The survivor first, then its duplicates by distance.
    mine.sort(key=lambda row: (row["status"] != schema.OK, row["distance"] or 0, row["uid"]))
    return {"survivor": cluster, "members": mine}


# ---- samples


def kept_samples(output: str, rng: np.random.Generator) -> tuple[str, list[dict]]:
    """A random grid of kept samples from the last image stage present: final, else raw."""
    for stage in ("reshard", "download"):
        folder = stage_folder(output, stage)
        sidecars = shard_sidecars(folder)
        if sidecars:
            table = read_columns(sidecars.values(), ["uid", "caption", "entries", "status", "width", "height"])
            shard_of = np.repeat(list(sidecars), [_rows(p) for p in sidecars.values()])
            ok = pc.equal(table["status"], schema.OK).to_numpy(zero_copy_only=False)
            picks = _pick(np.flatnonzero(ok), SAMPLE_GRID, rng)
            rows = table.take(pa.array(picks, pa.int64())).to_pylist()
            for row, index in zip(rows, picks, strict=True):
                row["shard"] = int(shard_of[index])
            return stage, rows
    return "", []


def _rows(path: str) -> int:
    return io.parquet_rows(path)


def _pick(indices: np.ndarray, count: int, rng: np.random.Generator) -> list[int]:
    if len(indices) <= count:
        return indices.tolist()
    return sorted(rng.choice(indices, size=count, replace=False).tolist())


def dropped_samples(output: str, rng: np.random.Generator) -> list[dict]:
    """A few dropped rows per (stage, reason): captions for text stages, URL and error for download."""
    groups = []
    for stage in ("ingest", "balance"):
        _, dropped = text_parts(output, stage)
        if dropped:
            groups += _by_reason(stage, read_columns(dropped, ["uid", "url", "caption", "status", "error"]), rng)
    sidecars = shard_sidecars(stage_folder(output, "download"))
    if sidecars:
        table = read_columns(sidecars.values(), ["uid", "url", "caption", "status", "error"])
        groups += _by_reason("download", table.filter(pc.not_equal(table["status"], schema.OK)), rng)
    return groups


def _by_reason(stage: str, table: pa.Table, rng: np.random.Generator) -> list[dict]:
    statuses = np.asarray(table["status"].to_pylist(), dtype=object)
    groups = []
    for reason in sorted(set(statuses.tolist())):
        indices = np.flatnonzero(statuses == reason)
        rows = table.take(pa.array(_pick(indices, DROPPED_PER_REASON, rng), pa.int64())).to_pylist()
        groups.append(
            {
                "stage": stage,
                "reason": reason,
                "count": len(indices),
                "rows": rows,
                "meaning": schema.STATUSES.get(reason, ""),
            }
        )
    return groups
