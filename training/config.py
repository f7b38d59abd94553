"""The trainer's one typed config, its presets, and how flags and TOML files become one.

Every knob lives in `TrainConfig`; the network's shape is its `model`, a `ModelConfig` (the
presets are instances). A preset fills in the model's shape; values from a TOML file, then from
flags, override it. The resolved config is written beside each checkpoint as JSON, so a
run can always be reproduced from its folder.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any

from wit_pipeline.config import ConfigError, from_mapping, load_toml


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


@dataclass(frozen=True)
class ModelConfig:
    """The network's shape, as nanoGPT's GPTConfig: what a checkpoint needs to rebuild its model.

    The defaults are the `tiny` preset. `vocab_size` is the tokenizer's: a trained BPE may end up
    smaller than asked, and the model is built with what it has.
    """

    image_size: int = 64
    patch_size: int = 8
    vision_width: int = 128
    vision_layers: int = 4
    vision_heads: int = 4
    text_width: int = 128
    text_layers: int = 4
    text_heads: int = 4
    embed_dim: int = 128
    context_length: int = 77
    vocab_size: int = 4096

    def __post_init__(self):
        _require(self.image_size % self.patch_size == 0, "image_size must be a multiple of patch_size")
        _require(self.vision_width % self.vision_heads == 0, "vision_width must be a multiple of vision_heads")
        _require(self.text_width % self.text_heads == 0, "text_width must be a multiple of text_heads")
        _require(self.context_length >= 3, "context_length must be at least 3 (start, one token, end)")
        _require(self.vocab_size >= 260, "vocab_size must be at least 260 (256 bytes and special tokens)")


MODEL_FIELDS = tuple(f.name for f in dataclasses.fields(ModelConfig))

# `tiny` trains on a laptop CPU in minutes; `ViT-B/32` is the CLIP paper's shape (image tower 768
# wide x 12 deep on 32-pixel patches, text tower 512 wide x 12 deep).
PRESETS: dict[str, ModelConfig] = {
    "tiny": ModelConfig(),
    "small": ModelConfig(
        image_size=128,
        patch_size=16,
        vision_width=384,
        vision_layers=6,
        vision_heads=6,
        text_width=256,
        text_layers=6,
        text_heads=4,
        embed_dim=256,
        vocab_size=16384,
    ),
    "ViT-B/32": ModelConfig(
        image_size=224,
        patch_size=32,
        vision_width=768,
        vision_layers=12,
        vision_heads=12,
        text_width=512,
        text_layers=12,
        text_heads=8,
        embed_dim=512,
        vocab_size=49408,
    ),
}


@dataclass(frozen=True)
class TrainConfig:
    """Every knob of a training run. Sizes default to the `tiny` preset."""

    # Data.
    shards: str = ""  # brace pattern, glob or folder, local or fsspec URL; several joined with "::"
    output: str = ""  # run folder: checkpoint.pt, config.json, tokenizer.json, log.jsonl
    workers: int = 2  # data-loader processes per rank (0 decodes in the training process)
    shuffle_buffer: int = 1000  # samples held for shuffling after the shard order is shuffled
    resample: bool = True  # draw shards with replacement per stream (open_clip's --dataset-resampled)
    # Model: a preset's shape; flags and TOML keys (image_size = 160, ...) override single values.
    preset: str = "tiny"
    model: ModelConfig = PRESETS["tiny"]
    # Tokenizer: a byte-level BPE of `model.vocab_size` trained on the shards' captions, unless
    # clip_vocab names CLIP's own merges file (bpe_simple_vocab_16e6.txt.gz), which fixes the
    # vocabulary.
    clip_vocab: str | None = None
    tokenizer_captions: int = 100_000  # captions read from the shards to train the BPE
    # Length: exactly one of steps or epochs (an epoch is the shards' sample count).
    steps: int | None = None
    epochs: float | None = None
    batch_size: int = 64  # per rank and micro-step; global batch = batch_size x ranks
    accum_steps: int = 1  # micro-steps per optimiser step
    # Optimiser and schedule (CLIP's AdamW betas and epsilon for ViTs).
    lr: float = 5e-4
    min_lr: float = 0.0
    warmup_steps: int = 100
    weight_decay: float = 0.2
    beta1: float = 0.9
    beta2: float = 0.98
    eps: float = 1e-6
    grad_clip: float = 1.0  # max global gradient norm; 0 turns clipping off
    # Runtime.
    seed: int = 0
    device: str = "auto"  # auto picks cuda when there is one
    # CPU threads of the training process; 0 keeps torch's default (one per core). On a shared
    # machine 1 can be several times faster than 2: OpenMP threads spin-wait for each other.
    threads: int = 0
    precision: str = "auto"  # auto: bf16 autocast on GPU, fp32 on CPU
    compile: bool = False
    log_every: int = 10
    checkpoint_every: int = 1000
    keep_checkpoints: bool = False  # also keep checkpoint_NNNNNNN.pt for every step saved
    progress: bool = True

    def __post_init__(self):
        _require(self.preset in PRESETS, f"preset must be one of {', '.join(PRESETS)}, not {self.preset!r}")
        _require(self.batch_size > 0 and self.accum_steps > 0, "batch_size and accum_steps must be positive")
        _require(self.workers >= 0, "workers must be >= 0")
        _require(self.threads >= 0, "threads must be >= 0")
        _require(self.shuffle_buffer >= 0, "shuffle_buffer must be >= 0")
        _require(self.lr > 0 and self.min_lr >= 0, "lr must be positive and min_lr >= 0")
        _require(self.warmup_steps >= 0, "warmup_steps must be >= 0")
        _require(self.steps is None or self.steps > 0, "steps must be positive")
        _require(self.epochs is None or self.epochs > 0, "epochs must be positive")
        _require(not (self.steps and self.epochs), "give steps or epochs, not both")
        _require(self.precision in ("auto", "fp32", "bf16"), "precision must be auto, fp32 or bf16")
        _require(self.log_every > 0 and self.checkpoint_every > 0, "log_every and checkpoint_every must be positive")

    def to_dict(self) -> dict[str, Any]:
        """Flat: the model's fields beside the others, as flags and TOML files name them."""
        values = dataclasses.asdict(self)
        values.update(values.pop("model"))
        return values

    def to_json(self) -> str:
        """`to_dict` as JSON: flat, as every checkpoint's copy of the config has been written."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"


def resolve_config(overrides: dict[str, Any], base: dict[str, Any] | None = None) -> TrainConfig:
    """The config for `overrides` (from a TOML file and flags) on top of `base` or a preset.

    With no `base`, the preset named in `overrides` (or `tiny`) supplies the model's shape, so
    `--preset ViT-B/32 --image-size 160` means ViT-B/32 at 160 pixels. The model's fields may be
    given flat (`image_size`, as flags and config files before ModelConfig name them) or as a
    `model` table.
    """
    overrides = nest_model_fields(overrides)
    if base is None:
        preset = overrides.get("preset", TrainConfig.preset)
        if preset not in PRESETS:
            raise ConfigError(f"preset must be one of {', '.join(PRESETS)}, not {preset!r}")
        base = {"preset": preset, "model": dataclasses.asdict(PRESETS[preset])}
    base = nest_model_fields(base)
    model = from_mapping(ModelConfig, {**base["model"], **overrides["model"]})
    return from_mapping(TrainConfig, {**base, **overrides, "model": model})


def nest_model_fields(values: dict[str, Any]) -> dict[str, Any]:
    """`values` with every model field under `model`: a flat `image_size` moves there."""
    nested = {key: value for key, value in values.items() if key not in MODEL_FIELDS}
    model = dict(values.get("model") or {})
    model.update({key: value for key, value in values.items() if key in MODEL_FIELDS})
    nested["model"] = model
    return nested


def load_train_toml(path: str) -> dict[str, Any]:
    """The `[train]` table of a TOML config file, or its top level when it has no such table."""
    values = load_toml(path)
    return values.get("train", values)


def config_from_json(text: str) -> TrainConfig:
    """A run's config.json (or a checkpoint's copy), flat as `to_json` writes it."""
    values = nest_model_fields(json.loads(text))
    return from_mapping(TrainConfig, {**values, "model": from_mapping(ModelConfig, values["model"])})


def total_steps(config: TrainConfig, num_samples: int | None, world_size: int) -> int:
    """Optimiser steps for the run: `steps`, or `epochs` passes over `num_samples` samples."""
    if config.steps:
        return config.steps
    if not config.epochs:
        raise ConfigError("give the run's length: steps or epochs")
    if not num_samples:
        raise ConfigError("epochs needs the shards' sample count, and the shards hold no samples")
    global_batch = config.batch_size * config.accum_steps * world_size
    return max(1, math.ceil(config.epochs * num_samples / global_batch))
