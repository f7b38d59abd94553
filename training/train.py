"""The training loop: read it top to bottom.

    config -> tokenizer -> model -> AdamW -> for each step: lr, micro-batches, loss, clip, step

One process per device; under `torchrun` each rank reads different samples, features are
all-gathered for the loss (training/loss.py) and DDP averages gradients. Rank 0 logs (`TrainLog`:
log.jsonl, appended at checkpoint time) and writes checkpoints. `resume=True` continues from
`<output>/checkpoint.pt` exactly as if never stopped: same parameters, optimiser moments, schedule
position and data position.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import fsspec
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from training import checkpoint
from training.config import TrainConfig, total_steps
from training.data import (
    LoaderState,
    StreamSpec,
    count_samples,
    expand_shards,
    iter_captions,
    normalise_images,
    train_loader,
)
from training.loss import clip_loss, gradient_share
from training.model import CLIP
from training.tokenizer import CaptionTokenizer, load_clip_vocab, train_bpe
from wit_pipeline.io import join, makedirs, write_atomic


@dataclass(frozen=True)
class DistInfo:
    """This process's place in a torchrun job (one process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(env: Mapping[str, str]) -> DistInfo:
    """Join the process group that torchrun describes in `env`; NCCL on GPU, gloo on CPU."""
    world_size = int(env.get("WORLD_SIZE", 1))
    if world_size == 1:
        return DistInfo()
    info = DistInfo(int(env["RANK"]), world_size, int(env.get("LOCAL_RANK", 0)))
    if torch.cuda.is_available():
        torch.cuda.set_device(info.local_rank)
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return info


def pick_device(config: TrainConfig, info: DistInfo) -> torch.device:
    if config.device != "auto":
        return torch.device(config.device)
    return torch.device(f"cuda:{info.local_rank}") if torch.cuda.is_available() else torch.device("cpu")


def build_tokenizer(config: TrainConfig, urls: list[str], info: DistInfo) -> str:
    """The tokenizer's JSON: CLIP's vocabulary if given, else a BPE trained by rank 0 on the
    shards' captions and broadcast, so every rank tokenises identically."""
    if config.clip_vocab:
        return load_clip_vocab(config.clip_vocab).to_str()
    payload: list[str | None] = [None]
    if info.is_main:
        payload[0] = train_bpe(iter_captions(urls, config.tokenizer_captions), config.model.vocab_size).to_str()
    if info.world_size > 1:
        dist.broadcast_object_list(payload, src=0)
    return cast(str, payload[0])  # rank 0 filled it in, and the broadcast gave it to every rank


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on matrices only; gains, biases and the logit scale (all 1-D or scalar) are
    left alone, as in CLIP and open_clip."""
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def lr_at(step: int, config: TrainConfig, steps: int) -> float:
    """Linear warmup to `lr`, then cosine decay to `min_lr` at the last step."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, steps - config.warmup_steps)
    return config.min_lr + 0.5 * (config.lr - config.min_lr) * (1 + math.cos(math.pi * min(1.0, progress)))


def train_step(net, model: CLIP, optimizer, micro_batches, info: DistInfo, autocast, grad_clip: float) -> float:
    """One optimiser step over `micro_batches` [(images, tokens)]; returns the loss.

    `net` is what runs the forward pass (the model, or its DDP / compiled wrapper); `model` the
    bare module. With several micro-batches this is open_clip's accumulation: a first pass without
    gradients caches every micro-batch's features, then each micro-batch is run again with
    gradients and its loss taken against the cached features of all the others, so the negatives
    and the gradient are those of one batch of all the micro-batches together (at the cost of a
    second forward pass). DDP synchronises gradients on the last micro-batch only.
    """
    optimizer.zero_grad(set_to_none=True)
    parts = len(micro_batches)
    cached = None
    if parts > 1:
        with torch.no_grad(), autocast:
            cached = [net(images, tokens)[:2] for images, tokens in micro_batches]
    ddp = net if isinstance(net, DistributedDataParallel) else getattr(net, "_orig_mod", None)
    for index, (images, tokens) in enumerate(micro_batches):
        last = index == parts - 1
        sync = contextlib.nullcontext() if last or not isinstance(ddp, DistributedDataParallel) else ddp.no_sync()
        with sync:
            with autocast:
                image_features, text_features, logit_scale = net(images, tokens)
            if cached:
                image_features = torch.cat([image_features if j == index else c[0] for j, c in enumerate(cached)])
                text_features = torch.cat([text_features if j == index else c[1] for j, c in enumerate(cached)])
                logit_scale = gradient_share(logit_scale, parts)  # every micro-batch uses it whole
            loss = clip_loss(
                image_features.float(), text_features.float(), logit_scale.float(), info.rank, info.world_size
            )
            # x world_size: each rank back-propagates its share and DDP averages (see loss.py).
            (loss * info.world_size).backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    model.clamp_logit_scale()
    return loss.item()


