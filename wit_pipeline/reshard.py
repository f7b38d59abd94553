"""The reshard stage: raw shards + keep list -> shuffled final shards of a fixed size + manifest.

How it shuffles without holding the dataset in memory:

1. **Plan** (one process): read the keep list, sort its uids, and draw one permutation of them
   from `seed`. Sample `k` of the permutation goes to final shard `k // samples_per_shard`. Only
   uids and positions are held: about 50 bytes per sample, never an image.
2. **Route** (one task per raw shard, in parallel): read the raw shard's tar and sidecar, keep
   the kept samples, tag each with its position and write them, sorted by position, to a
   routing file with small row groups. Holds one raw shard at a time.
3. **Assemble** (one task per final shard, in parallel): read the position range of the shard
   from every routing file (Parquet row-group statistics skip the rest), order by position and
   write `NNNNN.tar` + `NNNNN.parquet`. Holds one final shard at a time.

Memory grows with the shard sizes, not the dataset. The shuffle is a true uniform permutation
(a streaming shuffle buffer, as in webdataset, only mixes nearby samples), and it depends only
on the keep list and the seed: the same inputs give the same shards, byte for byte, on every
engine and rerun. The cost is one extra copy of the kept samples on disk, removed at the end.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import dataclass

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from wit_pipeline import schema, shards
from wit_pipeline.config import ReshardConfig, to_dict
from wit_pipeline.dedup.rows import fixed_width_bytes

ROUTING_FOLDER = "_routing"
MANIFEST = "manifest.json"
POSITION = "_position"
MEMBERS = "_members"
MEMBER_TYPE = pa.list_(pa.struct([("ext", pa.string()), ("data", pa.binary())]))
# Small row groups let an assemble task read only the part of a routing file it needs.
ROUTING_ROW_GROUP = 256
_FINAL_FILE = re.compile(r"^\d{5,}(\.tar|\.parquet|_stats\.json|\.done)$")


@dataclass(frozen=True)
class RouteTask:
    """One raw shard's kept samples: their uids and their positions in the final order."""

    raw_folder: str
    raw_shard: int
    routing_folder: str
    uids: np.ndarray  # S32
    positions: np.ndarray  # int64


@dataclass(frozen=True)
class AssembleTask:
    final_shard: int
    start: int  # first position of the shard
    count: int
    routing_files: tuple[str, ...]
    output_folder: str


@dataclass(frozen=True)
class Plan:
    route_tasks: list[RouteTask]
    assemble_tasks: list[AssembleTask]
    samples: int


