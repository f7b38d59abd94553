"""The reshard stage: raw shards and the keep list in, shuffled final shards and a manifest out.

- `stage`: the plan (every kept sample's final position), the route and assemble passes, and the
  manifest with the run's provenance.
"""
