"""Who may write an output folder: the stage that made it, one run at a time.

`claim(folder, identity)` is called once per command by the driver (local, Beam or Spark alike),
before anything is written, and does two things:

1. **Ownership.** A folder that a wit stage made holds `run.json` with that stage's identity (its
   name and the settings that shape its shards). An empty or missing folder is claimed by writing
   one; a folder holding files but no `run.json` was not made by wit and is refused, as is a
   folder made by another stage or with other settings (the error names the settings): a
   completion marker says that a shard is finished, not what made it, so resuming with another
   input or configuration would mix two runs' shards. And a mistyped `--output` can never
   delete or overwrite files that wit did not write.
2. **A single writer.** Two runs writing one folder at once corrupt it silently (shards marked
   finished with members of the other run's tar). The driver takes an exclusive lock for the
   whole command: on a local folder an OS lock (`flock`) on `.wit-lock`, which the kernel drops
   when the process dies, so a killed run never leaves it stuck; on an object store, where no
   such lock exists, a lock file naming the owner's host and PID, taken over when that PID is no
   longer alive on this host, and otherwise reported with the file to remove.

The lock is held until `release_all()` (the CLI calls it when a command ends) or process exit.
A second claim of a folder this process already holds is a no-op, so a stage may claim its folder
from the command and again from its library entry point.
"""

from __future__ import annotations

import atexit
import json
import os
import socket
import typing

from wit_pipeline import io

LOCK_FILE = ".wit-lock"
RUN_FILE = "run.json"
# Names a claimed folder may hold before its run.json exists: our own lock file.
_OURS = {LOCK_FILE}

_held: dict[str, str | typing.TextIO] = {}  # folder -> open lock file (local) or lock path (object store)
_created: set[str] = set()  # folders whose run.json this process wrote, empty before


class FolderBusy(io.InputError):
    """Another live run holds the folder's lock."""


def claim(folder: str, identity: dict) -> None:
    """Lock `folder` for this process and bind it to `identity` (must hold a "stage" key)."""
    key = _key(folder)
    if key not in _held:
        _own(folder, identity, write=False)  # refuse a foreign folder before writing anything into it
        io.makedirs(folder)
        _held[key] = _lock(folder)
    try:
        _own(folder, identity)
    except io.InputError:
        release(folder)
        raise


def abandon(folder: str) -> None:
    """Undo a claim whose run never started (its input failed to plan): when this process found
    the folder empty, remove what it wrote, so that a corrected rerun is not refused as a run
    "with other settings". A folder claimed earlier is left as it is."""
    key = _key(folder)
    if key not in _created:
        return
    _created.discard(key)
    for name in io.names(folder):
        if name not in _OURS:
            io.remove(io.join(folder, name), recursive=True)


def release(folder: str) -> None:
    """Drop this process's lock on `folder` (a no-op when it holds none)."""
    _created.discard(_key(folder))
    handle = _held.pop(_key(folder), None)
    if handle is None:
        return
    if isinstance(handle, str):
        io.remove(handle)
    else:
        handle.close()  # closing the descriptor drops the flock


def release_all() -> None:
    for folder in list(_held):
        release(folder)


atexit.register(release_all)


def _key(folder: str) -> str:
    return os.path.realpath(folder) if "://" not in folder else folder.rstrip("/")


def _own(folder: str, identity: dict, write: bool = True) -> None:
    wanted = json.loads(json.dumps(identity, sort_keys=True, default=str))
    if not io.exists(folder):
        if write:
            raise io.InputError(f"{folder} vanished while being claimed")
        return
    found = io.read_json(io.join(folder, RUN_FILE))
    if found is not None:
        if found.get("stage") != wanted.get("stage"):
            raise io.InputError(
                f"{folder} is the output of `wit {found.get('stage')}`, not of "
                f"`wit {wanted.get('stage')}`; use a new output folder"
            )
        if found != wanted:
            found_flat, wanted_flat = _flatten(found), _flatten(wanted)
            differing = sorted(k for k in set(found_flat) | set(wanted_flat) if found_flat.get(k) != wanted_flat.get(k))
            raise io.InputError(
                f"{folder} holds output made with other settings ({', '.join(differing)} differ); "
                f"rerun with the same settings to resume, or use a new output folder"
            )
        return
    foreign = [name for name in io.names(folder) if name not in _OURS]
    if foreign:
        raise io.InputError(
            f"{folder} holds files that wit did not write ({', '.join(foreign[:3])}"
            f"{' ...' if len(foreign) > 3 else ''}; no {RUN_FILE}); use an empty or new output folder"
        )
    if not write:
        return
    io.write_json(io.join(folder, RUN_FILE), wanted)
    _created.add(_key(folder))


def _owner() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname()}


def _lock(folder: str):
    path = io.join(folder, LOCK_FILE)
    if "://" not in folder or folder.startswith("file://"):
        return _flock(io.fs_path(path)[1], folder)
    return _lock_file(path, folder)


def _flock(path: str, folder: str):
    import fcntl

    with io.writing(path):
        handle = open(path, "a+")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip()
        handle.close()
        raise FolderBusy(
            f"{folder} is being written by another wit run ({_describe(holder)}); "
            "wait for it to finish, or use another output folder"
        ) from None
    with io.writing(path):
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(_owner()))
        handle.flush()
    return handle


def _lock_file(path: str, folder: str) -> str:
    """An object store has no locks: a file naming the owner, taken over only from a dead local PID."""
    if io.exists(path):
        holder = io.read_bytes(path).decode(errors="replace")
        if not _holder_is_dead(holder):
            raise FolderBusy(
                f"{folder} is being written by another wit run ({_describe(holder)}); if that run "
                f"is gone, remove {path}"
            )
    io.write_atomic(path, json.dumps(_owner()).encode())
    return path


def _holder_is_dead(holder: str) -> bool:
    try:
        owner = json.loads(holder)
    except ValueError:
        return False
    if owner.get("host") != socket.gethostname():
        return False  # another machine's PID cannot be checked from here
    try:
        os.kill(int(owner["pid"]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, KeyError, ValueError, TypeError):
        return False
    return False


def _describe(holder: str) -> str:
    try:
        owner = json.loads(holder)
        return f"PID {owner['pid']} on {owner['host']}"
    except (ValueError, KeyError, TypeError):
        return "owner unknown"


def location(path: str) -> str:
    """`path` as recorded in an identity: absolute when local, so a rerun from elsewhere matches."""
    return path if "://" in path else os.path.abspath(path)


def _flatten(value, prefix: str = "") -> dict:
    """{"a": {"b": 1}} -> {"a.b": 1}, so that an error can name the exact setting that differs."""
    if not isinstance(value, dict):
        return {prefix: value}
    flat = {}
    for key, item in value.items():
        flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    return flat
