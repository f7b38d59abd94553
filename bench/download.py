"""Download throughput: wit download against img2dataset, side by side, on the same URL lists.

Both tools get the same processes, threads, shard size, resize settings (256 px, border), output
(WebDataset + Parquet), timeout and retries, and the same server: wit_pipeline.testing.simweb in a
separate process. Scenarios:

    loopback  COCO photos (~640 px) over plain HTTP from one host on 127.0.0.2, no added latency
    large     the same photos upscaled to 1,000-2,000 px, same server
    web       HTTPS from 16 hosts (Zipf shares, 2 slow ones), 60 ms per new connection (TCP + TLS
              round trips), 30 ms to first byte, 2% 404s, 2% one-time 429s, 1% resets; a mix of
              COCO and upscaled photos. The CA made at start-up reaches both tools as SSL_CERT_FILE.

The machine may be shared: the tools' runs are interleaved (img2dataset, wit, img2dataset, wit,
...) and the ratio is reported per round, with the median and spread. Also printed: the measured
compute limit (wit's per-image decode + resize + encode + hash cost on one core, times the
processes) and wit's share of it, and a per-image profile of where wit's time goes.

    python bench/download.py --images ../shared/data/coco-mini/val2017 --scenarios loopback,large,web

--long runs 100,000 URLs on the simulated web through `wit download` with default settings and
prints images/s per shard over time and the peak RSS of every worker process.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import pyarrow as pa
import pyarrow.parquet as pq

from wit_pipeline.testing.commands import download_argv
from wit_pipeline.testing.processes import child_pids

REPO = pathlib.Path(__file__).resolve().parents[1]

IMG2DATASET_SCRIPT = """
import sys
from img2dataset import download
if __name__ == "__main__":
    url_list, out, processes, threads, size, shard, retries = sys.argv[1:8]
    download(url_list=url_list, output_folder=out, processes_count=int(processes), thread_count=int(threads),
             image_size=int(size), resize_mode="border", output_format="webdataset", input_format="parquet",
             url_col="url", caption_col="caption", number_sample_per_shard=int(shard), timeout=10,
             retries=int(retries), distributor="multiprocessing", enable_wandb=False,
             disallowed_header_directives=[])