def make_optimizer(model: CLIP, config: TrainConfig, device: torch.device):
    return torch.optim.AdamW(
        param_groups(model, config.weight_decay),
        lr=config.lr,
        betas=(config.beta1, config.beta2),
        eps=config.eps,
        fused=device.type == "cuda",
    )


def _gather(obj, info: DistInfo) -> list:
    if info.world_size == 1:
        return [obj]
    out = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def data_state(loader_state: LoaderState, info: DistInfo) -> dict:
    """Every rank's stream positions merged (each rank fills only its own streams)."""
    positions = _gather(loader_state.positions, info)
    skipped = _gather(loader_state.skipped(), info)
    merged = [max(column) for column in zip(*positions, strict=True)]
    return {"batches": loader_state.batches, "positions": merged, "skipped": skipped}


def save_checkpoint(config, model, optimizer, step, loader_state, tokenizer_json, info) -> None:
    state = data_state(loader_state, info)  # a collective: every rank takes part
    if not info.is_main:
        return
    payload = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "step": step,
        "data": state,
        "config": config.to_json(),
        "tokenizer": tokenizer_json,
    }
    checkpoint.save(checkpoint.checkpoint_path(config.output), payload)
    if config.keep_checkpoints:
        checkpoint.save(join(config.output, f"checkpoint_{step:07d}.pt"), payload)


def train(config: TrainConfig, info: DistInfo = DistInfo(), resume: bool = False) -> dict:
    """Train to `config.steps` (or `epochs`) and return a summary: steps, per-step losses, skips."""
    device = pick_device(config, info)
    if config.threads:
        torch.set_num_threads(config.threads)
    urls = expand_shards(config.shards)
    if info.is_main:
        makedirs(config.output)
    ckpt_file = checkpoint.checkpoint_path(config.output)
    state = checkpoint.load(ckpt_file) if resume and checkpoint.exists(ckpt_file) else None

    # Tokenizer first: the model's vocabulary is whatever the tokenizer ended up with.
    tokenizer_json = state["tokenizer"] if state else build_tokenizer(config, urls, info)
    tokenizer = CaptionTokenizer(tokenizer_json, config.model.context_length)
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, vocab_size=tokenizer.vocab_size))
    if info.is_main:
        write_atomic(join(config.output, "config.json"), config.to_json().encode())
        write_atomic(join(config.output, "tokenizer.json"), tokenizer_json.encode())
    steps = total_steps(config, count_samples(urls) if config.epochs else None, info.world_size)

    torch.manual_seed(config.seed)  # same initial weights on every rank
    model = CLIP(config.model, tokenizer.eot_id).to(device)
    optimizer = make_optimizer(model, config, device)
    start_step, loader_state = 0, None
    num_streams = max(1, config.workers) * info.world_size
    if state:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_step = state["step"]
        saved = state["data"]
        if len(saved["positions"]) != num_streams:
            raise ValueError(
                f"the checkpoint's data position is for {len(saved['positions'])} streams (ranks x workers), "
                f"this run has {num_streams}: resume with the same number of ranks and workers"
            )
        loader_state = LoaderState(num_streams, saved["positions"], saved["batches"], saved["skipped"][info.rank])
    loader_state = loader_state or LoaderState(num_streams)

    net: torch.nn.Module | Callable[..., Any] = model  # what runs the forward pass (see train_step)
    if info.world_size > 1:
        net = DistributedDataParallel(model, device_ids=[info.local_rank] if device.type == "cuda" else None)
    if config.compile:
        model.text.trim_padding = False
        net = torch.compile(net)
    use_bf16 = config.precision == "bf16" or (config.precision == "auto" and device.type == "cuda")
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16)

    spec = StreamSpec(
        urls=urls,
        tokenizer=tokenizer,
        image_size=config.model.image_size,
        batch_size=config.batch_size,
        seed=config.seed,
        rank=info.rank,
        world_size=info.world_size,
        workers=config.workers,
        shuffle_buffer=config.shuffle_buffer,
        resample=config.resample,
        start_positions=list(loader_state.positions),
        start_batches=loader_state.batches,
    )
    batches = iter(train_loader(spec))

    samples_per_step = config.batch_size * config.accum_steps * info.world_size
    progress = tqdm(total=steps, initial=start_step, disable=not (info.is_main and config.progress), unit="step")
    log = TrainLog(join(config.output, "log.jsonl"), config.log_every, steps, samples_per_step, info, progress)
    losses: list[float] = []
    for step in range(start_step, steps):
        lr = lr_at(step, config, steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        micro_batches = []
        for _ in range(config.accum_steps):
            batch = next(batches)
            loader_state.update(batch)
            images = normalise_images(batch["images"].to(device, non_blocking=True))
            micro_batches.append((images, batch["tokens"].to(device, non_blocking=True)))
        loss = train_step(net, model, optimizer, micro_batches, info, autocast, config.grad_clip)
        losses.append(loss)
        progress.update(1)
        progress.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}")

        done = step + 1
        log.step(done, loss, lr, model, loader_state)
        if done % config.checkpoint_every == 0 or done == steps:
            save_checkpoint(config, model, optimizer, done, loader_state, tokenizer_json, info)
            log.flush()
    progress.close()
    skipped: Counter[str] = Counter()
    for counts in _gather(loader_state.skipped(), info):
        skipped.update(counts)
    return {"steps": steps, "start_step": start_step, "losses": losses, "skipped": dict(skipped), "config": config}


