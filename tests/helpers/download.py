"""The download stage's test set-up: a fast fetch config and readers of what a run wrote."""

from __future__ import annotations

import os

from helpers.paths import COCO_IMAGES
from wit_pipeline import io, shards
from wit_pipeline.config import DownloadConfig, FetchConfig, ResizeConfig
from wit_pipeline.download import stage
from wit_pipeline.engines.local import LocalEngine
from wit_pipeline.sources.urls import UrlListConfig

IMAGES = sorted(p.name for p in COCO_IMAGES.iterdir())
A, B = IMAGES[0], IMAGES[1]


def fast_config(**fetch) -> DownloadConfig:
    """Short timeouts and backoff, 127.0.0.1 allowed: a test's failures come in well under a second."""
    fetch = {"timeout": 1.0, "retries": 2, "backoff_base": 0.01, "allow_networks": ("127.0.0.1/32",)} | fetch
    return DownloadConfig(fetch=FetchConfig(**fetch), resize=ResizeConfig(image_size=64), threads=8)


def download_list(input_path, out, config: DownloadConfig | None = None, url_config: UrlListConfig | None = None):
    """Download the URL list at `input_path` into OUT/raw on the local engine in one process
    (`fast_config()` and a default URL-list reading unless given); the run's totals."""
    return stage.run(
        LocalEngine(1),
        str(out),
        config or fast_config(),
        input_path=str(input_path),
        url_config=url_config or UrlListConfig(),
    )


def read_rows(out) -> dict[str, dict]:
    """The finished raw shards' rows, by caption."""
    raw = io.join(str(out), "raw")
    rows = {}
    for shard_id in shards.finished_shards(raw):
        for row in io.read_parquet(io.join(raw, f"{shards.shard_name(shard_id)}.parquet")).to_pylist():
            rows[row["caption"]] = row
    return rows


def raw_contents(out):
    """(every finished raw row, every tar member by name); a member written twice fails."""
    raw = os.path.join(out, "raw")
    rows, members = [], {}
    for shard_id in shards.finished_shards(raw):
        name = shards.shard_name(shard_id)
        rows += io.read_parquet(os.path.join(raw, f"{name}.parquet")).to_pylist()
        for key, sample in shards.iter_tar(os.path.join(raw, f"{name}.tar")):
            for ext, data in sample.items():
                assert f"{key}.{ext}" not in members, "a member written twice"
                members[f"{key}.{ext}"] = data
    return rows, members
