"""Beam pipeline options shared by every wit job.

Without `--runner`, jobs run on Beam's FnApiRunner in multi-processing mode: the plain DirectRunner
first tries to download a Prism binary, which fails offline and wastes the start-up. Any other
runner (Dataflow, Flink, Spark, PortableRunner) is chosen with Beam's own `--runner` flag, and
`--setup_file` ships this package to its workers.
"""

from __future__ import annotations

from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions


def pipeline_options(beam_args: list[str] | None = None, local_workers: int = 2) -> PipelineOptions:
    """PipelineOptions from Beam's own command-line flags, with wit's local defaults filled in."""
    beam_args = list(beam_args or [])
    if not _given(beam_args, "--default_sdk_harness_log_level"):
        # SDK workers log every bundle at INFO; the stage prints its own summary.
        beam_args.append("--default_sdk_harness_log_level=WARNING")
    options = PipelineOptions(beam_args)
    standard = options.view_as(StandardOptions)
    if standard.runner is None:
        standard.runner = "FnApiRunner"
        direct = options.view_as(DirectOptions)
        if not _given(beam_args, "--direct_running_mode"):
            direct.direct_running_mode = "multi_processing"
        if not _given(beam_args, "--direct_num_workers"):
            direct.direct_num_workers = 1 if direct.direct_running_mode == "in_memory" else local_workers
    return options


def _given(args: list[str], flag: str) -> bool:
    return any(arg == flag or arg.startswith(flag + "=") for arg in args)
