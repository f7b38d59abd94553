"""The COCO example config (examples/coco-subset.toml) as the tests run it, its final shards, and
every stage's stats.json in a run's folder."""

from __future__ import annotations

import json

from helpers.paths import REPO_ROOT

EXAMPLE = REPO_ROOT / "examples" / "coco-subset.toml"


def example_config(tmp_path, name="run", replace=(), output=None):
    """The COCO example, writing to `output` (default tmp_path/name); inputs are from the repo root."""
    text = EXAMPLE.read_text().replace('output = "out/coco-subset"', f"output = '{output or tmp_path / name}'")
    for old, new in replace:
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def final_files(out):
    """Every final shard's bytes, and the manifest less its provenance (times, engine, paths)."""
    files = {p.name: p.read_bytes() for p in sorted((out / "final").iterdir()) if p.suffix in (".tar", ".parquet")}
    manifest = json.loads((out / "final" / "manifest.json").read_text())
    manifest.pop("provenance")
    return files, manifest


# Where each stage writes its stats.json, as DESIGN.md names the folders: written out here rather
# than read from wit's own table, so a test would notice wit moving one.
STAGE_FOLDERS = {"ingest": "ingest", "balance": "balance", "download": "raw", "dedup": "dedup", "reshard": "final"}


def stage_stats(out) -> dict[str, dict]:
    """Each stage's stats.json in the run folder `out`, by stage name (in the stages' order)."""
    return {stage: json.loads((out / folder / "stats.json").read_text()) for stage, folder in STAGE_FOLDERS.items()}
