"""The banded near-pair search against brute force, the huge-bucket guard and union-find."""

from __future__ import annotations

import numpy as np
import pytest

from wit_pipeline.dedup import bands, clusters


def flip_bits(rng, values: np.ndarray, count: int) -> np.ndarray:
    """Each value with `count` distinct random bits flipped."""
    out = values.copy()
    for i in range(len(out)):
        for bit in rng.choice(64, size=count, replace=False):
            out[i] ^= np.uint64(1) << np.uint64(bit)
    return out


def planted_hashes(seed=0, n=3000):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 2**64, size=n, dtype=np.uint64)
    near = [flip_bits(rng, base[k * 40 : k * 40 + 40], k) for k in range(8)]  # distances 0..7
    return np.unique(np.concatenate([base, *near]))


def brute_force_pairs(hashes, radius):
    distance = bands.popcount(hashes[:, None] ^ hashes[None, :])
    i, j = np.nonzero(np.triu(distance <= radius, k=1))
    return set(zip(i.tolist(), j.tolist(), strict=True))


@pytest.mark.parametrize("band_count", [None, 5, 6, 7, 9])
def test_near_pairs_equal_brute_force(band_count):
    hashes = planted_hashes()
    left, right, huge = bands.near_pairs(hashes, 4, band_count)
    found = set(zip(left.tolist(), right.tolist(), strict=True))
    expected = brute_force_pairs(hashes, 4)
    assert found == expected
    # Planted at 1..4 bits: 4 x 40 pairs; distance 0 collapsed by unique; 5..7 bits must not join.
    assert len(expected) >= 160
    assert huge == []


def test_band_layout_covers_every_bit_once():
    for count in range(5, 12):
        covered = 0
        for shift, width in bands.band_layout(count):
            mask = ((1 << width) - 1) << shift
            assert covered & mask == 0
            covered |= mask
        assert covered == 2**64 - 1


def test_more_rows_choose_more_bands():
    assert bands.choose_bands(10_000, 4) == 5
    assert bands.choose_bands(1_000_000, 4) > 5
    assert bands.choose_bands(10_000_000, 4) >= bands.choose_bands(1_000_000, 4)


def test_huge_bucket_is_reported_and_bounded():
    rng = np.random.default_rng(1)
    # 4000 hashes agreeing on their top 52 bits (near-blank images do this): every key but the
    # lowest band's is one bucket of 4000, and the lowest band is distinct per hash.
    low = rng.choice(2**12, size=4000, replace=False).astype(np.uint64)
    hashes = np.sort(np.uint64(0xABCDEF0123456) << np.uint64(12) | low)
    left, right, huge = bands.near_pairs(hashes, 4, bands=5, max_bucket=1000, window=8)
    assert len(huge) == 4 and all(bucket.size == 4000 for bucket in huge)
    # Bounded: each hash meets its next 8 neighbours only, not all 4000.
    assert len(left) <= 4000 * 8
    # What it finds is true, and recall is lost only inside the reported buckets.
    assert (bands.hamming(hashes[left], hashes[right]) <= 4).all()
    assert len(brute_force_pairs(hashes, 4)) > len(left)
    adjacent = np.flatnonzero(bands.hamming(hashes[:-1], hashes[1:]) <= 4)
    found = set(zip(left.tolist(), right.tolist(), strict=True))
    assert set(zip(adjacent.tolist(), (adjacent + 1).tolist(), strict=True)) <= found


def test_cross_pairs_equal_brute_force():
    hashes = planted_hashes(seed=3, n=2000)
    rng = np.random.default_rng(4)
    references = np.unique(
        np.concatenate([flip_bits(rng, hashes[:50], 3), flip_bits(rng, hashes[50:100], 6), hashes[100:110]])
    )
    query, reference, _ = bands.cross_pairs(hashes, references, 4)
    found = set(zip(query.tolist(), reference.tolist(), strict=True))
    distance = bands.popcount(hashes[:, None] ^ references[None, :])
    expected = set(zip(*[a.tolist() for a in np.nonzero(distance <= 4)], strict=True))
    assert found == expected
    assert len({q for q, _ in found}) >= 60


def test_chain_becomes_one_component():
    # 0~1, 1~2, 3 alone, 4~5: labels are the smallest member.
    labels = clusters.connected_components(6, np.array([1, 2, 5]), np.array([0, 1, 4]))
    assert labels.tolist() == [0, 0, 0, 3, 4, 4]


def test_long_shuffled_chain_converges():
    rng = np.random.default_rng(0)
    nodes = rng.permutation(100_000)
    labels = clusters.connected_components(100_000, nodes[:-1], nodes[1:])
    assert (labels == 0).all()


def test_survivor_is_largest_area_then_smallest_uid():
    cluster = np.array([0, 0, 0, 1, 1])
    area = np.array([10, 30, 30, 5, 5])
    uid = np.array([b"c", b"b", b"a", b"z", b"y"])
    assert clusters.choose_survivors(cluster, area, uid).tolist() == [2, 2, 2, 4, 4]
