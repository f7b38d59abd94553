"""Near-duplicate search on 64-bit pHashes without comparing every pair.

The pigeonhole principle: split the 64 bits into `m` bands; two hashes within Hamming distance
`r` differ in at most `r` bands, so they agree exactly on at least `m - r` of them. Grouping the
hashes by every choice of `m - r` bands (a "key") therefore puts every pair within `r` into at
least one common bucket; only pairs inside a bucket are verified with the exact distance.

`m = r + 1` is the classic form (one band must agree). Its keys are short (13 bits for r = 4),
so on millions of hashes every bucket holds thousands of unrelated hashes and verification goes
quadratic. More bands give longer keys (m = 7, r = 4: any 3 of 7 bands, about 27 bits) at the
price of more keys per hash (C(7, 3) = 35); `choose_bands` picks the cheapest `m` for the input
size. This is the scheme of Manku et al., "Detecting near-duplicates for web crawling" (2007).

A bucket whose key is shared by more than `max_bucket` distinct hashes (blank or near-blank
images share most bits) is not verified pairwise: its hashes, in ascending order, are compared
only with their next `window` neighbours, and the bucket is reported. Work stays bounded, at
the price of recall inside such buckets, and the report says where that price was paid.

Everything here works on numpy arrays of distinct uint64 hashes; the engines call it.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

HASH_BITS = 64
# Cost of verifying one candidate pair relative to sorting one hash (see choose_bands).
CANDIDATE_COST = 0.5


def popcount(values: np.ndarray) -> np.ndarray:
    """Set bits per element of a uint64 array."""
    return np.bitwise_count(values).astype(np.int8)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return popcount(np.bitwise_xor(a, b))


def band_layout(bands: int) -> list[tuple[int, int]]:
    """(shift, width) of each band: 64 bits split as evenly as possible, high bits first."""
    widths = [HASH_BITS // bands + (1 if i < HASH_BITS % bands else 0) for i in range(bands)]
    layout, end = [], HASH_BITS
    for width in widths:
        end -= width
        layout.append((end, width))
    return layout


def key_combinations(bands: int, radius: int) -> list[tuple[int, ...]]:
    """Every choice of `bands - radius` bands: a pair within `radius` agrees on one of them."""
    return list(itertools.combinations(range(bands), bands - radius))


def choose_bands(distinct_hashes: int, radius: int) -> int:
    """The band count with the least estimated work for this many distinct hashes.

    Work per key combination is one sort of every hash plus the candidate pairs that share a key
    by chance, about n^2 / 2^(key bits + 1) for random hashes. Measured on 10M hashes, a
    candidate pair costs about half as much as a hash's share of a sort (bench/dedup.py).
    """
    n = max(distinct_hashes, 2)
    best, best_cost = radius + 1, math.inf
    for bands in range(radius + 1, min(HASH_BITS, radius + 12) + 1):
        key_bits = (bands - radius) * HASH_BITS / bands
        combos = math.comb(bands, radius)
        cost = combos * (n + CANDIDATE_COST * n * n / 2 ** (key_bits + 1))
        if cost < best_cost:
            best, best_cost = bands, cost
    return best


def band_keys(hashes: np.ndarray, layout: list[tuple[int, int]], combo: tuple[int, ...]) -> np.ndarray:
    """The key of every hash for one combination: its chosen bands' bits, concatenated."""
    keys = np.zeros(len(hashes), dtype=np.uint64)
    for band in combo:
        shift, width = layout[band]
        mask = np.uint64((1 << width) - 1)
        keys = (keys << np.uint64(width)) | ((hashes >> np.uint64(shift)) & mask)
    return keys


@dataclass
class HugeBucket:
    """A band-key bucket too large to verify pairwise; reported in the stats."""

    combination: int
    key: int
    size: int

    def to_dict(self) -> dict:
        return {"combination": self.combination, "key": f"{self.key:x}", "size": self.size}


