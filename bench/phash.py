"""Benchmark: wit's pHash path against imagehash on decoded files: identical bits, images/s.

    python bench/phash.py ../shared/data/coco-mini [--repeat 3]

Ours: `wit_pipeline.download.hashing.phash_hex` on the stored bytes already in memory (what the
download stage does after writing an image). Peer: `imagehash.phash(Image.open(path))`, the call
a user would make on the written file. Every image must give the same 64 bits.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

import imagehash
from PIL import Image

from wit_pipeline.download.hashing import phash_hex

SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="a folder of images (searched recursively)")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes over the images (best is reported)")
    args = parser.parse_args()

    paths = sorted(p for p in pathlib.Path(args.folder).rglob("*") if p.suffix.lower() in SUFFIXES)
    if not paths:
        sys.exit(f"no images under {args.folder}")
    stored = [p.read_bytes() for p in paths]

    ours = [phash_hex(data) for data in stored]
    theirs = []
    for path in paths:
        with Image.open(path) as image:
            theirs.append(str(imagehash.phash(image)))
    mismatches = [str(p) for p, a, b in zip(paths, ours, theirs, strict=True) if a != b]

    ours_seconds = best_of(args.repeat, lambda: [phash_hex(data) for data in stored])
    theirs_seconds = best_of(args.repeat, lambda: [_peer(path) for path in paths])
    n = len(paths)
    megabytes = sum(map(len, stored)) / 1e6
    print(f"machine: {os.cpu_count()} cores (shared with other work while measuring); {n} images, {megabytes:.1f} MB")
    print(f"identical bits: {n - len(mismatches)}/{n}" + (f"; mismatches: {mismatches[:5]}" if mismatches else ""))
    print(f"wit phash_hex(bytes):              {n / ours_seconds:8.1f} images/s")
    print(f"imagehash.phash(Image.open(path)): {n / theirs_seconds:8.1f} images/s")
    print(f"ratio (wit / imagehash): {theirs_seconds / ours_seconds:.2f}")
    if mismatches:
        sys.exit(1)


def _peer(path: pathlib.Path) -> str:
    with Image.open(path) as image:
        return str(imagehash.phash(image))


def best_of(repeat: int, work) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


if __name__ == "__main__":
    main()
