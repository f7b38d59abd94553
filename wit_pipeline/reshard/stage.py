"""The reshard stage: raw shards + keep list -> shuffled final shards of a fixed size + manifest.

How it shuffles without holding the dataset in memory:

1. **Plan** (one process): read the keep list, sort its uids, and draw one permutation of them
   from `seed`. Sample `k` of the permutation goes to final shard `k // samples_per_shard`. Only
   uids and positions are held: about 50 bytes per sample, never an image.
2. **Route** (one task per raw shard, in parallel): read the raw shard's tar and sidecar, keep
   the kept samples, tag each with its position, and write them to one routing file per raw
   shard, sorted by position, as one Arrow IPC piece per final shard; the task returns each
   piece's byte range. Holds one raw shard at a time.
3. **Assemble** (one task per final shard, in parallel): read its piece from every routing file
   (one ranged read each: exactly its samples, nothing else), order by position and write
   `NNNNN.tar` + `NNNNN.parquet`. Holds one final shard at a time.

This is a map-reduce shuffle laid out as Spark lays out its shuffle files (one data file per
map task, a byte range per reducer), so R raw shards and F final shards cost R files and R x F
ranged reads, not R x F files or F full passes over the data.

Memory grows with the shard sizes, not the dataset. The shuffle is a true uniform permutation
(a streaming shuffle buffer, as in webdataset, only mixes nearby samples), and it depends only
on the keep list and the seed: the same inputs give the same shards, byte for byte, on every
engine and rerun. The cost is one extra copy of the kept samples on disk, removed at the end.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from io import BytesIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from wit_pipeline import io, schema, shards
from wit_pipeline.config import ReshardConfig, to_dict
from wit_pipeline.dedup.decisions import fixed_width_bytes
from wit_pipeline.stats import PROVENANCE, STATS_FILE, Clock, stage_stats, write_stats

ROUTING_FOLDER = "_routing"
MANIFEST = "manifest.json"
POSITION = "_position"
MEMBERS = "_members"
MEMBER_TYPE = pa.list_(pa.struct([("ext", pa.string()), ("data", pa.binary())]))
_FINAL_FILE = re.compile(r"^\d{5,}(\.tar|\.parquet|_stats\.json|\.done)$")


@dataclass(frozen=True)
class RouteTask:
    """One raw shard's kept samples: their uids and their positions in the final order."""

    raw_folder: str
    raw_shard: int
    routing_folder: str
    uids: np.ndarray  # S32
    positions: np.ndarray  # int64
    samples_per_shard: int


@dataclass(frozen=True)
class Piece:
    """The samples of one final shard inside one routing file: a byte range."""

    path: str
    offset: int
    length: int
    rows: int


@dataclass(frozen=True)
class FinalShard:
    shard_id: int
    start: int  # position of its first sample
    count: int


@dataclass(frozen=True)
class AssembleTask:
    final: FinalShard
    pieces: tuple[Piece, ...]
    output_folder: str


@dataclass(frozen=True)
class Plan:
    route_tasks: list[RouteTask]
    final_shards: list[FinalShard]
    samples: int