class TrainLog:
    """The run's log: every `log_every` steps (and at the last) one record of the interval's mean
    loss, the logit scale, the learning rate, throughput and the samples skipped so far. Rank 0
    prints it and keeps it until `flush`, called after each checkpoint, appends it to log.jsonl."""

    def __init__(self, path: str, log_every: int, steps: int, samples_per_step: int, info: DistInfo, progress) -> None:
        self.path, self.log_every, self.steps = path, log_every, steps
        self.samples_per_step, self.info, self.progress = samples_per_step, info, progress
        self.lines: list[str] = []
        self.interval_losses: list[float] = []
        self.interval_start = time.perf_counter()

    def step(self, done: int, loss: float, lr: float, model: CLIP, loader_state: LoaderState) -> None:
        """Count step `done`; write a record when one is due. The logit scale (a device-to-host
        copy) and the skip counts are read only then, not on every step."""
        self.interval_losses.append(loss)
        if done % self.log_every and done != self.steps:
            return
        logit_scale, skipped = model.logit_scale.exp().item(), loader_state.skipped()
        elapsed = time.perf_counter() - self.interval_start
        record = {
            "step": done,
            "loss": sum(self.interval_losses) / len(self.interval_losses),
            "logit_scale": logit_scale,
            "lr": lr,
            "samples_per_s": len(self.interval_losses) * self.samples_per_step / elapsed,
            "samples_seen": done * self.samples_per_step,
            "skipped": skipped,
        }
        if self.info.is_main:
            self.lines.append(json.dumps(record, sort_keys=True))
            self.progress.write(
                f"step {done}/{self.steps} loss {record['loss']:.4f} logit_scale {record['logit_scale']:.2f} "
                f"lr {lr:.2e} {record['samples_per_s']:.1f} samples/s"
            )
        self.interval_start, self.interval_losses = time.perf_counter(), []

    def flush(self) -> None:
        """Append the records kept since the last flush to log.jsonl (rank 0)."""
        if self.info.is_main:
            _append_log(self.path, self.lines)
            self.lines = []


def _append_log(path: str, lines: list[str]) -> None:
    """Append to log.jsonl at checkpoint time, so the log never runs ahead of the checkpoint."""
    if not lines:
        return
    previous = b""
    if checkpoint.exists(path):
        fs, fs_path = fsspec.core.url_to_fs(path)
        previous = fs.cat_file(fs_path)
    write_atomic(path, previous + ("\n".join(lines) + "\n").encode())
