"""Benchmark of the text stages: query matching, language ID, the whole ingest text stage, balance.

Peers, as the issue names them: MetaCLIP's naive substring loop (matching), the per-core goal of
100,000 captions/s (matching and language ID). Input: the 10,000 real LAION alt texts repeated.

    python bench/text.py --laion ../shared/data/laion-sample/test_10000.parquet \
        --metadata entries.json --rows 1000000

`entries.json` comes from `wit metadata build` (see bench/README.md for the exact command).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import pyarrow.parquet as pq

from wit_pipeline import schema
from wit_pipeline.sources.base import Source, SourceShard, make_record


class RepeatedSource(Source):
    """The real captions repeated to `rows` rows; each repeat gets its own URL (no duplicates)."""

    name = "bench"

    def __init__(self, pairs, rows, shard_size):
        self.pairs, self.rows, self.shard_size = pairs, rows, shard_size

    def shards(self):
        return [
            SourceShard(i, "memory", s, min(s + self.shard_size, self.rows))
            for i, s in enumerate(range(0, self.rows, self.shard_size))
        ]

    def read(self, shard):
        n = len(self.pairs)
        for i in range(shard.start, shard.stop):
            url, caption = self.pairs[i % n]
            yield make_record(f"{url}#{i // n}", caption, self.name)


def rate(count, seconds):
    return count / max(seconds, 1e-9)


def bench_matching(captions, entries, naive_sample, rows):
    from wit_pipeline.text.matching import Matcher, naive_match

    started = time.perf_counter()
    matcher = Matcher(entries)
    build_s = time.perf_counter() - started
    sample = captions[:naive_sample]
    started = time.perf_counter()
    expected = [naive_match(c, entries) for c in sample]
    naive_rate = rate(len(sample), time.perf_counter() - started)
    identical = all(matcher.match(c) == e for c, e in zip(sample, expected, strict=True))
    started, cpu_started = time.perf_counter(), time.process_time()
    total_matches = 0
    for i in range(rows):
        total_matches += len(matcher.match(captions[i % len(captions)]))
    auto_rate = rate(rows, time.perf_counter() - started)
    auto_cpu_rate = rate(rows, time.process_time() - cpu_started)
    print(
        f"matching, {len(entries):,} entries: automaton built in {build_s:.1f} s; "
        f"{auto_rate:,.0f} captions/s wall, {auto_cpu_rate:,.0f} per CPU-second, over {rows:,} captions "
        f"({total_matches / rows:.1f} matches per caption)"
    )
    print(
        f"  MetaCLIP naive loop: {naive_rate:,.1f} captions/s on {len(sample)} captions (extrapolated "
        f"to {rows:,}: {rows / naive_rate / 3600:,.1f} h); automaton / naive = {auto_rate / naive_rate:,.0f}x; "
        f"identical matches on the sample: {identical}"
    )
    return {
        "entries": len(entries),
        "automaton_captions_per_s": auto_rate,
        "automaton_captions_per_cpu_s": auto_cpu_rate,
        "naive_captions_per_s": naive_rate,
        "speedup": auto_rate / naive_rate,
        "identical": identical,
        "build_s": build_s,
    }


def bench_langid(captions, rows, rounds=5, batch=4096):
    """Batched language ID (what the text stage does, `batch` captions per call) against one call
    per caption (the previous path), interleaved round by round on the same captions; rates per
    CPU-second of this one process, so they are per core whatever else the machine runs."""
    from wit_pipeline.text import langid

    model = langid.load_model()
    work = [captions[i % len(captions)] for i in range(rows)]
    chunks = [work[i : i + batch] for i in range(0, rows, batch)]
    runs = {"batch": [], "single": []}
    for _ in range(rounds):
        cpu_started = time.process_time()
        for chunk in chunks:
            langid.predict_many(model, chunk)
        runs["batch"].append(rate(rows, time.process_time() - cpu_started))
        cpu_started = time.process_time()
        for caption in work:
            langid.predict(model, caption)
        runs["single"].append(rate(rows, time.process_time() - cpu_started))
    ratios = [b / s for b, s in zip(runs["batch"], runs["single"], strict=True)]
    print(f"language ID (lid.176.ftz), {rows:,} captions x {rounds} interleaved rounds, captions per CPU-second:")
    print(
        f"  batched ({batch} per call): median {statistics.median(runs['batch']):,.0f} "
        f"(min {min(runs['batch']):,.0f}, max {max(runs['batch']):,.0f}); batch call works: "
        f"{langid.batch_predict_works(model)}"
    )
    print(
        f"  one caption per call:     median {statistics.median(runs['single']):,.0f} "
        f"(min {min(runs['single']):,.0f}, max {max(runs['single']):,.0f})"
    )
    print(f"  ratio per round: {', '.join(f'{r:.2f}' for r in ratios)}")
    return {"batch_captions_per_cpu_s": runs["batch"], "single_captions_per_cpu_s": runs["single"], "ratios": ratios}


def bench_stage(pairs, metadata_path, rows, processes, shard_size):
    from wit_pipeline.config import IngestConfig, MatchConfig
    from wit_pipeline.ingest import stage as ingest

    out = tempfile.mkdtemp(prefix="wit-bench-text-")
    config = IngestConfig(match=MatchConfig(metadata_path=metadata_path))
    cpu_before = _cpu_seconds()
    started = time.perf_counter()
    from wit_pipeline.engines.local import LocalEngine

    summary = ingest.run(LocalEngine(processes), out, config, source=RepeatedSource(pairs, rows, shard_size))
    seconds = time.perf_counter() - started
    cpu = _cpu_seconds() - cpu_before  # this process and its (finished) workers
    shutil.rmtree(out, ignore_errors=True)
    print(
        f"text stage (normalise, filter, LID, match, write, dedup) on the local engine, {processes} processes: "
        f"{rows:,} rows in {seconds:.1f} s = {rate(rows, seconds):,.0f} rows/s wall; "
        f"{rate(rows, cpu):,.0f} rows per CPU-second (includes each worker loading the model and "
        f"building the automaton); kept {summary['kept']:,}"
    )
    return {
        "rows": rows,
        "seconds": seconds,
        "rows_per_s": rate(rows, seconds),
        "cpu_seconds": cpu,
        "rows_per_cpu_s": rate(rows, cpu),
        "kept": summary["kept"],
    }


def _cpu_seconds() -> float:
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def bench_balance(captions, entries, rows, shard_size, t):
    """Balance on `rows` matched rows: ingest parts are written directly (matches from the automaton)."""
    from wit_pipeline.ingest import stage as ingest
    from wit_pipeline.text.matching import Matcher

    matcher = Matcher(entries)
    matches = [matcher.match(c) for c in captions]
    out = tempfile.mkdtemp(prefix="wit-bench-balance-")
    folder = ingest.ingest_folder(out)
    for part_id, start in enumerate(range(0, rows, shard_size)):
        part = []
        for i in range(start, min(start + shard_size, rows)):
            row = schema.empty_row(schema.TEXT_SCHEMA)
            caption = captions[i % len(captions)]
            url = f"http://bench/{i}.jpg"
            row.update(
                uid=schema.uid(url, caption),
                url=url,
                caption=caption,
                status="ok",
                lang="en",
                lang_score=1.0,
                entries=matches[i % len(captions)],
            )
            part.append(row)
        ingest.write_part(ingest.part_path(folder, part_id), part)
    del matcher
    # In a fresh process, so the peak memory is balance's own, not this script's.
    code = (
        "import json, resource, sys, time\n"
        "from wit_pipeline.balance import stage as balance\n"
        "from wit_pipeline.config import BalanceConfig\n"
        "from wit_pipeline.engines.local import LocalEngine\n"
        "started = time.perf_counter()\n"
        f"summary = balance.run(LocalEngine(1), {out!r}, BalanceConfig(t={t}, seed=0))\n"
        "seconds = time.perf_counter() - started\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "print(json.dumps({'seconds': seconds, 'peak_rss_mib': peak, 'kept': summary['kept'],"
        " 'entries_capped': summary['entries_capped'], 'entries_matched': summary['entries_matched']}))\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "-c", code], cwd=root, check=True, capture_output=True, text=True)
    shutil.rmtree(out, ignore_errors=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(
        f"balance, {rows:,} rows, t={t}, one process: {result['seconds']:.1f} s, peak RSS "
        f"{result['peak_rss_mib']:,.0f} MiB (whole interpreter); kept {result['kept']:,}, "
        f"{result['entries_capped']:,} of {result['entries_matched']:,} entries capped"
    )
    return {"rows": rows, **result}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--laion", default="../shared/data/laion-sample/test_10000.parquet")
    parser.add_argument("--metadata", required=True, help="entries.json from `wit metadata build`")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows for matching and balance")
    parser.add_argument("--lid-rows", type=int, default=100_000)
    parser.add_argument("--stage-rows", type=int, default=1_000_000)
    parser.add_argument("--naive-sample", type=int, default=100)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--shard-size", type=int, default=50_000)
    parser.add_argument("--t", type=int, default=20_000)
    parser.add_argument("--only", default="matching,langid,stage,balance", help="comma-separated parts to run")
    args = parser.parse_args()

    table = pq.read_table(args.laion).to_pylist()
    pairs = [(r["URL"], r["TEXT"]) for r in table]
    captions = [r["TEXT"].replace("\n", " ") for r in table]
    with open(args.metadata) as f:
        entries = json.load(f)
    print(
        f"input: {len(captions):,} real LAION captions, repeated; {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f} at start (a shared machine: wall rates vary with it)"
    )
    parts = {
        "matching": lambda: bench_matching(captions, entries, args.naive_sample, args.rows),
        "langid": lambda: bench_langid(captions, args.lid_rows),
        "stage": lambda: bench_stage(pairs, args.metadata, args.stage_rows, args.processes, args.shard_size),
        "balance": lambda: bench_balance(captions, entries, args.rows, args.shard_size, args.t),
    }
    results = {name: parts[name]() for name in args.only.split(",")}
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