"""

SCENARIOS = {
    # name: (https, hosts, connect delay s, ttfb s, which photos, failures)
    "loopback": dict(https=False, hosts=1, connect_delay=0.0, ttfb=0.0, photos="small", failures=False),
    "large": dict(https=False, hosts=1, connect_delay=0.0, ttfb=0.0, photos="large", failures=False),
    "web": dict(https=True, hosts=16, connect_delay=0.06, ttfb=0.03, photos="mixed", failures=True),
}


def start_web(images: str, workdir: pathlib.Path, scenario: dict, large: int) -> tuple[subprocess.Popen, dict]:
    command = [
        sys.executable,
        "-m",
        "wit_pipeline.testing.simweb",
        "--images",
        images,
        "--workdir",
        str(workdir),
        "--hosts",
        str(scenario["hosts"]),
        "--large",
        str(large),
        "--connect-delay",
        str(scenario["connect_delay"]),
        "--ttfb",
        str(scenario["ttfb"]),
    ]
    server = subprocess.Popen(
        command + ([] if scenario["https"] else ["--http"]),
        stdout=subprocess.DEVNULL,
        start_new_session=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    info_file = workdir / "hosts.json"
    deadline = time.monotonic() + 60
    while not info_file.exists():
        if time.monotonic() > deadline or server.poll() is not None:
            raise SystemExit("the simulated web did not start")
        time.sleep(0.1)
    return server, json.loads(info_file.read_text())


def write_url_list(path: pathlib.Path, info: dict, scenario: dict, count: int) -> None:
    from wit_pipeline.testing.simweb import WebProfile, make_urls

    large = [n for n in info["names"] if n.startswith("large")]
    small = [n for n in info["names"] if not n.startswith("large") and n.lower().endswith(".jpg")]
    names = {"small": small, "large": large, "mixed": small + large}[scenario["photos"]]
    profile = WebProfile() if scenario["failures"] else WebProfile(share_404=0, share_429=0, share_reset=0)
    urls = make_urls(info["bases"], names, count, profile)
    pq.write_table(pa.table({"url": urls, "caption": [f"image number {i}" for i in range(count)]}), path)


def timed(command: list[str], env: dict) -> float:
    started = time.monotonic()
    result = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{command[:4]} failed:\n{result.stderr[-3000:]}")
    return time.monotonic() - started


def count_ok(out: pathlib.Path, tool: str) -> int:
    folder, ok = (out / "raw", "ok") if tool == "wit" else (out, "success")
    return sum(
        pq.read_table(p, columns=["status"]).column("status").to_pylist().count(ok) for p in folder.glob("*.parquet")
    )


def shard_seconds(out: pathlib.Path, tool: str) -> float:
    """The summed time of the tool's shards, from its own per-shard stats (img2dataset's `duration`
    and wit's `seconds` both span one shard's download_shard call: no imports, no worker spawn)."""
    folder, key = (out / "raw", "seconds") if tool == "wit" else (out, "duration")
    return sum(json.loads(p.read_text())[key] for p in folder.glob("[0-9]*_stats.json"))


def run_tool(
    tool: str, url_list: pathlib.Path, out: pathlib.Path, args, scenario: dict, env: dict, workdir: pathlib.Path
) -> tuple[float, int, float]:
    retries = "2" if scenario["failures"] else "0"
    if tool == "img2dataset":
        command = [
            sys.executable,
            str(workdir / "run_img2dataset.py"),
            str(url_list),
            str(out),
            str(args.processes),
            str(args.threads),
            str(args.image_size),
            str(args.shard_size),
            retries,
        ]
    else:
        work = ("--processes", args.processes, "--threads", args.threads, "--shard-size", args.shard_size)
        image = ("--image-size", args.image_size, "--resize-mode", "border")
        command = download_argv(url_list, out, *work, *image, "--retries", retries, "--allow-network", "127.0.0.0/8")
        if scenario["hosts"] == 1:  # one host: the per-host limit would otherwise cap the threads
            command += ["--per-host-connections", str(args.threads)]
    seconds = timed(command, env)
    ok = count_ok(out, tool)
    busy = shard_seconds(out, tool)
    shutil.rmtree(out)
    return seconds, ok, busy


def compute_limit(images: list[bytes], image_size: int, processes: int) -> dict:
    """wit's per-image work without the network, on one core: check, decode + resize + encode, hashes."""
    from wit_pipeline.config import ResizeConfig
    from wit_pipeline.download.hashing import phash_stored, sha256_hex
    from wit_pipeline.download.image import check_image, make_resizer

    resizer = make_resizer(ResizeConfig(image_size=image_size))
    parts = {"check": 0.0, "decode+resize+encode": 0.0, "sha256": 0.0, "phash": 0.0}
    best = None
    for _ in range(3):
        spent = dict.fromkeys(parts, 0.0)
        for data in images:
            t0 = time.perf_counter()
            header = check_image(data, 2**31)
            t1 = time.perf_counter()
            out = resizer(data, header)
            t2 = time.perf_counter()
            sha256_hex(out.data)
            t3 = time.perf_counter()
            phash_stored(out)
            t4 = time.perf_counter()
            for key, seconds in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                spent[key] += seconds
        if best is None or sum(spent.values()) < sum(best.values()):
            best = spent
    per_image = {key: seconds / len(images) * 1000 for key, seconds in best.items()}
    total = sum(per_image.values())
    return {"ms_per_image": per_image, "per_core": 1000 / total, "limit": 1000 / total * processes}