def plan(keep: pa.Table, raw_folder: str, output_folder: str, config: ReshardConfig) -> Plan:
    """Positions of every kept sample in the shuffled order, and the tasks that realise them."""
    uids = fixed_width_bytes(keep["uid"], 32, "keep list uid")
    raw_shard = keep["shard"].to_numpy().astype(np.int64) if keep.num_rows else np.zeros(0, np.int64)
    if len(np.unique(uids)) != len(uids):
        raise shards.InputError("the keep list names a uid twice; rerun dedup")
    by_uid = np.argsort(uids, kind="stable")
    # A permutation of the uid-sorted list: it depends on the set of uids and the seed only.
    order = by_uid[np.random.default_rng(config.seed).permutation(len(uids))]
    position = np.empty(len(uids), dtype=np.int64)
    position[order] = np.arange(len(uids))
    routing_folder = shards.join(output_folder, ROUTING_FOLDER)
    route_tasks = []
    for shard_id in np.unique(raw_shard):
        members = raw_shard == shard_id
        route_tasks.append(RouteTask(raw_folder, int(shard_id), routing_folder, uids[members], position[members]))
    routing_files = tuple(routing_path(routing_folder, task.raw_shard) for task in route_tasks)
    size = config.samples_per_shard
    assemble_tasks = [
        AssembleTask(k, k * size, min(size, len(uids) - k * size), routing_files, output_folder)
        for k in range(-(-len(uids) // size))
    ]
    return Plan(route_tasks, assemble_tasks, len(uids))


def routing_path(routing_folder: str, raw_shard: int) -> str:
    return shards.join(routing_folder, f"{shards.shard_name(raw_shard)}.parquet")


def route_shard(task: RouteTask) -> dict:
    """Write the raw shard's kept samples, sorted by final position, to its routing file."""
    name = shards.shard_name(task.raw_shard)
    sidecar = shards.read_parquet(shards.join(task.raw_folder, f"{name}.parquet"))
    wanted = pa.array(task.uids.astype(str))
    sidecar = sidecar.filter(pc.is_in(sidecar["uid"], value_set=wanted))
    position_of = dict(zip(task.uids.astype(str).tolist(), task.positions.tolist()))
    members: dict[str, list] = {}
    for key, sample in shards.iter_tar(shards.join(task.raw_folder, f"{name}.tar")):
        if key in position_of:
            members[key] = [{"ext": ext, "data": data} for ext, data in sample.items()]
    missing = sorted(set(position_of) - set(members) | set(position_of) - set(sidecar["uid"].to_pylist()))
    if missing:
        raise shards.InputError(
            f"raw shard {name} lacks {len(missing)} kept samples (first {missing[0]}): "
            "the keep list does not match the raw shards; rerun dedup"
        )
    if sidecar.num_rows != len(position_of):
        raise shards.InputError(f"raw shard {name}: a kept uid appears twice in its sidecar")
    uid_list = sidecar["uid"].to_pylist()
    routed = sidecar.append_column(POSITION, pa.array([position_of[u] for u in uid_list], pa.int64()))
    routed = routed.append_column(MEMBERS, pa.array([members[u] for u in uid_list], MEMBER_TYPE))
    routed = routed.sort_by(POSITION)
    _write_parquet(routing_path(task.routing_folder, task.raw_shard), routed, ROUTING_ROW_GROUP)
    return {"raw_shard": task.raw_shard, "rows": routed.num_rows}


def assemble_shard(task: AssembleTask) -> dict:
    """Write final shard `task.final_shard`: its samples in position order, tar and sidecar."""
    end = task.start + task.count
    parts = []
    for path in task.routing_files:
        fs, fs_path = fsspec.core.url_to_fs(path)
        table = pq.read_table(
            fs_path, filesystem=fs, filters=[(POSITION, ">=", task.start), (POSITION, "<", end)]
        )
        if table.num_rows:
            parts.append(table)
    table = pa.concat_tables(parts).sort_by(POSITION) if parts else None
    if table is None or table.num_rows != task.count:
        found = 0 if table is None else table.num_rows
        raise shards.InputError(f"final shard {task.final_shard}: routed {found} samples, planned {task.count}")
    name = shards.shard_name(task.final_shard)
    tar_path = shards.join(task.output_folder, f"{name}.tar")
    with shards.TarSampleWriter(tar_path) as tar:
        for uid, members in zip(table["uid"].to_pylist(), table[MEMBERS].to_pylist()):
            tar.write(uid, {member["ext"]: member["data"] for member in members})
    sidecar = table.drop_columns([POSITION, MEMBERS])
    _write_parquet(shards.join(task.output_folder, f"{name}.parquet"), sidecar)
    stats = shard_facts(task.output_folder, task.final_shard, table.num_rows)
    shards.mark_done(task.output_folder, task.final_shard, stats)
    return stats


def shard_facts(folder: str, shard_id: int, samples: int) -> dict:
    """Name, sample count, sizes and tar checksum of one written final shard."""
    name = shards.shard_name(shard_id)
    facts = {"shard": name, "samples": samples}
    for ext in ("tar", "parquet"):
        fs, path = fsspec.core.url_to_fs(shards.join(folder, f"{name}.{ext}"))
        facts[f"{ext}_bytes"] = fs.size(path)
    facts["tar_sha256"] = _sha256_file(shards.join(folder, f"{name}.tar"))
    return facts


def _sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with fsspec.open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_parquet(path: str, table: pa.Table, row_group_size: int | None = None) -> None:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd", row_group_size=row_group_size)
    shards.write_atomic(path, buffer.getvalue())


def clear_output(output_folder: str) -> None:
    """Remove the final shards and manifest of an earlier run: reshard rewrites the folder whole."""
    fs, root = fsspec.core.url_to_fs(output_folder)
    if not fs.exists(root):
        return
    for entry in fs.ls(root, detail=False):
        name = entry.rstrip("/").rsplit("/", 1)[-1]
        if _FINAL_FILE.match(name) or name == MANIFEST:
            fs.rm(entry)
    if fs.exists(shards.join(root, ROUTING_FOLDER)):
        fs.rm(shards.join(root, ROUTING_FOLDER), recursive=True)


def remove_routing(output_folder: str) -> None:
    fs, root = fsspec.core.url_to_fs(shards.join(output_folder, ROUTING_FOLDER))
    if fs.exists(root):
        fs.rm(root, recursive=True)


def stage_configs(out_folders: dict[str, str]) -> dict:
    """The configuration and stats that each earlier stage left beside its outputs, if any.

    `out_folders` maps a stage name to its folder; `config.json` and, for dedup,
    `dedup_stats.json` are read when present (a stage run by an older version may lack them).
    """
    found = {}
    for stage_name, folder in out_folders.items():
        for file_name in ("config.json", "dedup_stats.json"):
            path = shards.join(folder, file_name)
            fs, fs_path = fsspec.core.url_to_fs(path)
            if fs.exists(fs_path):
                with fs.open(fs_path, "rb") as f:
                    found.setdefault(stage_name, {})[file_name] = json.load(f)
        totals = _shard_stats_totals(folder)
        if totals:
            found.setdefault(stage_name, {})["shard_stats_total"] = totals
    return found


def _shard_stats_totals(folder: str) -> dict:
    """The numeric fields of a stage's `NNNNN_stats.json` files, summed over finished shards."""
    totals: dict = {}
    for shard_id in shards.finished_shards(folder):
        path = shards.join(folder, f"{shards.shard_name(shard_id)}_stats.json")
        fs, fs_path = fsspec.core.url_to_fs(path)
        if not fs.exists(fs_path):
            continue
        with fs.open(fs_path, "rb") as f:
            stats = json.load(f)
        _add_numbers(totals, stats)
    return totals


def _add_numbers(totals: dict, stats: dict) -> None:
    for key, value in stats.items():
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, float)):
            totals[key] = totals.get(key, 0) + value
        elif isinstance(value, dict):
            _add_numbers(totals.setdefault(key, {}), value)


