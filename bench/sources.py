"""Source read throughput: pairs per second per core for COCO, YFCC100M, WARC and WAT.

Each source reads real files repeated to at least --min-mb megabytes (written to a temporary
folder at run time, removed afterwards) in one process, so the figures are per core. For WAT the
compressed MB/s per core is compared with LAION's cc2dataset, whose README gives about 50 s per
Common Crawl WAT file on one core, and extrapolated to a full-size WAT file (--wat-file-mb: 357 MiB
by default, the average of CC-MAIN-2016-40, whose announcement lists 30,374 WAT files, 10.35 TiB).

    python bench/sources.py --data ../shared/data [--min-mb 100]

The data folder needs coco-mini/annotations/captions_train2017.json and commoncrawl/*.gz; the YFCC
lines and the iana WAT record come from tests/data (YFCC100M itself is not available offline).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import sys
import tempfile
import time

from wit_pipeline.sources.coco import CocoConfig, CocoSource
from wit_pipeline.sources.warc import WarcSource
from wit_pipeline.sources.wat import WatSource
from wit_pipeline.sources.yfcc import YfccConfig, YfccSource

REPO = pathlib.Path(__file__).resolve().parents[1]

MB = 1_000_000
CC2DATASET_SECONDS_PER_WAT = 50.0


def repeat_bytes(parts: list[bytes], out: pathlib.Path, min_bytes: int) -> int:
    """Write `parts` again and again into `out` until it holds at least `min_bytes`; the copy count.

    Concatenated gzip members form a valid gzip stream, and a WARC file is a sequence of records,
    so repeated .warc.gz / .wat.gz files stay valid inputs.
    """
    unit = b"".join(parts)
    copies = -(-min_bytes // len(unit))
    with open(out, "wb") as f:
        for _ in range(copies):
            f.write(unit)
    return copies


def repeated_coco(captions: pathlib.Path, out: pathlib.Path, min_bytes: int) -> int:
    """A COCO caption file with the real images and annotations repeated under fresh ids."""
    data = json.loads(captions.read_text())
    copies = -(-min_bytes // len(captions.read_bytes()))
    step = max(image["id"] for image in data["images"]) + 1
    with open(out, "w") as f:
        f.write(f'{{"info": {json.dumps(data["info"])}, "licenses": {json.dumps(data["licenses"])}, "images": [')
        f.write(
            ",".join(
                json.dumps({**image, "id": image["id"] + copy * step})
                for copy in range(copies)
                for image in data["images"]
            )
        )
        f.write('], "annotations": [')
        f.write(
            ",".join(
                json.dumps({**ann, "id": ann["id"] + copy * step, "image_id": ann["image_id"] + copy * step})
                for copy in range(copies)
                for ann in data["annotations"]
            )
        )
        f.write("]}")
    return copies


def measure(source) -> dict:
    """Read every shard of `source` once in this process; pairs, statuses and times."""
    wall, cpu = time.perf_counter(), time.process_time()
    records, ok = 0, 0
    for shard in source.shards():
        for record in source.read(shard):
            records += 1
            ok += record["status"] == "ok"
    return {"records": records, "ok": ok, "wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}


def report(name: str, path: pathlib.Path, result: dict) -> dict:
    size_mb = path.stat().st_size / MB
    row = {
        "source": name,
        "input_mb": round(size_mb, 1),
        "records": result["records"],
        "ok_pairs": result["ok"],
        "cpu_s": round(result["cpu_s"], 2),
        "wall_s": round(result["wall_s"], 2),
        "pairs_per_cpu_s": round(result["ok"] / result["cpu_s"]),
        "input_mb_per_cpu_s": round(size_mb / result["cpu_s"], 2),
    }
    print(
        f"{name:<28} {row['input_mb']:>7.1f} MB {row['ok_pairs']:>9,} pairs {row['cpu_s']:>7.2f} s CPU "
        f"({row['wall_s']:.2f} s wall)  {row['pairs_per_cpu_s']:>9,} pairs/s/core  "
        f"{row['input_mb_per_cpu_s']:>6.2f} MB/s/core",
        flush=True,
    )
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="../shared/data", help="the shared real-data folder")
    parser.add_argument("--min-mb", type=float, default=100, help="repeat each input to at least this size")
    parser.add_argument(
        "--wat-file-mb",
        type=float,
        default=357 * 1.048576,
        help="size of a full Common Crawl WAT file in MB (default 357 MiB)",
    )
    args = parser.parse_args(argv)
    data = pathlib.Path(args.data)
    tests = REPO / "tests" / "data"
    min_bytes = int(args.min_mb * MB)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="wit-bench-sources-"))
    rows = []
    try:
        print(f"inputs repeated to >= {args.min_mb:g} MB in {tmp}; one process, so rates are per core", flush=True)
        coco = tmp / "captions_repeated.json"
        repeated_coco(data / "coco-mini" / "annotations" / "captions_train2017.json", coco, min_bytes)
        rows.append(report("coco (each)", coco, measure(CocoSource(str(coco), CocoConfig(captions="each")))))
        rows.append(report("coco (join)", coco, measure(CocoSource(str(coco), CocoConfig(captions="join")))))

        yfcc = tmp / "yfcc100m_dataset_repeated.tsv"
        repeat_bytes([(tests / "yfcc" / "yfcc100m_dataset_sample.tsv").read_bytes()], yfcc, min_bytes)
        rows.append(report("yfcc (both)", yfcc, measure(YfccSource(str(yfcc), YfccConfig(caption="both")))))

        cc = data / "commoncrawl"
        for name in ("iana", "whirlwind"):
            warc = tmp / f"{name}_repeated.warc.gz"
            repeat_bytes([(cc / f"{name}.warc.gz").read_bytes()], warc, min_bytes)
            rows.append(report(f"warc ({name})", warc, measure(WarcSource(str(warc)))))
            warc.unlink()

        # A WAT file describes requests and responses alike: the whirlwind WAT's request record
        # (no links) and the iana response record (links, 2 image pairs), one after the other.
        wat = tmp / "repeated.warc.wat.gz"
        request_record = (cc / "whirlwind.warc.wat.gz").read_bytes()
        response_record = (tests / "commoncrawl" / "iana-numbers.warc.wat.gz").read_bytes()
        repeat_bytes([request_record, response_record], wat, min_bytes)
        wat_row = report("wat (request + iana page)", wat, measure(WatSource(str(wat))))
        rows.append(wat_row)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    rate = wat_row["input_mb_per_cpu_s"]
    full_wat_s = args.wat_file_mb / rate
    cc2dataset_rate = args.wat_file_mb / CC2DATASET_SECONDS_PER_WAT
    print()
    print(
        f"WAT: {rate:.2f} compressed MB/s per core -> a {args.wat_file_mb:.0f} MB WAT file takes "
        f"{full_wat_s:.0f} s on one core"
    )
    print(
        f"cc2dataset: ~{CC2DATASET_SECONDS_PER_WAT:.0f} s per WAT file = {cc2dataset_rate:.2f} MB/s per core at "
        f"that size; wit/cc2dataset time ratio {full_wat_s / CC2DATASET_SECONDS_PER_WAT:.2f}x"
    )
    print(
        json.dumps(
            {
                "rows": rows,
                "wat_full_file_mb": round(args.wat_file_mb),
                "wat_full_file_s": round(full_wat_s),
                "cpu_count": os.cpu_count(),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
