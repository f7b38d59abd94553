"""Faults survived, nothing lost: `wit curate` SIGKILLed at many moments over the stages and rerun
gives the uninterrupted run's bytes; a full disk or a read-only output is one clear line, leaves
no marker on a partial shard, and the same command completes once there is room.

What is byte-compared: every final shard (tar and Parquet) and `manifest.json` less its
`provenance` object, which records this copy's times, engine and per-stage stats (see
reshard.write_manifest); everything else in the manifest is a function of the data and settings.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from helpers.curate import example_config, final_files
from helpers.paths import REPO_ROOT

from wit_pipeline import io, shards

pytestmark = pytest.mark.slow


def manifest_bytes(out):
    manifest = json.loads((out / "final" / "manifest.json").read_text())
    manifest.pop("provenance")
    return io.json_bytes(manifest)


def exists(out, *names):
    return all((out / name).exists() for name in names)


def missing(out, name):
    return not (out / name).exists()


# Moments to kill at, in pipeline order: (what is happening, when it is true). Each run is killed
# at the first moment still ahead of it that holds; a stage too quick to catch is skipped.
MOMENTS = [
    (
        "ingest: shard written, global dedup pending",
        lambda o: exists(o, "ingest/00000.done") and missing(o, "ingest/stats.json"),
    ),
    (
        "balance: parts written, stats pending",
        lambda o: exists(o, "balance/part-00000.parquet") and missing(o, "balance/stats.json"),
    ),
    ("download: first shard being written", lambda o: exists(o, "raw/00000.tar") and missing(o, "raw/00000.done")),
    (
        "download: some shards finished",
        lambda o: len(shards.finished_shards(o / "raw")) >= 1 and missing(o, "raw/stats.json"),
    ),
    ("between download and dedup", lambda o: exists(o, "curate/download.json") and missing(o, "dedup/stats.json")),
    ("reshard: routing", lambda o: exists(o, "final/_routing") and missing(o, "final/manifest.json")),
    (
        "reshard: final shards being assembled",
        lambda o: exists(o, "final/00000.tar") and missing(o, "final/manifest.json"),
    ),
]


@pytest.mark.parametrize("engine", ["local", "spark"])
def test_sigkill_at_many_moments_then_rerun_gives_the_uninterrupted_bytes(tmp_path, engine):
    # One process and 30-row shards: stages long enough to be caught in the act. The reference
    # is the local engine's uninterrupted run; the killed one runs on `engine` (Spark: its JVM
    # and Python workers are in the killed process group too).
    slow = [("processes = 2", "processes = 1"), ("shard_size = 40", "shard_size = 30")]
    reference = example_config(tmp_path, "reference", replace=slow)
    subprocess.run(
        [sys.executable, "-m", "wit_pipeline", "-q", "curate", str(reference)],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
        timeout=300,
    )
    config = example_config(tmp_path, "killed", replace=slow)
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "wit_pipeline", "-q", "curate", str(config), "--engine", engine]
    ahead, kills = list(MOMENTS), []
    for _ in range(len(MOMENTS) + 1):
        run = subprocess.Popen(
            command, cwd=REPO_ROOT, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        killed = None
        deadline = time.monotonic() + 300
        while run.poll() is None and killed is None and time.monotonic() < deadline:
            for index, (moment, holds) in enumerate(ahead):
                if holds(out):
                    os.killpg(run.pid, signal.SIGKILL)
                    killed, ahead = moment, ahead[index + 1 :]
                    break
            time.sleep(0.005)
        run.wait()
        if killed is None:
            assert run.returncode == 0, "the run neither finished nor was killed"
            break
        kills.append(killed)
    print(f"kills on {engine}: {kills}")  # shown with pytest -s
    assert len(kills) >= 5, f"only {len(kills)} kills landed: {kills}"
    assert len({moment.split(":")[0].split(" ")[0] for moment in kills}) >= 3, kills
    assert final_files(out) == final_files(tmp_path / "reference")
    assert manifest_bytes(out) == manifest_bytes(tmp_path / "reference")


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 1 MiB tmpfs (root only): the full disk and the read-only folder a test needs."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "mnt"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def curate(config, *flags):
    return subprocess.run(
        [sys.executable, "-m", "wit_pipeline", "-q", "curate", str(config), *flags],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def assert_one_line_naming(result, path, *fragments, engine_logs=False):
    """One error line naming `path`, the last of stderr. `engine_logs`: Beam and Spark log a failed
    worker's traceback themselves (at ERROR) before wit's line; those logs are the engine's."""
    assert result.returncode != 0
    lines = [line for line in result.stderr.strip().splitlines() if line.startswith("wit ") and " error: " in line]
    assert len(lines) == 1 and result.stderr.strip().splitlines()[-1] == lines[0], result.stderr[-2000:]
    assert engine_logs or "Traceback" not in result.stderr, result.stderr[-2000:]
    assert str(path) in lines[0]
    for fragment in fragments:
        assert fragment in lines[0]


ENGINE_FLAGS = {
    "local": [],
    "spark": ["--engine", "spark"],
    "beam": ["--engine", "beam", "--", "--direct_running_mode=in_memory"],
}


@pytest.mark.parametrize("engine", sorted(ENGINE_FLAGS))
def test_a_full_disk_is_one_line_no_partial_marker_and_the_rerun_completes(tmp_path, small_tmpfs, engine):
    # 256-pixel images: about 2.5 MB of shards, on a 1 MiB disk. On Spark and Beam the disk fills
    # inside a worker, and the engine's wrapped report becomes the same one line.
    config = example_config(
        tmp_path, "full", replace=[("image_size = 64", "image_size = 256")], output=small_tmpfs / "out"
    )
    result = curate(config, *ENGINE_FLAGS[engine])
    assert_one_line_naming(result, small_tmpfs / "out", "No space left on device", engine_logs=engine != "local")
    raw = small_tmpfs / "out" / "raw"
    for tar in raw.glob("*.tar"):
        shard_id = int(tar.stem)
        if shards.is_done(str(raw), shard_id):  # a marked shard is whole: its sidecar lists every row
            assert (raw / f"{tar.stem}.parquet").exists()
    assert any(not shards.is_done(str(raw), int(t.stem)) for t in raw.glob("*.tar")), "a partial shard"
    assert not list(small_tmpfs.rglob("*.tmp-*")), "no temporary file left taking space"

    subprocess.run(["mount", "-o", "remount,size=32m", str(small_tmpfs)], check=True)
    result = curate(config, *ENGINE_FLAGS[engine])
    assert result.returncode == 0, result.stderr[-2000:]
    reference = example_config(tmp_path, "reference", replace=[("image_size = 64", "image_size = 256")])
    assert curate(reference).returncode == 0
    assert final_files(small_tmpfs / "out") == final_files(tmp_path / "reference")


def test_a_read_only_output_is_one_line_and_the_rerun_completes(tmp_path, small_tmpfs):
    subprocess.run(["mount", "-o", "remount,ro", str(small_tmpfs)], check=True)
    config = example_config(tmp_path, "read-only", output=small_tmpfs / "out")
    assert_one_line_naming(curate(config), small_tmpfs / "out", "Read-only file system")
    subprocess.run(["mount", "-o", "remount,rw,size=32m", str(small_tmpfs)], check=True)
    result = curate(config)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (small_tmpfs / "out" / "final" / "manifest.json").exists()
