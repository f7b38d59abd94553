"""`wit download`: fetch, check, resize and hash the images of a URL list into raw shards."""

from __future__ import annotations

import argparse
import os

from wit_pipeline.cli import UsageError, non_negative_int, print_funnel, positive_float, positive_int
from wit_pipeline.sources.urls import UrlListSource


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "download",
        help="download a URL list into WebDataset shards (OUT/raw)",
        description="Download the images of a URL+caption list (Parquet/CSV/TSV/JSONL, optionally .gz, or a "
                    "folder of Parquet parts) into OUT/raw: NNNNN.tar, NNNNN.parquet (every row with its "
                    "status), NNNNN_stats.json and a completion marker. Rerunning resumes: finished shards "
                    "are skipped, unfinished ones redone whole. Beam runner flags go after a bare --.",
    )
    parser.add_argument("--input", required=True, help="URL list file or folder of list files")
    parser.add_argument("--output", required=True, help="output folder OUT (writes OUT/raw); local, gs:// or s3://")
    UrlListSource.add_arguments(parser)
    run = parser.add_argument_group("execution")
    run.add_argument("--engine", choices=["local", "beam", "spark"], default="local",
                     help="local process pool, Apache Beam, or PySpark (local[processes] unless --spark-master)")
    run.add_argument("--spark-master", help="Spark master URL for --engine spark (default local[PROCESSES])")
    run.add_argument("--processes", type=positive_int, default=os.cpu_count() or 1,
                     help="worker processes (default: CPU count)")
    run.add_argument("--threads", type=positive_int, default=32, help="download threads per process (default 32)")
    fetch = parser.add_argument_group("fetching")
    fetch.add_argument("--timeout", type=positive_float, default=10.0, help="seconds per request (default 10)")
    fetch.add_argument("--retries", type=non_negative_int, default=2,
                       help="retries on connection errors, 429 and 5xx, with exponential backoff (default 2)")
    fetch.add_argument("--max-bytes", type=positive_int, default=20 * 1024 * 1024,
                       help="largest accepted image body in bytes (default 20 MiB)")
    fetch.add_argument("--per-host-connections", type=positive_int, default=4,
                       help="concurrent requests per host and process (default 4)")
    fetch.add_argument("--allow-private", action="store_true",
                       help="allow private, loopback, link-local and reserved addresses (off by default)")
    fetch.add_argument("--allow-network", action="append", default=[], metavar="CIDR",
                       help="allow one network despite the address guard, e.g. 127.0.0.1/32 (repeatable)")
    fetch.add_argument("--user-agent-token", default="wit", help="token for X-Robots-Tag directives (default wit)")
    image = parser.add_argument_group("image (img2dataset's resize semantics)")
    image.add_argument("--resizer", choices=["fast", "img2dataset"], default="fast",
                       help="fast: reduced-size JPEG decoding, one decode per image, img2dataset's output sizes "
                            "(default); img2dataset: its own Resizer, byte for byte")
    image.add_argument("--image-size", type=positive_int, default=256, help="target size in pixels (default 256)")
    image.add_argument("--resize-mode", default="border",
                       choices=["no", "keep_ratio", "center_crop", "border", "keep_ratio_largest"],
                       help="img2dataset resize mode (default border)")
    image.add_argument("--resize-only-if-bigger", action="store_true", help="never upscale")
    image.add_argument("--encode-format", choices=["jpg", "png", "webp"], default="jpg", help="(default jpg)")
    image.add_argument("--encode-quality", type=non_negative_int, default=95, help="(default 95)")
    image.add_argument("--min-image-size", type=non_negative_int, default=0,
                       help="drop images whose shorter side is smaller (default 0)")
    image.add_argument("--max-aspect-ratio", type=positive_float, default=float("inf"),
                       help="drop images with a larger aspect ratio (default: no limit)")
    image.add_argument("--max-image-area", type=positive_float, default=float("inf"),
                       help="drop images with more pixels (default: no limit)")
    image.add_argument("--max-pixels", type=positive_int, default=89_478_485,
                       help="decompression-bomb limit on declared pixels (default Pillow's 89478485)")
    image.add_argument("--no-phash", action="store_true", help="skip the perceptual hash")
    parser.set_defaults(run=run_command)


def run_command(args: argparse.Namespace) -> int:
    from wit_pipeline.config import ConfigError, DownloadConfig, FetchConfig, ResizeConfig
    from wit_pipeline.download import stage
    from wit_pipeline.sources.urls import InputError

    try:
        url_config = UrlListSource.config_from_args(args)
        config = DownloadConfig(
            fetch=FetchConfig(timeout=args.timeout, retries=args.retries, max_bytes=args.max_bytes,
                              max_pixels=args.max_pixels, per_host_connections=args.per_host_connections,
                              allow_private=args.allow_private, allow_networks=tuple(args.allow_network),
                              user_agent_token=args.user_agent_token or None),
            resize=ResizeConfig(image_size=args.image_size, resize_mode=args.resize_mode,
                                resize_only_if_bigger=args.resize_only_if_bigger, encode_format=args.encode_format,
                                encode_quality=args.encode_quality, min_image_size=args.min_image_size,
                                max_image_area=args.max_image_area, max_aspect_ratio=args.max_aspect_ratio,
                                resizer=args.resizer),
            threads=args.threads, compute_phash=not args.no_phash,
        )
        tasks = stage.plan_tasks(args.input, args.output, url_config, config)
    except (ConfigError, InputError) as err:
        raise UsageError(str(err)) from None
    if args.engine == "beam":
        from beam_jobs.download import run_pipeline

        totals = run_pipeline(tasks, beam_args=args.passthrough, local_workers=args.processes)
    elif args.engine == "spark":
        totals = stage.run_spark(tasks, master=args.spark_master or f"local[{args.processes}]")
    else:
        if args.passthrough:
            raise UsageError(f"arguments after -- are for --engine beam: {' '.join(args.passthrough)}")
        totals = stage.run_local(tasks, args.processes)
    dropped = {status: n for status, n in totals["statuses"].items() if status != "ok"}
    print_funnel("download", totals["rows"], totals["ok"], dropped)
    print(f"  {totals['bytes'] / 1e6:.1f} MB stored in {totals['shards']} shards "
          f"({totals['skipped_shards']} already finished); totals in {stage.raw_dir(args.output)}/download_stats.json")
    return 0
