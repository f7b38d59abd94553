"""Test helper: real runs of wit (ingest -> reshard) over the bundled COCO images on loopback.

`run_chain` drives the commands in this process as a user would type them; `coco_rows` gives one
real caption per image, so every image is one distinct sample.
"""

from __future__ import annotations

import json
import pathlib

import pyarrow as pa
import pyarrow.parquet as pq

from helpers.paths import TEST_DATA
from wit_pipeline import cli

COCO = TEST_DATA / "coco"
ENTRIES = TEST_DATA / "text" / "entries.json"


MARKUP_CAPTION = "A striped cat is [bold]sitting[/bold] on the soft mat next to the door"


def small_run_rows(server_url: str) -> list[dict]:
    """Twelve real COCO pairs, an exact duplicate (with rich markup in its caption), a 404 and a French caption."""
    rows = coco_rows(server_url)[:12]
    return rows + [
        {"url": f"{server_url}/img/{rows[0]['url'].rsplit('/', 1)[-1]}?again", "caption": MARKUP_CAPTION},
        # A query of its own: the shared server counts hits per path, and other tests count /status/404.
        {"url": f"{server_url}/status/404?from=small_run", "caption": "A bird sitting on a tree branch"},
        {"url": f"{server_url}/img/x.jpg", "caption": "Un chat noir dort sur le canapé rouge du salon"},
    ]


def coco_rows(server_url: str) -> list[dict]:
    """(url, caption) for each bundled COCO image: its first real caption."""
    coco = json.loads((COCO / "captions_train2017.json").read_text())
    on_disk = {p.name for p in (COCO / "images").iterdir()}
    names = {image["id"]: image["file_name"] for image in coco["images"] if image["file_name"] in on_disk}
    first = {}
    for annotation in coco["annotations"]:
        if annotation["image_id"] in names:
            first.setdefault(annotation["image_id"], annotation["caption"].strip())
    return [{"url": f"{server_url}/img/{names[i]}", "caption": caption} for i, caption in sorted(first.items())]


STAGES = ("ingest", "balance", "download", "dedup", "reshard")


def run_chain(out: pathlib.Path, rows: list[dict], stages=STAGES, engines: dict[str, str] | None = None):
    """Write `rows` as a URL list and run the named stages on it into `out` (engine per stage: local)."""
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), out / "urls.parquet")
    commands = {
        "ingest": [
            "ingest",
            "--source",
            "urls",
            "--input",
            str(out / "urls.parquet"),
            "--output",
            str(out),
            "--metadata",
            str(ENTRIES),
            "--processes",
            "1",
        ],
        "balance": ["balance", str(out), "--t", "3", "--processes", "1"],
        "download": [
            "download",
            "--input",
            str(out / "balance"),
            "--output",
            str(out),
            "--processes",
            "1",
            "--allow-network",
            "127.0.0.1/32",
            "--shard-size",
            "10",
            "--retries",
            "0",
        ],
        "dedup": ["dedup", str(out)],
        "reshard": ["reshard", str(out), "--samples-per-shard", "8"],
    }
    for stage in stages:
        engine = (engines or {}).get(stage, "local")
        assert cli.main(commands[stage] + ["--engine", engine]) == 0, stage
    return out
