"""Download throughput: wit download against img2dataset on the same URL list and settings.

Serves N distinct URLs over real images from a local server (a separate process on 127.0.0.1),
then runs img2dataset and `wit download` with the same processes, threads, shard size, resize
settings and output format (WebDataset + Parquet), and prints images/s for each and the ratio.

    python bench/download.py --images tests/data/coco/images --urls 5000 --processes 2 --threads 16
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pyarrow as pa
import pyarrow.parquet as pq

REPO = pathlib.Path(__file__).resolve().parents[1]

IMG2DATASET_SCRIPT = """
import sys
from img2dataset import download
if __name__ == "__main__":
    url_list, out, processes, threads, size, shard = sys.argv[1:7]
    download(url_list=url_list, output_folder=out, processes_count=int(processes), thread_count=int(threads),
             image_size=int(size), resize_mode="border", output_format="webdataset", input_format="parquet",
             url_col="url", caption_col="caption", number_sample_per_shard=int(shard), timeout=10, retries=0,
             distributor="multiprocessing", enable_wandb=False, disallowed_header_directives=[])
"""


def start_server(images: str, workdir: pathlib.Path) -> tuple[subprocess.Popen, str]:
    port_file = workdir / "port"
    server = subprocess.Popen([sys.executable, "-m", "wit_pipeline.devserver", "--images", images,
                               "--port-file", str(port_file)], stdout=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 30
    while not port_file.exists():
        if time.monotonic() > deadline or server.poll() is not None:
            raise SystemExit("the image server did not start")
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{port_file.read_text()}"


def write_url_list(path: pathlib.Path, base: str, images: str, count: int) -> None:
    names = sorted(os.listdir(images))
    rows = [{"url": f"{base}/img/{i}/{names[i % len(names)]}", "caption": f"image number {i}"} for i in range(count)]
    pq.write_table(pa.Table.from_pylist(rows), path)


def timed(command: list[str], env: dict) -> float:
    started = time.monotonic()
    result = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{command[:4]} failed:\n{result.stderr[-3000:]}")
    return time.monotonic() - started


def count_ok_wit(out: pathlib.Path) -> int:
    return sum(pq.read_table(p, columns=["status"]).column("status").to_pylist().count("ok")
               for p in (out / "raw").glob("*.parquet"))


def count_ok_img2dataset(out: pathlib.Path) -> int:
    return sum(pq.read_table(p, columns=["status"]).column("status").to_pylist().count("success")
               for p in out.glob("*.parquet"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", default=str(REPO / "tests" / "data" / "coco" / "images"),
                        help="folder of real images to serve (e.g. ../shared/data/coco-mini/val2017)")
    parser.add_argument("--urls", type=int, default=5000, help="distinct URLs (default 5000)")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--shard-size", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2, help="alternating runs of each tool (best is kept)")
    args = parser.parse_args()

    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", PYTHONPATH=str(REPO))
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="wit-bench-download-"))
    server, base = start_server(args.images, workdir)
    try:
        url_list = workdir / "urls.parquet"
        write_url_list(url_list, base, args.images, args.urls)
        (workdir / "run_img2dataset.py").write_text(IMG2DATASET_SCRIPT)
        common = [str(args.processes), str(args.threads), str(args.image_size), str(args.shard_size)]
        results = {"img2dataset": [], "wit": []}
        for round_number in range(args.rounds):
            out = workdir / f"img2dataset-{round_number}"
            seconds = timed([sys.executable, str(workdir / "run_img2dataset.py"), str(url_list), str(out), *common], env)
            results["img2dataset"].append((count_ok_img2dataset(out) / seconds, seconds, count_ok_img2dataset(out)))
            shutil.rmtree(out)
            out = workdir / f"wit-{round_number}"
            seconds = timed([sys.executable, "-m", "wit_pipeline", "download", "--input", str(url_list),
                             "--output", str(out), "--processes", args.processes and str(args.processes),
                             "--threads", str(args.threads), "--image-size", str(args.image_size),
                             "--resize-mode", "border", "--shard-size", str(args.shard_size), "--retries", "0",
                             "--allow-network", "127.0.0.1/32", "--per-host-connections", str(args.threads)], env)
            results["wit"].append((count_ok_wit(out) / seconds, seconds, count_ok_wit(out)))
            shutil.rmtree(out)
        print(f"{args.urls} URLs over {len(os.listdir(args.images))} real images, {args.processes} processes x "
              f"{args.threads} threads, {args.image_size}px border, shards of {args.shard_size}")
        for tool, runs in results.items():
            rate, seconds, ok = max(runs)
            print(f"{tool:12s} {rate:8.1f} images/s  (best of {len(runs)}: {ok} ok in {seconds:.1f} s; "
                  f"all runs: {', '.join(f'{r:.1f}' for r, _, _ in runs)})")
        ratio = max(results["wit"])[0] / max(results["img2dataset"])[0]
        print(f"ratio wit / img2dataset: {ratio:.2f}")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
