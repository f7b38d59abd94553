"""`make demo`: the pipeline end to end on bundled real data, with no network beyond 127.0.0.1.

Serves the real COCO images kept in `tests/data/coco/images` from a local server, writes a URL
list from their real COCO captions, and runs the stages on it, printing each stage's stats.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq

from wit_pipeline.devserver import ImageServer

DATA = pathlib.Path(__file__).resolve().parents[1] / "tests" / "data" / "coco"


def coco_url_list(server_url: str, image_dir: pathlib.Path, captions_file: pathlib.Path) -> list[dict]:
    """One row per (image, caption) for the COCO images that are on disk, served by our server."""
    with open(captions_file) as f:
        coco = json.load(f)  # the bundled file is 65 KB
    on_disk = {p.name for p in image_dir.iterdir()}
    names = {image["id"]: image["file_name"] for image in coco["images"] if image["file_name"] in on_disk}
    return [{"url": f"{server_url}/img/{names[a['image_id']]}", "caption": a["caption"].strip(),
             "coco_id": str(a["image_id"])}
            for a in coco["annotations"] if a["image_id"] in names]


def wit(*args: str) -> None:
    """Run one `wit` command as a user would, stopping the demo if it fails."""
    print(f"\n$ wit {' '.join(args)}", flush=True)
    subprocess.run([sys.executable, "-m", "wit_pipeline", *args], check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description="Run wit end to end on bundled real COCO data.")
    parser.add_argument("--output", default="demo-out", help="output folder (recreated)")
    parser.add_argument("--train-steps", type=int, default=40, help="steps of the tiny CLIP at the end (0: skip)")
    args = parser.parse_args()
    out = pathlib.Path(args.output)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    processes = str(min(2, os.cpu_count() or 1))
    with ImageServer(str(DATA / "images")) as server:
        rows = coco_url_list(server.url, DATA / "images", DATA / "captions_train2017.json")
        pq.write_table(pa.Table.from_pylist(rows), out / "urls.parquet")
        print(f"serving {len(server.images)} real COCO images at {server.url}; "
              f"{len(rows)} (image, caption) pairs in {out / 'urls.parquet'}")
        # The query list from the real word lists that installed packages ship (WordNet when present).
        wit("metadata", "build", "--output", str(out / "entries.json"))
        wit("ingest", "--source", "urls", "--input", str(out / "urls.parquet"), "--output", str(out),
            "--metadata", str(out / "entries.json"), "--keep-cols", "coco_id", "--processes", processes)
        # t = 20 instead of CLIP's 20,000: on 120 captions only a small cap shows the balancing.
        wit("balance", str(out), "--t", "20")
        wit("download", "--input", str(out / "balance"), "--output", str(out), "--processes", processes,
            "--allow-network", "127.0.0.1/32", "--shard-size", "50")
    # Five captions per image: the same stored image five times, which dedup folds to one.
    wit("dedup", str(out))
    wit("reshard", str(out), "--samples-per-shard", "10")
    if args.train_steps:
        wit("train", "--shards", str(out / "final"), "--output", str(out / "run"), "--preset", "tiny",
            "--steps", str(args.train_steps), "--batch-size", "8", "--lr", "5e-4", "--image-size", "64",
            "--no-progress")
        wit("eval", "--checkpoint", str(out / "run"), "--retrieval", str(out / "final"),
            "--json", str(out / "run" / "metrics.json"))
    print(f"\nfinal shards in {out / 'final'}; the run in {out / 'run'}")
    # Last, so the demo ends with the run's funnel in one line and the page that shows it all.
    wit("report", str(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
