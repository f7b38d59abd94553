"""The whole `wit curate` on each engine: wall and CPU time per stage, and each engine's overhead
ratio to the local process pool, on the same loopback input.

Input: N URLs on a local image server (a separate process on 127.0.0.1, the 24 real COCO test
images behind N distinct URLs) paired with N real LAION captions (tests/data/text), matched
against the bundled query list. The same config runs on:

    local             the process pool (--processes)
    beam              Beam's FnApiRunner, multi-processing (--processes workers)
    beam-portable     Beam's PortableRunner against Beam's job service, EXTERNAL worker pool
    spark-local       Spark local[--processes]
    spark-standalone  a standalone cluster started here from pyspark's spark-class (1 master,
                      2 workers x 1 core on 127.0.0.1)

Per stage, wall time is the span between the curate run's stage records (OUT/curate/<stage>.json)
and CPU time is the CPU of the curate process tree plus the engine's own service processes (job
service, worker pool, Spark master and workers) over that span, read from /proc every 20 ms.
The final shards of every engine are checked equal to the local engine's.

The default size is modest (2,000 URLs) because the machine is shared; pass --urls for more.

    python bench/engines.py --urls 2000 --processes 2
    python bench/engines.py --urls 2000 --engines local,spark-local
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import pyarrow as pa
import pyarrow.parquet as pq

from wit_pipeline.testing.processes import child_pids

REPO = pathlib.Path(__file__).resolve().parents[1]

STAGES = ("ingest", "balance", "download", "dedup", "reshard")
ENGINES = ("local", "beam", "beam-portable", "spark-local", "spark-standalone")
TICKS = os.sysconf("SC_CLK_TCK")


def tree_cpu(roots: list[int]) -> float:
    """CPU seconds of the live processes under `roots` (inclusive), with their reaped children."""
    children: dict[int, list[int]] = {}
    stats: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, parent = int(entry), int(fields[1])
        children.setdefault(parent, []).append(pid)
        stats[pid] = sum(int(x) for x in fields[11:15]) / TICKS  # utime stime cutime cstime
    total, todo, seen = 0.0, list(roots), set()
    while todo:
        pid = todo.pop()
        if pid in seen or pid not in stats:
            continue
        seen.add(pid)
        total += stats[pid]
        todo.extend(children.get(pid, []))
    return total


def write_inputs(workdir: pathlib.Path, base: str, count: int) -> pathlib.Path:
    captions = pq.read_table(REPO / "tests/data/text/laion_3000.parquet", columns=["TEXT"])["TEXT"].to_pylist()
    names = sorted(os.listdir(REPO / "tests/data/coco/images"))
    rows = [
        {"url": f"{base}/img/{i}/{names[i % len(names)]}", "caption": captions[i % len(captions)]} for i in range(count)
    ]
    path = workdir / "urls.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def write_config(
    workdir: pathlib.Path, engine: str, urls: pathlib.Path, processes: int, shard_size: int
) -> pathlib.Path:
    path = workdir / f"{engine}.toml"
    path.write_text(f"""output = '{workdir / engine}'
processes = {processes}

[ingest]
source = "urls"
input = ['{urls}']
metadata = '{REPO / "tests/data/text/entries.json"}'
shard_size = {shard_size}

[balance]
t = 200

[download]
allow_network = ["127.0.0.1/32"]
per_host_connections = 16
threads = 16
retries = 0
shard_size = {shard_size}

[dedup]
radius = 4

