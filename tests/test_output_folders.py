"""Output folders: each stage writes only a folder it made, one run at a time; kills, full disks
and read-only folders end in one line and never in a finished-looking shard that is wrong.

Real processes, real signals, a real tmpfs and `chattr +i` (both need root: skipped otherwise).
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest
from helpers.cli import one_line_error, url_list, wit
from helpers.paths import COCO_IMAGES

from wit_pipeline import io, shards
from wit_pipeline.testing.commands import wit_argv

IMAGES = sorted(p.name for p in COCO_IMAGES.iterdir())
IS_ROOT = os.geteuid() == 0


def start_wit(*args):
    return subprocess.Popen(
        wit_argv(*args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A suite started in the background (`cmd &` without job control, nohup) inherits SIGINT
        # ignored, and Python then installs no Ctrl-C handler: give the child the default back.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def download_args(input_path, out, *extra):
    return [
        "download",
        "--input",
        input_path,
        "--output",
        out,
        "--allow-network",
        "127.0.0.1/32",
        "--image-size",
        "64",
        "--timeout",
        "10",
        *extra,
    ]


def wait_for(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def done_count(raw: pathlib.Path) -> int:
    return len(list(raw.glob("*.done")))


def assert_finished_shards_are_sound(raw: pathlib.Path) -> int:
    """Every shard with a marker: its tar holds exactly its ok rows, each image matching its sha256."""
    total = 0
    for shard_id in shards.finished_shards(str(raw)):
        name = shards.shard_name(shard_id)
        sidecar = {r["uid"]: r for r in io.read_parquet(str(raw / f"{name}.parquet")).to_pylist()}
        ok = {uid for uid, row in sidecar.items() if row["status"] == "ok"}
        samples = dict(shards.iter_tar(str(raw / f"{name}.tar")))
        assert set(samples) == ok, name
        for uid, sample in samples.items():
            assert hashlib.sha256(sample["jpg"]).hexdigest() == sidecar[uid]["sha256"], (name, uid)
        total += len(ok)
    return total


@pytest.fixture
def downloaded(tmp_path, image_server):
    """A real run folder: OUT/raw from `wit download` (4 shards), then OUT/dedup from `wit dedup`."""
    urls = [f"{image_server.url}/img/{name}" for name in IMAGES[:8]]
    out = tmp_path / "out"
    assert (
        wit(
            *download_args(url_list(tmp_path / "list.parquet", urls), out, "--shard-size", "2", "--processes", "1")
        ).returncode
        == 0
    )
    assert wit("dedup", out).returncode == 0
    return out


def snapshot(folder: pathlib.Path) -> dict[str, bytes]:
    # The lock file names the last run that held the folder; everything else must stay as it was.
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".wit-lock"
    }


# --- 2: a stage refuses a folder it did not make ------------------------------------------------


@pytest.mark.slow
def test_reshard_never_writes_into_another_stages_or_a_foreign_folder(downloaded, tmp_path):
    raw = downloaded / "raw"
    before = snapshot(raw)
    one_line_error(wit("reshard", downloaded, "--output", raw), "output of `wit download`")
    assert snapshot(raw) == before

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "00000.tar").write_bytes(b"my own file")
    one_line_error(wit("reshard", downloaded, "--output", mine), "wit did not write")
    assert [p.name for p in mine.iterdir()] == ["00000.tar"] and (mine / "00000.tar").read_bytes() == b"my own file"

    assert wit("reshard", downloaded, "--processes", "1").returncode == 0
    assert wit("reshard", downloaded, "--processes", "1", "--seed", "3").returncode == 0  # its own folder: rewritten
    final = snapshot(downloaded / "final")
    other = tmp_path / "other"
    (other / "raw").mkdir(parents=True)
    for path in raw.iterdir():
        if path.is_file():
            (other / "raw" / path.name).write_bytes(path.read_bytes())
    assert wit("dedup", other).returncode == 0
    one_line_error(wit("reshard", other, "--output", downloaded / "final"), "other settings", "input")
    assert snapshot(downloaded / "final") == final


# --- 3: a second writer is refused, on every engine; a killed run leaves no stuck lock ------------


@pytest.mark.slow
def test_a_second_concurrent_download_is_refused_and_a_killed_one_leaves_no_lock(tmp_path, image_server):
    urls = [f"{image_server.url}/slow/3/{name}" for name in IMAGES[:12]]
    input_path = url_list(tmp_path / "list.parquet", urls)
    out = tmp_path / "out"
    first = start_wit(*download_args(input_path, out, "--shard-size", "2", "--processes", "1", "--threads", "1"))
    try:
        wait_for(lambda: (out / "raw" / "run.json").exists())
        for engine in ("local", "beam", "spark"):
            second = wit(*download_args(input_path, out, "--shard-size", "2", "--processes", "1", "--engine", engine))
            one_line_error(second, "being written by another wit run", f"PID {first.pid}")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    # The kernel dropped the lock with the process: the rerun resumes and finishes the job.
    rerun = wit(*download_args(input_path, out, "--shard-size", "2", "--processes", "2"))
    assert rerun.returncode == 0, rerun.stderr
    assert done_count(out / "raw") == 6
    assert assert_finished_shards_are_sound(out / "raw") == 12


# --- 4: killing the parent stops its workers ------------------------------------------------------


def _children(pid: int) -> list[int]:
    found = []
    for task in pathlib.Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _alive(pid: int) -> bool:
    try:
        state = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.slow
def test_killing_the_parent_stops_its_pool_workers(tmp_path, image_server):
    urls = [f"{image_server.url}/slow/2/{name}" for name in IMAGES[:8]]  # 4 s per shard of 2
    out = tmp_path / "out"
    parent = start_wit(
        *download_args(
            url_list(tmp_path / "list.parquet", urls), out, "--shard-size", "2", "--processes", "2", "--threads", "1"
        )
    )
    try:
        wait_for(
            lambda: (
                len(
                    [c for c in _children(parent.pid) if "spawn_main" in pathlib.Path(f"/proc/{c}/cmdline").read_text()]
                )
                == 2
            )
        )
        workers = [
            c
            for c in _children(parent.pid)
            if "spawn_main" in pathlib.Path(f"/proc/{c}/cmdline").read_text()
            and "resource_tracker" not in pathlib.Path(f"/proc/{c}/cmdline").read_text()
        ]
        time.sleep(0.5)  # the workers are inside their first shard
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
        wait_for(lambda: not any(_alive(w) for w in workers), timeout=2)  # well before a shard could end
        time.sleep(5)
        assert done_count(out / "raw") == 0  # nobody finished a shard after the parent was gone
    finally:
        for pid in _children(parent.pid) if _alive(parent.pid) else []:
            os.kill(pid, signal.SIGKILL)


# --- 7 and 15: unfinished downloads are refused; a finished shard's files are checked -----------


@pytest.mark.slow
def test_dedup_and_reshard_refuse_an_unfinished_download_unless_partial(downloaded):
    raw = downloaded / "raw"
    (raw / "00002.done").unlink()
    (raw / "00003.done").unlink()
    (raw / "00003.tar").unlink()
    (raw / "00003.parquet").unlink()
    one_line_error(wit("dedup", downloaded), "2 of 4 shards are unfinished", "00002", "--partial")
    assert wit("dedup", downloaded, "--partial").returncode == 0
    one_line_error(wit("reshard", downloaded), "2 of 4 shards are unfinished")
    assert wit("reshard", downloaded, "--partial", "--processes", "1").returncode == 0
    manifest = json.loads((downloaded / "final" / "manifest.json").read_text())
    assert manifest["samples"] == 4


@pytest.mark.slow
def test_a_finished_shard_whose_sidecar_was_deleted_is_redone(downloaded, tmp_path, image_server):
    raw = downloaded / "raw"
    (raw / "00001.parquet").unlink()
    urls = [f"{image_server.url}/img/{name}" for name in IMAGES[:8]]
    rerun = wit(
        *download_args(url_list(tmp_path / "list.parquet", urls), downloaded, "--shard-size", "2", "--processes", "1")
    )
    assert rerun.returncode == 0, rerun.stderr
    assert "(3 already finished)" in rerun.stdout
    assert (raw / "00001.parquet").exists() and assert_finished_shards_are_sound(raw) == 8


# --- 11 and 12: Ctrl-C, a full disk and a read-only folder end in one line --------------------


@pytest.mark.slow
def test_ctrl_c_with_one_process_prints_the_rerun_line_and_the_rerun_completes(tmp_path, image_server):
    urls = [f"{image_server.url}/img/{IMAGES[i % len(IMAGES)]}" for i in range(300)]
    urls += [f"{image_server.url}/slow/0.5/{name}" for name in IMAGES[:4]]
    input_path = url_list(tmp_path / "list.parquet", urls)
    out = tmp_path / "out"
    run = start_wit(*download_args(input_path, out, "--processes", "1", "--threads", "8", "--image-size", "256"))
    wait_for(lambda: (out / "raw" / "00000.tar").exists() and (out / "raw" / "00000.tar").stat().st_size > 100_000)
    run.send_signal(signal.SIGINT)
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 130, (run.returncode, stderr)
    assert "interrupted; rerun the same command to resume" in stderr and "Fatal Python error" not in stderr
    assert done_count(out / "raw") == 0
    assert wit(*download_args(input_path, out, "--processes", "1", "--image-size", "256")).returncode == 0
    assert assert_finished_shards_are_sound(out / "raw") == len(urls)


@pytest.fixture
def small_disk(tmp_path):
    if not IS_ROOT:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


@pytest.mark.slow
@pytest.mark.parametrize("processes", ["1", "2"])
def test_a_full_disk_is_one_line_and_no_wrong_shard_is_marked_finished(tmp_path, image_server, small_disk, processes):
    urls = [f"{image_server.url}/img/{IMAGES[i % len(IMAGES)]}" for i in range(60)]
    input_path = url_list(tmp_path / "list.parquet", urls)
    result = wit(
        *download_args(
            input_path, small_disk / "out", "--processes", processes, "--shard-size", "20", "--image-size", "256"
        )
    )
    one_line_error(result, "cannot write", str(small_disk / "out" / "raw"), "No space left on device")
    assert not list((small_disk / "out" / "raw").glob("*.tmp-*"))
    assert_finished_shards_are_sound(small_disk / "out" / "raw")


@pytest.fixture
def immutable_folder(tmp_path):
    if not IS_ROOT:
        pytest.skip("chattr +i needs root")
    folder = tmp_path / "locked"
    folder.mkdir()
    subprocess.run(["chattr", "+i", str(folder)], check=True)
    yield folder
    subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_an_unwritable_output_folder_is_one_line(tmp_path, image_server, immutable_folder):
    input_path = url_list(tmp_path / "list.parquet", [f"{image_server.url}/img/{IMAGES[0]}"])
    one_line_error(
        wit(*download_args(input_path, immutable_folder, "--processes", "1")),
        "cannot write",
        str(immutable_folder / "raw"),
    )
    one_line_error(wit("dedup", tmp_path, "--output", immutable_folder / "dedup", "--partial"), "cannot write")


# --- object stores have no OS lock: the lock file names its owner --------------------------------


def test_an_object_store_lock_is_refused_while_its_owner_lives_and_taken_over_after():
    import socket

    import fsspec

    from wit_pipeline import claim

    fs = fsspec.filesystem("memory")
    identity = {"stage": "dedup", "input": "memory://run/raw"}
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for holder, refused in ((os.getppid(), True), (dead.pid, False)):
        fs.pipe("/run/dedup/.wit-lock", json.dumps({"pid": holder, "host": socket.gethostname()}).encode())
        if refused:
            with pytest.raises(claim.FolderBusy, match=f"PID {holder} on .*remove memory://run/dedup/.wit-lock"):
                claim.claim("memory://run/dedup", identity)
        else:
            claim.claim("memory://run/dedup", identity)
            assert json.loads(fs.cat("/run/dedup/.wit-lock"))["pid"] == os.getpid()
            claim.release("memory://run/dedup")
            assert not fs.exists("/run/dedup/.wit-lock")
    fs.rm("/run", recursive=True)
