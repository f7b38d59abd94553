"""Benchmark: wit's pHash path against imagehash on files: images/s and agreement of the bits.

    python bench/phash.py ../shared/data/coco-mini [--repeat 3]

Ours: `wit_pipeline.download.hashing.phash_hex` on the file's bytes (decoded as img2dataset
decodes, then `phash_pixels`: OpenCV's grey, area average to 32 x 32, DCT). Peer:
`imagehash.phash(Image.open(path))`, the call a user would make on the written file. The two
reduce to 32 x 32 differently (area average against Pillow's LANCZOS), so the bits are not always
equal: printed are the share identical, the distribution of the bits apart and the largest.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

import imagehash
from PIL import Image

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from wit_pipeline.download.hashing import phash_hex  # noqa: E402

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
    apart = [bin(int(a, 16) ^ int(b, 16)).count("1") for a, b in zip(ours, theirs, strict=True)]

    ours_seconds = best_of(args.repeat, lambda: [phash_hex(data) for data in stored])
    theirs_seconds = best_of(args.repeat, lambda: [_peer(path) for path in paths])
    n = len(paths)
    megabytes = sum(map(len, stored)) / 1e6
    print(f"machine: {os.cpu_count()} cores (shared with other work while measuring); {n} images, {megabytes:.1f} MB")
    counts = {bits: apart.count(bits) for bits in sorted(set(apart))}
    print(f"identical to imagehash.phash: {apart.count(0)}/{n} ({apart.count(0) / n:.0%}); bits apart: {counts}")
    print(f"wit phash_hex(bytes):              {n / ours_seconds:8.1f} images/s")
    print(f"imagehash.phash(Image.open(path)): {n / theirs_seconds:8.1f} images/s")
    print(f"ratio (wit / imagehash): {theirs_seconds / ours_seconds:.2f}")


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
