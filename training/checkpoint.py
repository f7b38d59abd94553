"""Checkpoints: tensors, numbers and strings only, so `torch.load(weights_only=True)` reads them.

A run folder holds `checkpoint.pt` (model, optimiser, step, data position, config, tokenizer),
`config.json` (the resolved config) and `tokenizer.json` beside it, and `log.jsonl`.
"""

from __future__ import annotations

import io
import json

import fsspec
import torch

from training.config import TrainConfig, config_from_json
from training.model import CLIP
from training.tokenizer import CaptionTokenizer
from wit_pipeline.io import join, write_atomic

CHECKPOINT_NAME = "checkpoint.pt"


def checkpoint_path(run_dir_or_file: str) -> str:
    """A run folder's checkpoint, or the file itself when given one."""
    return run_dir_or_file if run_dir_or_file.endswith(".pt") else join(run_dir_or_file, CHECKPOINT_NAME)


def exists(path: str) -> bool:
    fs, fs_path = fsspec.core.url_to_fs(path)
    return fs.exists(fs_path)


def save(path: str, state: dict) -> None:
    """Write `state` atomically: a crash mid-write leaves the previous checkpoint intact."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_atomic(path, buffer.getvalue())


def load(path: str, map_location="cpu") -> dict:
    fs, fs_path = fsspec.core.url_to_fs(path)
    with fs.open(fs_path, "rb") as f:
        return torch.load(io.BytesIO(f.read()), map_location=map_location, weights_only=True)


def load_model(run_dir_or_file: str, map_location="cpu") -> tuple[CLIP, CaptionTokenizer, TrainConfig]:
    """The trained model (in eval mode), its tokenizer and its config, from a run folder or file."""
    state = load(checkpoint_path(run_dir_or_file), map_location)
    config = config_from_json(state["config"])
    tokenizer = CaptionTokenizer(state["tokenizer"], config.model.context_length)
    model = CLIP(config.model, tokenizer.eot_id)
    model.load_state_dict(state["model"])
    return model.eval(), tokenizer, config


def write_json(path: str, obj) -> None:
    write_atomic(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())
