"""The reshard stage as a Beam pipeline: the same shards, byte for byte, as the local engine.

The plan (a permutation of the kept uids) is drawn once in the driver by the library; Beam runs
the two fan-out steps of `wit_pipeline.reshard`: route every raw shard, then, once all are
routed, assemble every final shard. The manifest is written last, from the shards' facts.
"""

from __future__ import annotations

import json

import apache_beam as beam
import fsspec

from beam_jobs.options import pipeline_options
from wit_pipeline import reshard, shards
from wit_pipeline.config import ReshardConfig


def assemble_after_routing(routed: list[dict], final_shards: list[reshard.FinalShard], output_folder: str):
    """The assemble tasks, built once every raw shard is routed (the ToList barrier)."""
    yield from reshard.assemble_tasks(routed, final_shards, output_folder)


def finish(facts: list[dict], output_folder: str, config: ReshardConfig, stages: dict) -> dict:
    reshard.remove_routing(output_folder)
    return reshard.write_manifest(output_folder, facts, config, stages)


def build(pipeline, the_plan: reshard.Plan, output_folder: str, config: ReshardConfig, stages: dict) -> None:
    routed = (
        pipeline
        | "RawShards" >> beam.Create(the_plan.route_tasks)
        | "SpreadRoutes" >> beam.Reshuffle()
        | "Route" >> beam.Map(reshard.route_shard)
        | "AllRouted" >> beam.combiners.ToList()
    )
    (
        routed
        | "FinalShards" >> beam.FlatMap(assemble_after_routing, the_plan.final_shards, output_folder)
        | "SpreadAssembly" >> beam.Reshuffle()
        | "Assemble" >> beam.Map(reshard.assemble_shard)
        | "AllAssembled" >> beam.combiners.ToList()
        | "Manifest" >> beam.Map(finish, output_folder, config, stages)
    )


def run_pipeline(
    raw_folder: str,
    keep_path: str,
    output_folder: str,
    config: ReshardConfig,
    stage_folders: dict[str, str] | None = None,
    beam_args: list[str] | None = None,
) -> dict:
    """Reshard on Beam (FnApiRunner by default; any runner via `beam_args`); return the manifest."""
    keep = shards.read_parquet(keep_path, columns=["uid", "shard"])
    the_plan = reshard.plan(keep, raw_folder, output_folder, config)
    stages = reshard.stage_configs(stage_folders or {})
    reshard.clear_output(output_folder)
    shards.makedirs(shards.join(output_folder, reshard.ROUTING_FOLDER))
    with beam.Pipeline(options=pipeline_options(beam_args)) as pipeline:
        build(pipeline, the_plan, output_folder, config, stages)
    with fsspec.open(shards.join(output_folder, reshard.MANIFEST), "rb") as f:
        return json.load(f)
