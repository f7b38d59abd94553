"""The ingest stage: source records in, candidate (url, caption) pairs out, every row accounted for.

- `stage`: the plan (one task per source shard), the per-shard text work, the global drop of
  repeated (url, caption) pairs, and the stage's files and stats.
"""
