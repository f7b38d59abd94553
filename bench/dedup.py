"""Benchmark: wit's near-duplicate search (local engine) against brute force, at 1M-10M rows.

    python bench/dedup.py --rows 1000000 10000000 --brute-force-rows 100000 \
        --real ../shared/data/coco-mini

For each size, in a fresh process (so peak memory is that run's): random 64-bit pHashes with
planted near-duplicate pairs (1..r bits apart) and planted decoys (r+1 and r+2 bits apart, which
must stay apart), run through `dedup_rows` (the exact code `wit dedup` runs after reading the
sidecars), and print seconds, peak RSS, recall of the planted pairs and false merges.
Brute force: every pair's Hamming distance, in numpy blocks, on `--brute-force-rows` hashes; the
pair sets must be equal. Real mix: pHashes of real photos and their re-encoded / resized /
grayscale / bordered copies, hidden among a million random hashes.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pathlib
import resource
import subprocess
import sys
import time

import numpy as np

from wit_pipeline.config import DedupConfig
from wit_pipeline.dedup import bands
from wit_pipeline.dedup.decisions import DedupRows, dedup_rows
from wit_pipeline.io import join, makedirs


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def random_hex(rng, n: int, width: int) -> np.ndarray:
    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    return digits[rng.integers(0, 16, size=(n, width), dtype=np.uint8)].view(f"S{width}").ravel()


def flip_random_bits(rng, values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Each value with counts[i] distinct random bits flipped, vectorised."""
    # Random order of 64 bit positions per row; flip the first counts[i] of them.
    keys = rng.random((len(values), 64))
    order = np.argsort(keys, axis=1)
    take = np.arange(64)[None, :] < counts[:, None]
    masks = np.where(take, np.uint64(1) << order.astype(np.uint64), np.uint64(0))
    return values ^ np.bitwise_or.reduce(masks, axis=1)