def run_scenario(name: str, args, env: dict) -> dict:
    scenario = SCENARIOS[name]
    workdir = pathlib.Path(tempfile.mkdtemp(prefix=f"wit-bench-{name}-"))
    server, info = start_web(args.images, workdir, scenario, args.large)
    try:
        run_env = dict(env, SSL_CERT_FILE=info["ca_file"]) if info["ca_file"] else env
        url_list = workdir / "urls.parquet"
        write_url_list(url_list, info, scenario, args.urls)
        (workdir / "run_img2dataset.py").write_text(IMG2DATASET_SCRIPT)
        # Each tool's fixed cost (start-up, imports, worker spawn, shutdown): a run of 2 URLs.
        tiny_list = workdir / "tiny.parquet"
        write_url_list(tiny_list, info, dict(scenario, failures=False), 2)
        fixed = {
            tool: run_tool(tool, tiny_list, workdir / f"{tool}-tiny", args, scenario, run_env, workdir)[0]
            for tool in ("img2dataset", "wit")
        }
        print(
            f"  [{name}] fixed cost (a run of 2 URLs): img2dataset {fixed['img2dataset']:.1f} s, "
            f"wit {fixed['wit']:.1f} s",
            flush=True,
        )
        rounds = []
        for round_number in range(args.rounds):
            rates = {}
            for tool in ("img2dataset", "wit"):
                seconds, ok, busy = run_tool(
                    tool, url_list, workdir / f"{tool}-{round_number}", args, scenario, run_env, workdir
                )
                rates[tool] = (ok / seconds, ok, seconds, ok / (busy / args.processes))
            rounds.append(rates)
            print(
                f"  [{name} round {round_number + 1}] img2dataset {rates['img2dataset'][0]:.1f}/s "
                f"({rates['img2dataset'][1]} ok), wit {rates['wit'][0]:.1f}/s ({rates['wit'][1]} ok), "
                f"ratio {rates['wit'][0] / rates['img2dataset'][0]:.2f}",
                flush=True,
            )
        return {"scenario": name, "rounds": rounds, "info": info, "fixed": fixed}
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def photos_for(name: str, images: str, large: int) -> list[bytes]:
    from wit_pipeline.testing.devserver import load_images
    from wit_pipeline.testing.simweb import upscaled_images

    small = {n: d for n, d in load_images(images).items() if n.lower().endswith(".jpg")}
    big = upscaled_images(small, large)
    return {
        "loopback": list(small.values()),
        "large": list(big.values()),
        "web": list(small.values()) + list(big.values()),
    }[name]


def summarise(result: dict, limit: dict, processes: int) -> None:
    rounds = result["rounds"]
    ratios = [r["wit"][0] / r["img2dataset"][0] for r in rounds]
    wit = [r["wit"][0] for r in rounds]
    theirs = [r["img2dataset"][0] for r in rounds]
    print(
        f"{result['scenario']}: wit {statistics.median(wit):.1f} images/s (min {min(wit):.1f}, max {max(wit):.1f}); "
        f"img2dataset {statistics.median(theirs):.1f} (min {min(theirs):.1f}, max {max(theirs):.1f}); "
        f"ratio per round {', '.join(f'{r:.2f}' for r in ratios)}: median {statistics.median(ratios):.2f}"
    )
    fixed = result["fixed"]
    # The same runs with each tool's fixed cost taken off: the rate a long run approaches.
    steady = {
        tool: [r[tool][1] / max(r[tool][2] - fixed[tool], 1e-3) for r in rounds] for tool in ("wit", "img2dataset")
    }
    steady_ratios = [w / i for w, i in zip(steady["wit"], steady["img2dataset"], strict=True)]
    print(
        f"  without each tool's fixed cost (img2dataset {fixed['img2dataset']:.1f} s, wit {fixed['wit']:.1f} s): "
        f"wit {statistics.median(steady['wit']):.1f}/s, img2dataset {statistics.median(steady['img2dataset']):.1f}/s, "
        f"ratio per round {', '.join(f'{r:.2f}' for r in steady_ratios)}: median {statistics.median(steady_ratios):.2f}"
    )
    # Steady state from the tools' own shard timings: images / (summed shard time / processes).
    in_shards = {tool: [r[tool][3] for r in rounds] for tool in ("wit", "img2dataset")}
    shard_ratios = [w / i for w, i in zip(in_shards["wit"], in_shards["img2dataset"], strict=True)]
    print(
        f"  inside shards (images / (summed shard seconds / processes)): wit "
        f"{statistics.median(in_shards['wit']):.1f}/s, "
        f"img2dataset {statistics.median(in_shards['img2dataset']):.1f}/s, "
        f"ratio per round {', '.join(f'{r:.2f}' for r in shard_ratios)}: median {statistics.median(shard_ratios):.2f}"
    )
    parts = ", ".join(f"{k} {v:.2f} ms" for k, v in limit["ms_per_image"].items())
    print(
        f"  compute limit: {limit['per_core']:.0f} images/s per core ({parts}) x {processes} processes = "
        f"{limit['limit']:.0f}/s; wit's median is {statistics.median(wit) / limit['limit']:.0%} of it, "
        f"{statistics.median(steady['wit']) / limit['limit']:.0%} without its fixed cost"
    )