def pairs_within_runs(
    hashes: np.ndarray,
    run_starts: np.ndarray,
    radius: int,
    max_bucket: int,
    window: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Verified pairs (i < j as indices into `hashes`) inside each run of `hashes`.

    `hashes` is laid out run after run (one run per bucket), ascending inside a run; `run_starts`
    holds each run's first index. A run of at most `max_bucket` hashes yields every pair within
    `radius`; a longer one only pairs each hash with its next `window` neighbours. Loops over the
    offset inside a run, not over pairs, so a million small buckets cost a few array passes.
    """
    n = len(hashes)
    lengths = np.diff(np.append(run_starts, n))
    # Per element: how far ahead inside its run it may look (to the run's end, or `window`).
    limit = np.repeat(run_starts + lengths - 1, lengths) - np.arange(n)
    huge = lengths > max_bucket
    if huge.any():
        limit = np.minimum(limit, np.repeat(np.where(huge, window, n), lengths))
    active = np.flatnonzero(limit > 0)
    left_parts, right_parts = [], []
    step = 1
    while len(active):
        partner = active + step
        close = hamming(hashes[active], hashes[partner]) <= radius
        left_parts.append(active[close])
        right_parts.append(partner[close])
        step += 1
        active = active[limit[active] >= step]
    if not left_parts:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    return np.concatenate(left_parts), np.concatenate(right_parts)


def near_pairs(
    hashes: np.ndarray,
    radius: int,
    bands: int | None = None,
    max_bucket: int = 1024,
    window: int = 128,
) -> tuple[np.ndarray, np.ndarray, list[HugeBucket]]:
    """All pairs of `hashes` (distinct, ascending uint64) within `radius`, as index arrays i < j.

    Pairs are unique. Also returns the huge buckets met (see the module docstring).
    """
    n = len(hashes)
    empty = np.zeros(0, dtype=np.int64)
    if n < 2:
        return empty, empty, []
    bands = bands or choose_bands(n, radius)
    layout = band_layout(bands)
    position_bits = max(1, int(n - 1).bit_length())
    positions = np.arange(n, dtype=np.uint64)
    found, huge = [], []
    for number, combo in enumerate(key_combinations(bands, radius)):
        keys = band_keys(hashes, layout, combo)
        key_bits = sum(layout[b][1] for b in combo)
        order, sorted_keys = _sort_by_key_then_position(keys, positions, key_bits, position_bits)
        starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
        lengths = np.diff(np.append(starts, n))
        shared = lengths > 1
        if not shared.any():
            continue
        # Only buckets of two or more can hold pairs: drop the singletons before pairing.
        members = np.repeat(shared, lengths)
        kept_order = order[members]
        kept_starts = np.r_[0, np.cumsum(lengths[shared])[:-1]]
        too_big = lengths > max_bucket
        for start, length in zip(starts[too_big], lengths[too_big], strict=True):
            huge.append(HugeBucket(number, int(sorted_keys[start]), int(length)))
        left, right = pairs_within_runs(hashes[kept_order], kept_starts, radius, max_bucket, window)
        found.append(kept_order[left].astype(np.int64) * n + kept_order[right].astype(np.int64))
    if not found:
        return empty, empty, huge
    # The same pair can share several keys: keep it once. Inside a run positions ascend, so i < j.
    packed = np.unique(np.concatenate(found))
    return packed // n, packed % n, huge


def _sort_by_key_then_position(keys, positions, key_bits, position_bits):
    """Indices that sort by key, then by position (= by hash, as `hashes` ascend), and the sorted keys."""
    if key_bits + position_bits <= HASH_BITS:
        # One uint64 sort of (key, position) packed together: much faster than a lexsort, and
        # the sorted keys come out of it without a gather.
        packed = np.sort((keys << np.uint64(position_bits)) | positions)
        order = (packed & np.uint64((1 << position_bits) - 1)).astype(np.int64)
        return order, packed >> np.uint64(position_bits)
    order = np.lexsort((positions, keys))
    return order, keys[order]


def cross_pairs(
    queries: np.ndarray,
    references: np.ndarray,
    radius: int,
    bands: int | None = None,
    max_bucket: int = 1024,
    window: int = 128,
) -> tuple[np.ndarray, np.ndarray, list[HugeBucket]]:
    """Pairs (query index, reference index) within `radius`; both arrays distinct and ascending.

    Used for decontamination: the references (an evaluation set) are few, so only the queries
    that share a key with some reference take part in each combination's pairing.
    """
    empty = np.zeros(0, dtype=np.int64)
    if len(queries) == 0 or len(references) == 0:
        return empty, empty, []
    bands = bands or choose_bands(len(queries) + len(references), radius)
    layout = band_layout(bands)
    candidates = np.zeros(len(queries), dtype=bool)
    for combo in key_combinations(bands, radius):
        candidates |= np.isin(band_keys(queries, layout, combo), band_keys(references, layout, combo))
    subset = np.flatnonzero(candidates)
    merged = np.concatenate([queries[subset], references])
    order = np.argsort(merged, kind="stable")
    left, right, huge = near_pairs(merged[order], radius, bands, max_bucket, window)
    left, right = order[left], order[right]
    # Keep query-reference pairs only; a query equal to a reference sorts first (stable), so
    # (left, right) can be either way round.
    n_sub = len(subset)
    forward = (left < n_sub) & (right >= n_sub)
    backward = (right < n_sub) & (left >= n_sub)
    query_side = np.concatenate([left[forward], right[backward]])
    reference_side = np.concatenate([right[forward], left[backward]]) - n_sub
    return subset[query_side], reference_side, huge
