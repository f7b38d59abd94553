"""Real captions and a tiny in-test Source for the text-stage tests."""

from __future__ import annotations

import json

import pyarrow.parquet as pq

from helpers.paths import TEST_DATA
from wit_pipeline.sources.base import Source, SourceShard, make_record

LAION = TEST_DATA / "text" / "laion_3000.parquet"
ENTRIES = TEST_DATA / "text" / "entries.json"
COCO = TEST_DATA / "coco" / "captions_train2017.json"


def laion_rows(n: int | None = None) -> list[dict]:
    """Real LAION rows: {'URL', 'TEXT'}, in file order."""
    rows = pq.read_table(LAION).to_pylist()
    return rows if n is None else rows[:n]


def laion_pairs(n: int, repeated: int = 0) -> list[tuple[str, str]]:
    """The first `n` real LAION (url, caption) pairs, then the first `repeated` of them again."""
    pairs = [(row["URL"], row["TEXT"]) for row in laion_rows(n)]
    return pairs + pairs[:repeated]


def laion_captions() -> list[str]:
    return [row["TEXT"] for row in laion_rows()]


def coco_captions() -> list[str]:
    with open(COCO) as f:
        return [a["caption"] for a in json.load(f)["annotations"]]


class ListSource(Source):
    """A Source over a list of (url, caption) pairs, cut into shards of `shard_size` rows."""

    name = "list"

    def __init__(self, pairs: list[tuple], shard_size: int = 100):
        self.pairs = list(pairs)
        self.shard_size = shard_size

    def shards(self) -> list[SourceShard]:
        return [
            SourceShard(i, "memory", start, min(start + self.shard_size, len(self.pairs)))
            for i, start in enumerate(range(0, len(self.pairs), self.shard_size))
        ]

    def read(self, shard: SourceShard):
        for offset, (url, caption) in enumerate(self.pairs[shard.start : shard.stop]):
            yield make_record(url, caption, self.name, source_id=shard.start + offset)
