"""The final folder loads with the plain `datasets.load_dataset(folder)` call, through its dataset card."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pyarrow.parquet as pq

LOAD = """
import json, sys, datasets
ds = datasets.load_dataset(sys.argv[1], split="train")
print(json.dumps({"rows": ds.num_rows, "columns": sorted(ds.column_names),
                  "keys": sorted(ds["__key__"]), "captions": sorted(ds["txt"]),
                  "image_size": list(ds[0]["jpg"].size)}))
"""


def test_plain_load_dataset_reads_the_final_shards(small_run, tmp_path):
    final = small_run / "final"
    card = (final / "README.md").read_text()
    assert card.startswith("---\nconfigs:\n") and 'path: "*.tar"' in card
    # Offline, with its cache in the test's folder: the loader must find everything in the folder.
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    result = subprocess.run(
        [sys.executable, "-c", LOAD, str(final)], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    sidecars = [pq.read_table(p, columns=["uid", "caption"]) for p in sorted(final.glob("*.parquet"))]
    uids = sorted(uid for table in sidecars for uid in table["uid"].to_pylist())
    captions = sorted(c for table in sidecars for c in table["caption"].to_pylist())
    manifest = json.loads((final / "manifest.json").read_text())
    assert loaded["rows"] == manifest["samples"] == len(uids)
    assert loaded["keys"] == uids and loaded["captions"] == captions
    assert {"jpg", "txt", "json"} <= set(loaded["columns"]) and min(loaded["image_size"]) > 0
