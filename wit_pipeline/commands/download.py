"""`wit download`: fetch, check, resize and hash the images of a URL list into raw shards."""

from __future__ import annotations

import argparse

from wit_pipeline.cli import UsageError, non_negative_int, positive_float, positive_int, print_stats_funnel
from wit_pipeline.commands.source_flags import add_url_list_flags, url_list_config
from wit_pipeline.commands.stage_flags import absolute_paths, add_engine_flags, set_stage_run
from wit_pipeline.config import DownloadConfig, FetchConfig, ResizeConfig, field_default


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "download",
        help="download a URL list into WebDataset shards (OUT/raw)",
        description="Download the images of a URL+caption list (Parquet/CSV/TSV/JSONL, optionally .gz, or a "
        "folder of Parquet parts) into OUT/raw: NNNNN.tar, NNNNN.parquet (every row with its "
        "status), NNNNN_stats.json and a completion marker. Rerunning resumes: finished shards "
        "are skipped, unfinished ones redone whole. Beam runner flags go after a bare --.",
    )
    parser.add_argument("--input", help="URL list file or folder of list files (default with --config: OUT/balance)")
    parser.add_argument("--output", help="output folder OUT (writes OUT/raw); local, gs:// or s3://; required")
    add_url_list_flags(parser)
    add_engine_flags(parser)
    parser.add_argument(
        "--threads", type=positive_int, default=D("threads"), help="download threads per process (default %(default)s)"
    )
    fetch = parser.add_argument_group("fetching")
    fetch.add_argument(
        "--timeout", type=positive_float, default=D("fetch.timeout"), help="seconds per request (default %(default)s)"
    )
    fetch.add_argument(
        "--retries",
        type=non_negative_int,
        default=D("fetch.retries"),
        help="retries on connection errors, 429 and 5xx, with exponential backoff (default %(default)s)",
    )
    fetch.add_argument(
        "--max-bytes",
        type=positive_int,
        default=D("fetch.max_bytes"),
        help="largest accepted image body in bytes (default %(default)s)",
    )
    fetch.add_argument(
        "--per-host-connections",
        type=positive_int,
        default=D("fetch.per_host_connections"),
        help="concurrent requests per host and process (default %(default)s)",
    )
    fetch.add_argument(
        "--allow-private",
        action="store_true",
        help="allow private, loopback, link-local and reserved addresses (off by default)",
    )
    fetch.add_argument(
        "--allow-network",
        action="append",
        default=[],
        metavar="CIDR",
        help="allow one network despite the address guard, e.g. 127.0.0.1/32 (repeatable)",
    )
    fetch.add_argument(
        "--image-root",
        metavar="FOLDER",
        help="a folder you trust (COCO's --image-root): rows whose image_path lies inside it are "
        "read from it; without it image_path is never read and every image is fetched by URL",
    )
    fetch.add_argument(
        "--user-agent-token",
        default=D("fetch.user_agent_token"),
        help="token for X-Robots-Tag directives (default %(default)s)",
    )
    image = parser.add_argument_group("image (img2dataset's resize semantics)")
    image.add_argument(
        "--resizer",
        choices=["fast", "img2dataset"],
        default=D("resize.resizer"),
        help="fast: reduced-size JPEG decoding, one decode per image, img2dataset's output sizes "
        "(default); img2dataset: its own Resizer, byte for byte",
    )
    image.add_argument(
        "--image-size",
        type=positive_int,
        default=D("resize.image_size"),
        help="target size in pixels (default %(default)s)",
    )
    image.add_argument(
        "--resize-mode",
        default=D("resize.resize_mode"),
        choices=["no", "keep_ratio", "center_crop", "border", "keep_ratio_largest"],
        help="img2dataset resize mode (default %(default)s)",
    )
    image.add_argument("--resize-only-if-bigger", action="store_true", help="never upscale")
    image.add_argument(
        "--encode-format",
        choices=["jpg", "png", "webp"],
        default=D("resize.encode_format"),
        help="(default %(default)s)",
    )
    image.add_argument(
        "--encode-quality", type=non_negative_int, default=D("resize.encode_quality"), help="(default %(default)s)"
    )
    image.add_argument(
        "--min-image-size",
        type=non_negative_int,
        default=D("resize.min_image_size"),
        help="drop images whose shorter side is smaller (default %(default)s)",
    )
    image.add_argument(
        "--max-aspect-ratio",
        type=positive_float,
        default=D("resize.max_aspect_ratio"),
        help="drop images with a larger aspect ratio (default %(default)s: no limit)",
    )
    image.add_argument(
        "--max-image-area",
        type=positive_float,
        default=D("resize.max_image_area"),
        help="drop images with more pixels (default %(default)s: no limit)",
    )
    image.add_argument(
        "--max-pixels",
        type=positive_int,
        default=D("fetch.max_pixels"),
        help="decompression-bomb limit on declared pixels (default %(default)s, Pillow's)",
    )
    image.add_argument("--no-phash", action="store_true", help="skip the perceptual hash")
    set_stage_run(parser, run_stage)


def D(name: str):
    """The default of DownloadConfig field `name`: written once, in the dataclass."""
    return field_default(DownloadConfig, name)


def _proxies_from_environment() -> dict:
    """HTTP_PROXY, HTTPS_PROXY and NO_PROXY (either case), read here so the library never reads env."""
    import urllib.request

    found = urllib.request.getproxies_environment()
    return {
        "http_proxy": found.get("http"),
        "https_proxy": found.get("https"),
        "no_proxy": tuple(h.strip() for h in found.get("no", "").split(",") if h.strip()),
    }


def build_config(args: argparse.Namespace) -> DownloadConfig:
    return DownloadConfig(
        fetch=FetchConfig(
            timeout=args.timeout,
            retries=args.retries,
            max_bytes=args.max_bytes,
            max_pixels=args.max_pixels,
            per_host_connections=args.per_host_connections,
            allow_private=args.allow_private,
            allow_networks=tuple(args.allow_network),
            user_agent_token=args.user_agent_token or None,
            **_proxies_from_environment(),
        ),
        resize=ResizeConfig(
            image_size=args.image_size,
            resize_mode=args.resize_mode,
            resize_only_if_bigger=args.resize_only_if_bigger,
            encode_format=args.encode_format,
            encode_quality=args.encode_quality,
            min_image_size=args.min_image_size,
            max_image_area=args.max_image_area,
            max_aspect_ratio=args.max_aspect_ratio,
            resizer=args.resizer,
        ),
        threads=args.threads,
        compute_phash=not args.no_phash,
        image_root=args.image_root,
    )


def run_stage(args: argparse.Namespace, engine) -> dict:
    absolute_paths(args)
    from wit_pipeline.download import stage
    from wit_pipeline.io import join

    if not args.output:
        raise UsageError("give --output OUT (or `output` in --config)")
    # In a config's chain, download reads what balance wrote.
    input_path = args.input or (join(args.output, "balance") if args.config else None)
    if not input_path:
        raise UsageError("give --input URL_LIST")
    # A bad flag value (ConfigError) or list (InputError) is a UserError: cli.main prints its one line.
    tasks = stage.plan_tasks(input_path, args.output, url_list_config(args), build_config(args))
    totals = stage.run_tasks(engine, tasks, stage.raw_dir(args.output))
    print_stats_funnel(totals)
    print(
        f"  {totals['bytes'] / 1e6:.1f} MB stored in {totals['shards']} shards "
        f"({totals['skipped_shards']} already finished); stats in {stage.raw_dir(args.output)}/stats.json"
    )
    return totals