def long_run(args, env: dict) -> None:
    """100,000 URLs (or --urls) on the simulated web through `wit download` with default settings."""
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="wit-bench-long-"))
    server, info = start_web(args.images, workdir, SCENARIOS["web"], args.large)
    try:
        url_list = workdir / "urls.parquet"
        write_url_list(url_list, info, SCENARIOS["web"], args.urls)
        out = workdir / "out"
        process = subprocess.Popen(
            download_argv(url_list, out, "--allow-network", "127.0.0.0/8"),
            env=dict(env, SSL_CERT_FILE=info["ca_file"]),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        peaks: dict[int, list] = {}
        started = time.monotonic()
        sampler = threading.Thread(target=_sample_rss, args=(process, peaks, started), daemon=True)
        sampler.start()
        process.wait()
        seconds = time.monotonic() - started
        sampler.join()
        stats = sorted(
            (json.loads(p.read_text()) for p in (out / "raw").glob("[0-9]*_stats.json")), key=lambda s: s["shard"]
        )
        total_ok = sum(s["ok"] for s in stats)
        print(f"long run: {args.urls:,} URLs, {total_ok:,} ok in {seconds:.0f} s = {total_ok / seconds:.1f} images/s")
        print("  per shard (in order): " + ", ".join(f"{s['ok'] / s['seconds']:.0f}" for s in stats) + " images/s")
        for pid, samples in sorted(peaks.items()):
            if len(samples) >= 5:
                # Peak of each fifth of the run: a leak climbs fifth after fifth, a cache levels off.
                fifths = [samples[i * len(samples) // 5 : (i + 1) * len(samples) // 5] for i in range(5)]
                peaks_mib = ", ".join(f"{max(r for _, r in part) / 1024:.0f}" for part in fifths)
                print(f"  pid {pid}: peak RSS per fifth of the run {peaks_mib} MiB ({len(samples)} samples)")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def _sample_rss(process: subprocess.Popen, peaks: dict, started: float) -> None:
    """Every second: the resident memory (KiB) of the wit process and its worker processes."""
    while process.poll() is None:
        for pid in [process.pid] + child_pids(process.pid):
            try:
                with open(f"/proc/{pid}/status") as f:
                    rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
            except (OSError, StopIteration):
                continue
            peaks.setdefault(pid, []).append((time.monotonic() - started, rss))
        time.sleep(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--images",
        default=str(REPO / "tests" / "data" / "coco" / "images"),
        help="folder of real photos to serve (e.g. ../shared/data/coco-mini/val2017)",
    )
    parser.add_argument("--scenarios", default="loopback,large,web")
    parser.add_argument("--urls", type=int, default=3000, help="distinct URLs per scenario (default 3000)")
    parser.add_argument("--large", type=int, default=40, help="photos also served upscaled to 1,000-2,000 px")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--shard-size", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the two tools")
    parser.add_argument("--long", action="store_true", help="the long run instead (use --urls 100000)")
    args = parser.parse_args()
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", PYTHONPATH=str(REPO))
    print(
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start (a shared machine: rates vary "
        f"with it); {args.urls} URLs",
        flush=True,
    )
    if args.long:
        print("long run: `wit download` with its default settings (processes = CPUs, 32 threads, shards of 10,000)")
        return long_run(args, env)
    print(
        f"{args.processes} processes x {args.threads} threads, {args.image_size}px border, shards of {args.shard_size}",
        flush=True,
    )
    results = []
    for name in args.scenarios.split(","):
        result = run_scenario(name, args, env)
        results.append(
            (result, compute_limit(photos_for(name, args.images, args.large), args.image_size, args.processes))
        )
    print()
    for result, limit in results:
        summarise(result, limit, args.processes)
    return None


if __name__ == "__main__":
    main()