def plan(keep: pa.Table, raw_folder: str, output_folder: str, config: ReshardConfig) -> Plan:
    """Positions of every kept sample in the shuffled order, and the route tasks that realise them."""
    uids = fixed_width_bytes(keep["uid"], 32, "keep list uid")
    raw_shard = keep["shard"].to_numpy().astype(np.int64) if keep.num_rows else np.zeros(0, np.int64)
    if len(np.unique(uids)) != len(uids):
        raise io.InputError("the keep list names a uid twice; rerun dedup")
    by_uid = np.argsort(uids, kind="stable")
    # A permutation of the uid-sorted list: it depends on the set of uids and the seed only.
    order = by_uid[np.random.default_rng(config.seed).permutation(len(uids))]
    position = np.empty(len(uids), dtype=np.int64)
    position[order] = np.arange(len(uids))
    routing_folder = io.join(output_folder, ROUTING_FOLDER)
    route_tasks = []
    for shard_id in np.unique(raw_shard):
        members = raw_shard == shard_id
        route_tasks.append(
            RouteTask(
                raw_folder, int(shard_id), routing_folder, uids[members], position[members], config.samples_per_shard
            )
        )
    size = config.samples_per_shard
    final_shards = [FinalShard(k, k * size, min(size, len(uids) - k * size)) for k in range(-(-len(uids) // size))]
    return Plan(route_tasks, final_shards, len(uids))


def assemble_tasks(route_results: list[dict], final_shards: list[FinalShard], output_folder: str) -> list[AssembleTask]:
    """One task per final shard, with its piece of every routing file (in raw shard order)."""
    pieces: dict[int, list[Piece]] = {final.shard_id: [] for final in final_shards}
    for result in sorted(route_results, key=lambda r: r["raw_shard"]):
        for shard_id, piece in result["pieces"].items():
            pieces[int(shard_id)].append(Piece(result["path"], *piece))
    return [AssembleTask(final, tuple(pieces[final.shard_id]), output_folder) for final in final_shards]


def routing_path(routing_folder: str, raw_shard: int) -> str:
    return io.join(routing_folder, f"{shards.shard_name(raw_shard)}.arrows")


def route_shard(task: RouteTask) -> dict:
    """Write the raw shard's kept samples, sorted by final position, to its routing file."""
    name = shards.shard_name(task.raw_shard)
    sidecar = io.read_parquet(io.join(task.raw_folder, f"{name}.parquet"))
    wanted = pa.array(task.uids.astype(str))
    sidecar = sidecar.filter(pc.is_in(sidecar["uid"], value_set=wanted))
    position_of = dict(zip(task.uids.astype(str).tolist(), task.positions.tolist(), strict=True))
    members: dict[str, list] = {}
    for key, sample in shards.iter_tar(io.join(task.raw_folder, f"{name}.tar")):
        if key in position_of:
            members[key] = [{"ext": ext, "data": data} for ext, data in sample.items()]
    _check_hashes(name, sidecar, members)
    missing = sorted(set(position_of) - set(members) | set(position_of) - set(sidecar["uid"].to_pylist()))
    if missing:
        raise io.InputError(
            f"raw shard {name} lacks {len(missing)} kept samples (first {missing[0]}): "
            "the keep list does not match the raw shards; rerun dedup"
        )
    if sidecar.num_rows != len(position_of):
        raise io.InputError(f"raw shard {name}: a kept uid appears twice in its sidecar")
    uid_list = sidecar["uid"].to_pylist()
    routed = sidecar.append_column(POSITION, pa.array([position_of[u] for u in uid_list], pa.int64()))
    routed = routed.append_column(MEMBERS, pa.array([members[u] for u in uid_list], MEMBER_TYPE))
    routed = routed.sort_by(POSITION)
    path = routing_path(task.routing_folder, task.raw_shard)
    pieces = _write_pieces(path, routed, task.samples_per_shard)
    return {"raw_shard": task.raw_shard, "rows": routed.num_rows, "path": path, "pieces": pieces}


IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")


def _check_hashes(name: str, sidecar: pa.Table, members: dict[str, list]) -> None:
    """Every copied image must still be the bytes its sidecar's sha256 names: a file corrupted on
    disk must not enter the final dataset looking sound."""
    expected = dict(zip(sidecar["uid"].to_pylist(), sidecar["sha256"].to_pylist(), strict=True))
    bad = sorted(
        uid
        for uid, sample in members.items()
        for member in sample
        if member["ext"] in IMAGE_EXTENSIONS
        and expected.get(uid)
        and hashlib.sha256(member["data"]).hexdigest() != expected[uid]
    )
    if bad:
        raise io.InputError(
            f"raw shard {name}: {len(bad)} stored image(s) do not match their sha256 (first {bad[0]}): the tar is "
            f"corrupted; delete {name}.done, rerun `wit download` to fetch the shard again, then rerun dedup"
        )


def _write_pieces(path: str, routed: pa.Table, samples_per_shard: int) -> dict[int, tuple[int, int, int]]:
    """Write `routed` (sorted by position) as one Arrow IPC stream per final shard, back to back.

    Returns {final shard: (offset, length, rows)}.
    """
    final_of_row = routed[POSITION].to_numpy() // samples_per_shard
    starts = np.flatnonzero(np.r_[True, final_of_row[1:] != final_of_row[:-1]]) if len(final_of_row) else ()
    bounds = [int(start) for start in starts] + [routed.num_rows]
    pieces: dict[int, tuple[int, int, int]] = {}
    offset = 0
    fs, fs_path = io.fs_path(path)
    with io.writing(path), fs.open(fs_path, "wb") as f:
        for begin, end in zip(bounds[:-1], bounds[1:], strict=True):
            buffer = BytesIO()
            with pa.ipc.new_stream(buffer, routed.schema) as stream:
                stream.write_table(routed.slice(begin, end - begin))
            data = buffer.getvalue()
            f.write(data)
            pieces[int(final_of_row[begin])] = (offset, len(data), int(end - begin))
            offset += len(data)
    return pieces


def assemble_shard(task: AssembleTask) -> dict:
    """Write one final shard: its samples in position order, tar and sidecar."""
    parts = [_read_piece(piece) for piece in task.pieces]
    found = sum(part.num_rows for part in parts)
    if not parts or found != task.final.count:
        raise RuntimeError(f"final shard {task.final.shard_id}: routed {found} samples, planned {task.final.count}")
    table = pa.concat_tables(parts).sort_by(POSITION)
    name = shards.shard_name(task.final.shard_id)
    pattern = io.join(task.output_folder, f"%0{shards.SHARD_DIGITS}d.tar")
    with shards.ShardWriter(pattern, start=task.final.shard_id) as tar:
        for uid, members in zip(table["uid"].to_pylist(), table[MEMBERS].to_pylist(), strict=True):
            tar.write(uid, {member["ext"]: member["data"] for member in members})
    sidecar = table.drop_columns([POSITION, MEMBERS])
    io.write_table(io.join(task.output_folder, f"{name}.parquet"), sidecar)
    stats = shard_facts(task.output_folder, task.final.shard_id, table.num_rows)
    shards.mark_done(task.output_folder, task.final.shard_id, stats)
    return stats


def _read_piece(piece: Piece) -> pa.Table:
    fs, fs_path = io.fs_path(piece.path)
    with fs.open(fs_path, "rb") as f:
        f.seek(piece.offset)
        data = f.read(piece.length)
    return pa.ipc.open_stream(data).read_all()


def shard_facts(folder: str, shard_id: int, samples: int) -> dict:
    """Name, sample count, sizes and tar checksum of one written final shard."""
    name = shards.shard_name(shard_id)
    facts = {"shard": name, "samples": samples}
    for ext in ("tar", "parquet"):
        facts[f"{ext}_bytes"] = io.size(io.join(folder, f"{name}.{ext}"))
    facts["tar_sha256"] = _sha256_file(io.join(folder, f"{name}.tar"))
    return facts


def _sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    fs, fs_path = io.fs_path(path)
    with fs.open(fs_path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def clear_output(output_folder: str) -> None:
    """Remove the final shards and manifest of an earlier run: reshard rewrites the folder whole."""
    for name in io.names(output_folder):
        if _FINAL_FILE.match(name) or name in (MANIFEST, STATS_FILE, "README.md"):
            io.remove(io.join(output_folder, name))
    remove_routing(output_folder)


def remove_routing(output_folder: str) -> None:
    io.remove(io.join(output_folder, ROUTING_FOLDER), recursive=True)


def stage_configs(out_folders: dict[str, str]) -> dict:
    """The configuration and stats that each earlier stage left beside its outputs, if any.

    `out_folders` maps a stage name to its folder; each stage's `config.json`, `run.json` and
    `stats.json` (its totals, configuration and provenance) are read when present.
    """
    found: dict[str, dict] = {}
    for stage_name, folder in out_folders.items():
        for file_name in ("config.json", "run.json", STATS_FILE):
            content = io.read_json(io.join(folder, file_name))
            if content is not None:
                found.setdefault(stage_name, {})[file_name] = content
        totals = _shard_stats_totals(folder)
        if totals:
            found.setdefault(stage_name, {})["shard_stats_total"] = totals
    return found


def _shard_stats_totals(folder: str) -> dict:
    """The numeric fields of a stage's `NNNNN_stats.json` files, summed over finished shards."""
    totals: dict = {}
    for shard_id in shards.finished_shards(folder):
        _add_numbers(totals, shards.read_stats(folder, shard_id))
    return totals


def _add_numbers(totals: dict, stats: dict) -> None:
    for key, value in stats.items():
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, float)):
            totals[key] = totals.get(key, 0) + value
        elif isinstance(value, dict):
            _add_numbers(totals.setdefault(key, {}), value)


def write_manifest(
    output_folder: str,
    shard_facts_list: list[dict],
    config: ReshardConfig,
    stages: dict,
    provenance: dict | None = None,
) -> dict:
    """`manifest.json`: the shards in order, totals, schema version, and the run's provenance.

    Everything but `provenance` is a function of the data and the settings, the same bytes on
    every engine and rerun; `provenance` says how this copy was made: wit version, engine, start
    and end times, and every stage's `stats.json` (configuration, counts, times) and run files.
    """
    ordered = sorted(shard_facts_list, key=lambda facts: facts["shard"])
    manifest = {
        "schema_version": schema.SCHEMA_VERSION,
        "format": "webdataset",
        "shards": ordered,
        "samples": sum(facts["samples"] for facts in ordered),
        "tar_bytes": sum(facts["tar_bytes"] for facts in ordered),
        "parquet_bytes": sum(facts["parquet_bytes"] for facts in ordered),
        "reshard": to_dict(config),
        "provenance": {**(provenance or {}), "stages": stages},
    }
    from wit_pipeline.dataset_card import write_dataset_card

    write_dataset_card(output_folder, manifest)  # so `datasets.load_dataset(folder)` reads the tars
    io.write_json(io.join(output_folder, MANIFEST), manifest)
    return manifest


def run(
    engine,
    output: str | None,
    config: ReshardConfig,
    *,
    input_folder: str | None = None,
    keep_path: str | None = None,
    output_folder: str | None = None,
    stage_folders: dict[str, str] | None = None,
    partial: bool = False,
) -> dict:
    """Reshard OUT/raw + OUT/dedup/keep.parquet into OUT/final on any engine; return the manifest.

    Two map passes (route every raw shard, then assemble every final shard); the plan and the
    manifest are made here. `stage_folders` (stage name -> folder) defaults to OUT's stages.
    An unfinished download is refused unless `partial` says to use only its finished shards.
    """
    from wit_pipeline import claim

    clock = Clock()
    input_folder = io.given_or_under(input_folder, output, "raw")
    keep_path = io.given_or_under(keep_path, output, "dedup/keep.parquet")
    output_folder = io.given_or_under(output_folder, output, "final")
    shards.check_finished(input_folder, partial)
    # Reshard rewrites its folder whole: only ever a folder it made from the same raw shards.
    claim.claim(
        output_folder, {"stage": "reshard", "input": claim.location(input_folder), "keep": claim.location(keep_path)}
    )
    if stage_folders is None and output is not None:
        stage_folders = {name: io.join(output, name) for name in ("ingest", "balance", "dedup")}
        stage_folders["download"] = input_folder
    keep = io.read_parquet(keep_path, columns=["uid", "shard"])
    the_plan = plan(keep, input_folder, output_folder, config)
    clear_output(output_folder)
    io.makedirs(io.join(output_folder, ROUTING_FOLDER))
    routed = engine.map_shards(route_shard, the_plan.route_tasks, desc="reshard: route", unit_key=None)
    tasks = assemble_tasks(routed, the_plan.final_shards, output_folder)
    facts = engine.map_shards(assemble_shard, tasks, desc="reshard: assemble", unit_key="samples")
    remove_routing(output_folder)
    samples = sum(fact["samples"] for fact in facts)
    stats = write_stats(
        output_folder,
        stage_stats(
            "reshard",
            engine.name,
            clock,
            samples,
            samples,
            {},
            to_dict(config),
            {"shards": len(facts), "tar_bytes": sum(fact["tar_bytes"] for fact in facts)},
        ),
    )
    provenance = {key: stats[key] for key in PROVENANCE}
    return write_manifest(output_folder, facts, config, stage_configs(stage_folders or {}), provenance)
