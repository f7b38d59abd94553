"""What the engine tests (test_<stage>_engines.py) share: Beam in one process, folders compared."""

from __future__ import annotations

import glob
import os

import pyarrow.parquet as pq

# FnApiRunner in this process: no worker processes to start for a test of equal outputs.
IN_MEMORY = ["--direct_running_mode=in_memory"]


def parquet_rows(folder) -> dict[str, list[dict]]:
    """Every Parquet file under `folder` (relative path) with its rows, to compare two outputs."""
    return {
        os.path.relpath(p, folder): pq.read_table(p).to_pylist()
        for p in sorted(glob.glob(f"{folder}/**/*.parquet", recursive=True))
    }
