"""Benchmark: wit's pHash path against imagehash on files: images/s and agreement of the bits.

    python bench/phash.py ../shared/data/coco-mini [--repeat 3]

Ours: `wit_pipeline.download.hashing.phash_hex` on the file's bytes (decoded as img2dataset
decodes, then `phash_pixels`: OpenCV's grey, area average to 32 x 32, DCT). Peer:
`imagehash.phash(Image.open(path))`, the call a user would make on the written file. The two
reduce to 32 x 32 differently (area average against Pillow's LANCZOS), so the bits are not always
equal: printed are the share identical, the distribution of the bits apart and the largest.
Both run on one core (OpenCV's thread pool off, as in the download workers).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import sys
import time

import imagehash
from PIL import Image

from wit_pipeline.download.hashing import phash_hex

SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="a folder of images (searched recursively)")
    parser.add_argument("--repeat", type=int, default=5, help="timed pass pairs over the images")
    args = parser.parse_args()
    import cv2

    cv2.setNumThreads(1)  # per core, as imagehash runs and as the download workers set it

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

    # Interleaved passes (ours, theirs, ours, ...): on a shared machine the load moves between
    # passes, so each pair gives a ratio and the median and spread of the ratios are reported.
    ours_times, theirs_times = [], []
    for _ in range(args.repeat):
        ours_times.append(timed(lambda: [phash_hex(data) for data in stored]))
        theirs_times.append(timed(lambda: [_peer(path) for path in paths]))
    ratios = sorted(t / o for o, t in zip(ours_times, theirs_times, strict=True))
    n = len(paths)
    megabytes = sum(map(len, stored)) / 1e6
    counts = {bits: apart.count(bits) for bits in sorted(set(apart))}
    print(f"machine: {os.cpu_count()} cores (shared with other work while measuring); {n} images, {megabytes:.1f} MB")
    print(f"identical to imagehash.phash: {apart.count(0)}/{n} ({apart.count(0) / n:.0%}); bits apart: {counts}")
    print(f"wit phash_hex(bytes):              {n / min(ours_times):8.1f} images/s (best pass)")
    print(f"imagehash.phash(Image.open(path)): {n / min(theirs_times):8.1f} images/s (best pass)")
    print(f"ratio (wit / imagehash) per pass pair: {', '.join(f'{r:.2f}' for r in ratios)}")
    print(f"median ratio: {statistics.median(ratios):.2f}")


def _peer(path: pathlib.Path) -> str:
    with Image.open(path) as image:
        return str(imagehash.phash(image))


def timed(work) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