def write_manifest(output_folder: str, shard_facts_list: list[dict], config: ReshardConfig, stages: dict) -> dict:
    """`manifest.json`: the shards in order, totals, schema version and every stage's config."""
    ordered = sorted(shard_facts_list, key=lambda facts: facts["shard"])
    manifest = {
        "schema_version": schema.SCHEMA_VERSION,
        "format": "webdataset",
        "shards": ordered,
        "samples": sum(facts["samples"] for facts in ordered),
        "tar_bytes": sum(facts["tar_bytes"] for facts in ordered),
        "parquet_bytes": sum(facts["parquet_bytes"] for facts in ordered),
        "reshard": to_dict(config),
        "stages": stages,
    }
    shards.write_atomic(shards.join(output_folder, MANIFEST), shards.json_bytes(manifest))
    return manifest


def run_local(
    raw_folder: str,
    keep_path: str,
    output_folder: str,
    config: ReshardConfig,
    processes: int = 1,
    stage_folders: dict[str, str] | None = None,
) -> dict:
    """Reshard on the local engine (a process pool per step); return the manifest."""
    from wit_pipeline.engines.local import map_shards

    keep = shards.read_parquet(keep_path, columns=["uid", "shard"])
    the_plan = plan(keep, raw_folder, output_folder, config)
    clear_output(output_folder)
    shards.makedirs(shards.join(output_folder, ROUTING_FOLDER))
    list(map_shards(route_shard, the_plan.route_tasks, processes, desc="route", unit_key="rows"))
    facts = list(map_shards(assemble_shard, the_plan.assemble_tasks, processes, desc="assemble", unit_key="samples"))
    remove_routing(output_folder)
    return write_manifest(output_folder, facts, config, stage_configs(stage_folders or {}))
