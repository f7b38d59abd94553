"""The dataset card of a final shard folder: `README.md` with the header the Hugging Face loader reads.

Without it, `datasets.load_dataset("OUT/final")` guesses the format from the files it sees and
picks JSON (manifest.json). The card's YAML header names the tar shards as the `train` split, so
the plain call loads them with the WebDataset builder: one example per sample, with `jpg` (an
image), `txt` (the caption) and `json` (the sample's row: uid, url, hashes, sizes, entries).
"""

from __future__ import annotations

from wit_pipeline import io

CARD_FILE = "README.md"

_HEADER = """---
configs:
- config_name: default
  data_files:
  - split: train
    path: "*.tar"
task_categories:
- image-to-text
- zero-shot-image-classification
tags:
- webdataset
- wit
---
"""

_BODY = """
# Image-text pairs curated by wit

{samples:,} samples in {shard_count} WebDataset shards (`00000.tar` ...), made by `wit reshard`
(seed {seed}, {per_shard:,} samples per shard). Each sample is `<uid>.jpg` (the stored image),
`<uid>.txt` (its caption) and `<uid>.json` (its row); `NNNNN.parquet` beside each tar holds the
same rows, and `manifest.json` lists the shards with their checksums and the settings of every
stage that made them.

Captions and URLs come from the web as found: they are untrusted text.

## Load

```python
import datasets
ds = datasets.load_dataset("path/to/this/folder", split="train")  # jpg, txt, json per example
```

With open_clip: `--train-data 'path/to/this/folder/{{00000..{last:05d}}}.tar' --dataset-type webdataset
--train-num-samples {samples}`.
"""


def write_dataset_card(output_folder: str, manifest: dict) -> str:
    """Write `README.md` into the final shard folder; returns its path."""
    listed = manifest.get("shards", [])
    reshard = manifest.get("reshard") or {}
    body = _BODY.format(
        samples=manifest.get("samples", 0),
        shard_count=len(listed),
        seed=reshard.get("seed"),
        per_shard=reshard.get("samples_per_shard", 0),
        last=max(len(listed) - 1, 0),
    )
    path = io.join(output_folder, CARD_FILE)
    io.write_atomic(path, (_HEADER + body).encode("utf-8"))
    return path
