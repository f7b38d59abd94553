"""The dedup stage: exact and near duplicates by pHash, and eval-set decontamination.

- `bands`: the banded (pigeonhole) search for pHash pairs within a Hamming radius, with the
  huge-bucket guard; numpy arrays in, verified pairs out.
- `clusters`: union-find over the pairs, and the survivor rule.
- `decisions`: the sidecar columns dedup reads (as numpy arrays) and the per-row decisions.
- `decontaminate`: pHashes of an evaluation set (image folder or our shards).
- `stage`: `run` on any engine (Beam: beam_jobs/dedup.py), and the outputs every engine writes.
"""
