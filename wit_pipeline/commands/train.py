"""`wit train`: train the bundled CLIP on WebDataset shards (ours, img2dataset's or open_clip's).

    wit train --shards 'out/final/{00000..00012}.tar' --output runs/tiny --preset tiny --steps 2000
    torchrun --nproc_per_node=8 -m wit_pipeline.cli train --shards ... --output ...

Flags override values from `--config train.toml` (its `[train]` table), which override the
preset. With `--resume` the run continues from `RUN_DIR/checkpoint.pt` with the checkpoint's
config; flags given again (a larger `--steps`, say) override it.
"""

from __future__ import annotations

import argparse
import json
import os

from wit_pipeline.cli import UsageError

# On/off knobs: --compile and --no-compile, and so on.
_BOOLEAN_FLAGS = ("compile", "resample", "progress", "keep_checkpoints")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train the bundled CLIP on tar shards",
        description="Train a minimal CLIP on WebDataset shards; checkpoints and a log go to --output.",
        argument_default=argparse.SUPPRESS,  # only flags that were given override the config
    )
    parser.add_argument(
        "--shards", help="tar shards: brace pattern, glob or folder, local or fsspec URL ('a::b' for several)"
    )
    parser.add_argument("--output", help="run folder: checkpoint.pt, config.json, tokenizer.json, log.jsonl")
    parser.add_argument("--config", dest="config_file", help="TOML file; its [train] table sets TrainConfig fields")
    parser.add_argument("--preset", help="model shape: tiny, small or ViT-B/32")
    parser.add_argument("--resume", action="store_true", help="continue from RUN_DIR/checkpoint.pt")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="start afresh in a RUN_DIR that holds a run (its checkpoint and log are replaced)",
    )
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, help="optimiser steps")
    length.add_argument("--epochs", type=float, help="passes over the shards' samples")
    for flag, kind, text in (
        ("--batch-size", int, "samples per rank and micro-step"),
        ("--accum-steps", int, "micro-steps per optimiser step"),
        ("--lr", float, "peak learning rate"),
        ("--min-lr", float, "learning rate at the end of the cosine"),
        ("--warmup-steps", int, "linear warmup steps"),
        ("--weight-decay", float, "AdamW weight decay (matrices only)"),
        ("--grad-clip", float, "max gradient norm; 0 turns it off"),
        ("--image-size", int, "image side in pixels"),
        ("--patch-size", int, "ViT patch side"),
        ("--vision-width", int, None),
        ("--vision-layers", int, None),
        ("--vision-heads", int, None),
        ("--text-width", int, None),
        ("--text-layers", int, None),
        ("--text-heads", int, None),
        ("--embed-dim", int, "shared embedding size"),
        ("--context-length", int, "tokens per caption (77 in CLIP)"),
        ("--vocab-size", int, "size of the BPE trained on the shards' captions"),
        ("--clip-vocab", str, "CLIP's bpe_simple_vocab_16e6.txt.gz instead of training a BPE"),
        ("--tokenizer-captions", int, "captions read to train the BPE"),
        ("--workers", int, "data-loader processes per rank"),
        ("--shuffle-buffer", int, "samples in the shuffle buffer"),
        ("--seed", int, None),
        ("--threads", int, "CPU threads of the training process (0: one per core)"),
        ("--device", str, "cpu, cuda, cuda:1 ... (default: cuda when present)"),
        ("--precision", str, "auto, fp32 or bf16"),
        ("--log-every", int, "steps between log lines"),
        ("--checkpoint-every", int, "steps between checkpoints"),
    ):
        parser.add_argument(flag, type=kind, help=text)
    for name in _BOOLEAN_FLAGS:
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, action=argparse.BooleanOptionalAction)
    parser.set_defaults(run=run)


def run(args) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # data workers fork after BPE training
    from training import checkpoint
    from training.config import ConfigError, load_train_toml, resolve_config
    from training.train import init_distributed, train

    flags = {
        k: v
        for k, v in vars(args).items()
        if k not in ("command", "run", "passthrough", "config_file", "resume", "overwrite", "verbose", "quiet")
    }
    resume = getattr(args, "resume", False)
    try:
        overrides = load_train_toml(args.config_file) if getattr(args, "config_file", None) else {}
        overrides.update(flags)
        # The run's length given as a flag replaces the other measure from the file or checkpoint.
        for given, other in (("steps", "epochs"), ("epochs", "steps")):
            if given in flags:
                overrides[other] = None
        if not overrides.get("shards") or not overrides.get("output"):
            raise UsageError("give --shards PATTERN and --output RUN_DIR (or set them in --config)")
        base = None
        ckpt_file = checkpoint.checkpoint_path(overrides["output"])
        _check_run_folder(overrides["output"], ckpt_file, resume, getattr(args, "overwrite", False))
        if resume and checkpoint.exists(ckpt_file):
            base = json.loads(checkpoint.load(ckpt_file)["config"])
            _check_same_shape(base, overrides)
        config = resolve_config(overrides, base)
        if not config.steps and not config.epochs:
            raise UsageError("give the run's length: --steps N or --epochs N")
        result = train(config, init_distributed(dict(os.environ)), resume=resume)
    except (ConfigError, FileNotFoundError, ValueError) as err:
        raise UsageError(str(err)) from err
    if int(os.environ.get("RANK", 0)) == 0:  # one summary line per job, not per rank
        print(
            json.dumps(
                {
                    "steps": result["steps"],
                    "final_loss": result["losses"][-1] if result["losses"] else None,
                    "skipped": result["skipped"],
                    "output": config.output,
                }
            )
        )
    return 0


def _check_run_folder(output: str, ckpt_file: str, resume: bool, overwrite: bool) -> None:
    """A run folder is resumed only on --resume, and replaced only on --overwrite: a forgotten
    flag must not overwrite a checkpoint (or append a second run to its log), nor a mistyped
    folder start a "resumed" run at step 0."""
    from training import checkpoint
    from wit_pipeline import io

    if resume and overwrite:
        raise UsageError("--resume and --overwrite exclude each other")
    has_checkpoint = checkpoint.exists(ckpt_file)
    if resume and not has_checkpoint:
        raise UsageError(f"--resume: {output} holds no checkpoint.pt to resume from; drop --resume to start a run")
    previous = [name for name in ("checkpoint.pt", "log.jsonl") if io.exists(io.join(output, name))]
    if previous and not resume:
        if not overwrite:
            raise UsageError(
                f"{output} already holds a run ({', '.join(previous)}): pass --resume to continue "
                "it, or --overwrite to start afresh"
            )
        for name in previous:
            io.remove(io.join(output, name))


def _check_same_shape(base: dict, overrides: dict) -> None:
    """The checkpoint's model (its config, flat or nested) is the one the flags and file describe."""
    from training.config import nest_model_fields

    saved, given = nest_model_fields(base)["model"], nest_model_fields(overrides)["model"]
    changed = [k for k in given if k != "vocab_size" and given[k] != saved.get(k)]
    if changed:
        raise UsageError(f"--resume cannot change the model's shape ({', '.join(changed)})")
