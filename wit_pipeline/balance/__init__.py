"""The balance stage: MetaCLIP's sampling, at most about `t` pairs per query-list entry.

- `stage`: the draw (a pure function of seed, uid and entry), the count and select passes, and
  the stage's files and stats.
"""