def synthetic_rows(n: int, planted: int, decoys: int, radius: int, seed: int = 0):
    """n rows: random hashes, `planted` partners within radius, `decoys` partners beyond it."""
    rng = np.random.default_rng(seed)
    n_random = n - planted - decoys
    base = rng.integers(0, 2**64, size=n_random, dtype=np.uint64)
    sources = rng.choice(n_random, size=planted + decoys, replace=False)
    near_bits = rng.integers(1, radius + 1, size=planted)
    far_bits = rng.integers(radius + 1, radius + 3, size=decoys)
    partners = flip_random_bits(rng, base[sources], np.concatenate([near_bits, far_bits]))
    phash = np.concatenate([base, partners])
    rows = DedupRows(
        uid=random_hex(rng, n, 32),
        shard=(np.arange(n) // 10_000).astype(np.int32),
        sha256=random_hex(rng, n, 64),
        phash=phash,
        has_phash=np.ones(n, dtype=bool),
        area=rng.integers(1, 1_000_000, size=n),
    )
    planted_pairs = (sources[:planted], n_random + np.arange(planted))
    decoy_pairs = (sources[planted:], n_random + planted + np.arange(decoys))
    return rows, planted_pairs, decoy_pairs


def run_size(n: int, planted: int, decoys: int, radius: int, band_count: int | None) -> dict:
    rows, (pa, pb), (da, db) = synthetic_rows(n, planted, decoys, radius)
    rss_before = peak_rss_mb()
    started, cpu_started = time.perf_counter(), time.process_time()
    result = dedup_rows(rows, DedupConfig(radius=radius, bands=band_count))
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    same = result.survivor[pa] == result.survivor[pb]
    decoy_merged = result.survivor[da] == result.survivor[db]
    dropped = np.flatnonzero(result.status != "ok")
    # Merges not explained by a planted pair: accidental random pairs within r (verified exact).
    explained = np.zeros(n, dtype=bool)
    explained[pa] = explained[pb] = True
    unplanted = dropped[~explained[dropped]]
    beyond = result.distance[dropped] > radius
    return {
        "rows": n,
        "bands": result.bands,
        "seconds": round(seconds, 2),
        # CPU time of this process: less disturbed than wall time by other work on a shared machine.
        "cpu_seconds": round(cpu_seconds, 2),
        "peak_rss_mb": round(peak_rss_mb()),
        "peak_rss_mb_before_dedup": round(rss_before),
        "planted_pairs": planted,
        "recall": float(same.mean()),
        "decoys_merged": int(decoy_merged.sum()),
        "unplanted_merges": int(len(unplanted)),
        "dropped_farther_than_r_from_survivor": int(beyond.sum()),
        "near_pairs_verified": result.near_pairs,
    }


def brute_force_pairs(hashes: np.ndarray, radius: int, block: int = 2048) -> set[tuple[int, int]]:
    found = set()
    for start in range(0, len(hashes), block):
        chunk = hashes[start : start + block]
        distance = np.bitwise_count(chunk[:, None] ^ hashes[None, start:])
        i, j = np.nonzero(distance <= radius)
        keep = j > i  # j indexes hashes[start:], i the chunk: pairs with i < j only
        found.update(zip((i[keep] + start).tolist(), (j[keep] + start).tolist(), strict=True))
    return found


def compare_brute_force(n: int, radius: int) -> dict:
    rows, _, _ = synthetic_rows(n, planted=n // 100, decoys=n // 100, radius=radius, seed=1)
    hashes = np.unique(rows.phash)
    started = time.perf_counter()
    left, right, _ = bands.near_pairs(hashes, radius)
    banded_seconds = time.perf_counter() - started
    started = time.perf_counter()
    brute = brute_force_pairs(hashes, radius)
    brute_seconds = time.perf_counter() - started
    banded = set(zip(left.tolist(), right.tolist(), strict=True))
    return {
        "rows": n,
        "banded_seconds": round(banded_seconds, 3),
        "brute_force_seconds": round(brute_seconds, 2),
        "speedup": round(brute_seconds / banded_seconds, 1),
        "pairs_banded": len(banded),
        "pairs_brute_force": len(brute),
        "same_pairs": banded == brute,
    }


def real_mix(folder: str, radius: int, random_rows: int) -> dict:
    """Real photos, their web-style copies, hidden among random hashes: which copies merge."""
    from PIL import Image, ImageOps

    from wit_pipeline.download.hashing import phash_hex, phash_to_int

    def encode(image, quality=90):
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, "JPEG", quality=quality)
        return buffer.getvalue()

    variants = {
        "half": lambda im: encode(im.resize((im.width // 2, im.height // 2), Image.LANCZOS)),
        "quality50": lambda im: encode(im, 50),
        "grayscale": lambda im: encode(ImageOps.grayscale(im)),
        "border1": lambda im: encode(ImageOps.expand(im, border=1, fill="black")),
        "crop3": lambda im: encode(
            im.crop(
                (
                    round(im.width * 0.03),
                    round(im.height * 0.03),
                    im.width - round(im.width * 0.03),
                    im.height - round(im.height * 0.03),
                )
            )
        ),
    }
    paths = sorted(pathlib.Path(folder).rglob("*.jpg"))
    photo_hash, variant_hash, variant_name, variant_photo = [], [], [], []
    for index, path in enumerate(paths):
        data = path.read_bytes()
        photo_hash.append(phash_to_int(phash_hex(data)))
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            for name, make in variants.items():
                variant_hash.append(phash_to_int(phash_hex(make(image))))
                variant_name.append(name)
                variant_photo.append(index)
    rng = np.random.default_rng(2)
    photos = np.array(photo_hash, dtype=np.uint64)
    copies = np.array(variant_hash, dtype=np.uint64)
    noise = rng.integers(0, 2**64, size=random_rows, dtype=np.uint64)
    phash = np.concatenate([photos, copies, noise])
    n = len(phash)
    rows = DedupRows(
        uid=random_hex(rng, n, 32),
        shard=np.zeros(n, np.int32),
        sha256=random_hex(rng, n, 64),
        phash=phash,
        has_phash=np.ones(n, bool),
        area=np.zeros(n, np.int64),
    )
    started = time.perf_counter()
    result = dedup_rows(rows, DedupConfig(radius=radius))
    seconds = time.perf_counter() - started
    photo_of_copy = np.array(variant_photo)
    copy_rows = len(photos) + np.arange(len(copies))
    merged = result.survivor[copy_rows] == result.survivor[photo_of_copy]
    distance = bands.hamming(copies, photos[photo_of_copy])
    by_variant = {}
    for name in variants:
        mask = np.array(variant_name) == name
        by_variant[name] = {
            "copies": int(mask.sum()),
            "within_r": int((distance[mask] <= radius).sum()),
            "merged": int(merged[mask].sum()),
            "max_distance": int(distance[mask].max()),
        }
    photo_survivors = result.survivor[: len(photos)]
    return {
        "photos": len(photos),
        "random_rows": random_rows,
        "seconds": round(seconds, 2),
        "variants": by_variant,
        "recall_of_copies_within_r": float(merged[distance <= radius].mean()),
        "distinct_photos_merged": int(len(photos) - len(np.unique(photo_survivors))),
        "random_rows_merged_with_photos": int(
            np.isin(result.survivor[len(photos) + len(copies) :], np.arange(len(photos))).sum()
        ),
    }


def end_to_end(n: int, radius: int, rows_per_shard: int = 10_000) -> dict:
    """`stage.dedup_folder` from Parquet sidecars on disk: reading included, outputs written."""
    import shutil
    import tempfile

    import pyarrow as pa
    import pyarrow.parquet as pq

    from wit_pipeline import shards
    from wit_pipeline.dedup import stage

    rows, _, _ = synthetic_rows(n, n // 100, 0, radius, seed=3)
    folder = tempfile.mkdtemp(prefix="wit-bench-dedup-")
    raw, out = f"{folder}/raw", f"{folder}/dedup"
    makedirs(raw)
    phash_hex = np.char.mod("%016x", rows.phash.astype(object)).astype("S16")
    for shard_id, start in enumerate(range(0, n, rows_per_shard)):
        part = slice(start, start + rows_per_shard)
        table = pa.table(
            {
                "uid": rows.uid[part].astype(str),
                "status": np.full(len(rows.uid[part]), "ok"),
                "sha256": rows.sha256[part].astype(str),
                "phash": phash_hex[part].astype(str),
                "original_width": rows.area[part].astype(np.int32),
                "original_height": np.ones(len(rows.uid[part]), np.int32),
            }
        )
        pq.write_table(table, join(raw, f"{shards.shard_name(shard_id)}.parquet"))
        shards.mark_done(raw, shard_id, {"rows": table.num_rows})
    del rows
    started = time.perf_counter()
    stats = stage.dedup_folder(raw, out, DedupConfig(radius=radius))
    seconds = time.perf_counter() - started
    shutil.rmtree(folder)
    return {
        "rows": n,
        "shards": -(-n // rows_per_shard),
        "seconds": round(seconds, 2),
        "kept": stats["kept"],
        "near_duplicates": stats["near_duplicates"],
        "planted": n // 100,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--radius", type=int, default=4)
    parser.add_argument("--bands", type=int, help="fixed band count (default: chosen per size)")
    parser.add_argument("--planted-per-million", type=int, default=10_000)
    parser.add_argument("--brute-force-rows", type=int, default=100_000)
    parser.add_argument("--real", help="a folder of real JPEGs for the real-image mix")
    parser.add_argument(
        "--end-to-end",
        type=int,
        default=0,
        help="also time `wit dedup`'s local run from sidecars on disk at this many rows",
    )
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: one size, this process
    args = parser.parse_args()

    if args.one:
        planted = args.one * args.planted_per_million // 1_000_000
        print(json.dumps(run_size(args.one, planted, planted // 10, args.radius, args.bands)))
        return

    print(f"machine: {os.cpu_count()} cores (shared with other work while measuring)")
    results = []
    for n in args.rows:
        command = [
            sys.executable,
            __file__,
            "--one",
            str(n),
            "--radius",
            str(args.radius),
            "--planted-per-million",
            str(args.planted_per_million),
        ]
        if args.bands:
            command += ["--bands", str(args.bands)]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results.append(json.loads(output.strip().splitlines()[-1]))
        print("dedup", json.dumps(results[-1]), flush=True)
    for smaller, larger in zip(results, results[1:], strict=False):
        print(
            f"growth {smaller['rows']:,} -> {larger['rows']:,} rows (x{larger['rows'] / smaller['rows']:g}): "
            f"time x{larger['seconds'] / smaller['seconds']:.1f}, "
            f"CPU time x{larger['cpu_seconds'] / smaller['cpu_seconds']:.1f}, "
            f"peak RSS x{larger['peak_rss_mb'] / smaller['peak_rss_mb']:.1f}"
        )
    if args.brute_force_rows:
        print("brute force", json.dumps(compare_brute_force(args.brute_force_rows, args.radius)), flush=True)
    if args.end_to_end:
        print("end to end", json.dumps(end_to_end(args.end_to_end, args.radius)), flush=True)
    if args.real:
        print("real mix", json.dumps(real_mix(args.real, args.radius, 1_000_000)), flush=True)


if __name__ == "__main__":
    main()