[reshard]
samples_per_shard = {shard_size}
""")
    return path


def start_server(images: str, workdir: pathlib.Path) -> tuple[subprocess.Popen, str]:
    """wit's test image server (wit_pipeline.testing.devserver) in a process of its own on
    127.0.0.1; the process and its base URL once it listens."""
    port_file = workdir / "port"
    server = subprocess.Popen(
        [sys.executable, "-m", "wit_pipeline.testing.devserver", "--images", images, "--port-file", str(port_file)],
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while not port_file.exists():
        if time.monotonic() > deadline or server.poll() is not None:
            raise SystemExit("the image server did not start")
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{port_file.read_text()}"


@contextlib.contextmanager
def engine_services(engine: str, workdir: pathlib.Path):
    """(extra wit flags, pids of the engine's own service processes) while they run."""
    workdir.mkdir(parents=True, exist_ok=True)
    if engine == "beam-portable":
        from wit_pipeline.testing.beam_services import portable_runner_args

        before = set(child_pids(os.getpid()))
        with portable_runner_args(workdir) as beam_args:
            yield ["--", *beam_args], sorted(set(child_pids(os.getpid())) - before)
    elif engine == "spark-standalone":
        from wit_pipeline.testing.spark_cluster import standalone_cluster

        with standalone_cluster(workdir / "cluster") as cluster:
            os.environ.update(cluster.env)
            try:
                yield ["--spark-master", cluster.master_url], [p.pid for p in cluster.workers] + [cluster.master.pid]
            finally:
                os.environ.pop("SPARK_CONF_DIR", None)
    else:
        yield [], []


def run_engine(engine: str, config: pathlib.Path, out: pathlib.Path, extra: list[str], services: list[int]) -> dict:
    """Run `wit curate` on `engine`; per stage (wall s, CPU s)."""
    name = {"beam-portable": "beam", "spark-local": "spark", "spark-standalone": "spark"}.get(engine, engine)
    # Beam's own flags come last, after a bare --.
    command = [sys.executable, "-m", "wit_pipeline", "-q", "curate", str(config), "--engine", name, *extra]
    log = open(config.with_suffix(".log"), "w")
    started = time.monotonic()
    run = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    marks, cpu_last, cpu, last = {}, 0.0, 0.0, started
    while True:
        alive = run.poll() is None
        now_cpu = tree_cpu([run.pid] + services) if alive else cpu_last
        cpu, cpu_last = max(cpu, now_cpu), now_cpu
        for stage in STAGES:
            if stage not in marks and (out / "curate" / f"{stage}.json").exists():
                marks[stage] = (time.monotonic() - last, cpu)
                last = time.monotonic()
        if not alive:
            break
        time.sleep(0.02)
    if run.returncode != 0:
        raise SystemExit(f"{engine}: wit curate failed; see {config.with_suffix('.log')}")
    # The last stage's CPU: the children's total, read once the process is reaped by wait().
    total_wall = time.monotonic() - started
    result, previous = {}, 0.0
    for stage in STAGES:
        wall, cpu_at = marks[stage]
        result[stage] = (wall, max(cpu_at - previous, 0.0))
        previous = cpu_at
    result["startup"] = (total_wall - sum(w for w, _ in result.values()), 0.0)
    return result


def stage_rows(out: pathlib.Path) -> dict:
    """rows_in -> kept of every stage, from its stats.json."""
    folders = {"ingest": "ingest", "balance": "balance", "download": "raw", "dedup": "dedup", "reshard": "final"}
    rows = {}
    for stage, folder in folders.items():
        stats = json.loads((out / folder / "stats.json").read_text())
        rows[stage] = f"{stats['rows_in']} -> {stats['kept']}"
    return rows


def final_bytes(out: pathlib.Path) -> dict:
    files = {p.name: p.read_bytes() for p in sorted((out / "final").glob("*")) if p.suffix in (".tar", ".parquet")}
    manifest = json.loads((out / "final" / "manifest.json").read_text())
    manifest.pop("provenance")
    return {"files": files, "manifest": manifest}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--urls", type=int, default=2000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--shard-size", type=int, default=250)
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="wit-bench-engines-"))
    server, base = start_server(str(REPO / "tests/data/coco/images"), workdir)
    results = {}
    try:
        urls = write_inputs(workdir, base, args.urls)
        for engine in args.engines.split(","):
            config = write_config(workdir, engine, urls, args.processes, args.shard_size)
            with engine_services(engine, workdir / f"{engine}-services") as (extra, services):
                results[engine] = run_engine(engine, config, workdir / engine, extra, services)
            if not results.get("_rows"):
                results["_rows"] = stage_rows(workdir / engine)
            same = final_bytes(workdir / engine) == final_bytes(workdir / args.engines.split(",")[0])
            print(f"{engine}: done; final shards equal to {args.engines.split(',')[0]}'s: {same}", flush=True)
    finally:
        server.terminate()
        server.wait()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        print_table(results, args)
    return 0


def print_table(results: dict, args) -> None:
    print(f"\nwit curate, {args.urls} loopback URLs, --processes {args.processes}, shard size {args.shard_size}")
    print("wall s / CPU s per stage; startup = process start before ingest is recorded; ratio = total to local's")
    header = ["engine", *STAGES, "total wall", "total CPU", "wall ratio", "CPU ratio"]
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    rows = results.pop("_rows", None)
    if rows:
        print("| rows in -> kept | " + " | ".join(rows[s] for s in STAGES) + " | | | | |")
    local = results.get("local")
    for engine, stages in results.items():
        wall = sum(w for w, _ in stages.values())
        cpu = sum(c for _, c in stages.values())
        cells = [f"{stages[s][0]:.1f} / {stages[s][1]:.1f}" for s in STAGES]
        ratios = ["", ""]
        if local:
            local_wall = sum(w for w, _ in local.values())
            local_cpu = sum(c for _, c in local.values())
            ratios = [f"{wall / local_wall:.2f}", f"{cpu / max(local_cpu, 1e-9):.2f}"]
        print("| " + " | ".join([engine, *cells, f"{wall:.1f}", f"{cpu:.1f}", *ratios]) + " |")


if __name__ == "__main__":
    sys.exit(main())
