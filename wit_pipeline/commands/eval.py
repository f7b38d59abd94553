"""`wit eval`: zero-shot classification, retrieval and linear probe of a trained CLIP.

    wit eval --checkpoint runs/tiny --zero-shot imagenet-val/ --retrieval 'heldout/{00000..00001}.tar' \
        --linear-probe train-folder/ test-folder/ --json metrics.json
"""

from __future__ import annotations

import json
from typing import Any

from wit_pipeline.cli import UsageError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="evaluate a trained CLIP: zero-shot, retrieval, linear probe",
        description="Evaluate a checkpoint written by `wit train`; prints the metrics and writes them with --json.",
    )
    parser.add_argument("--checkpoint", required=True, help="run folder (or its checkpoint.pt)")
    parser.add_argument("--zero-shot", metavar="IMAGE_FOLDER", help="folder of class_name/*.jpg")
    parser.add_argument("--classnames", metavar="FILE", help="one class name per line, in sorted folder order")
    parser.add_argument(
        "--ensemble", action="store_true", help="average CLIP's prompt ensemble instead of 'a photo of a {}.'"
    )
    parser.add_argument("--template", action="append", help="a prompt with {} for the class name (repeatable)")
    parser.add_argument("--retrieval", metavar="SHARD_PATTERN", help="held-out shards for recall@1/5/10")
    parser.add_argument("--linear-probe", nargs=2, metavar=("TRAIN_FOLDER", "TEST_FOLDER"))
    parser.add_argument("--probe-c", type=float, default=0.316, help="inverse L2 strength of the probe")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default=None, help="cpu, cuda ... (default: cuda when present)")
    parser.add_argument("--json", metavar="PATH", help="write the metrics here as JSON")
    parser.set_defaults(run=run)


def run(args) -> int:
    import torch

    from training import checkpoint, evaluate

    if not (args.zero_shot or args.retrieval or args.linear_probe):
        raise UsageError("nothing to evaluate: give --zero-shot, --retrieval or --linear-probe")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    path = checkpoint.checkpoint_path(args.checkpoint)
    if not checkpoint.exists(path):
        raise UsageError(f"no checkpoint at {path}")
    model, tokenizer, config = checkpoint.load_model(path)
    model.to(device)
    size, batch = config.model.image_size, args.batch_size
    templates = (
        tuple(args.template)
        if args.template
        else (evaluate.ENSEMBLE_TEMPLATES if args.ensemble else evaluate.TEMPLATES)
    )
    metrics: dict[str, Any] = {"checkpoint": path}
    try:
        if args.zero_shot:
            metrics["zero_shot"] = evaluate.zero_shot(
                model, tokenizer, args.zero_shot, size, args.classnames, templates, batch, device
            )
        if args.retrieval:
            metrics["retrieval"] = evaluate.retrieval(model, tokenizer, args.retrieval, size, batch, device)
        if args.linear_probe:
            train_folder, test_folder = args.linear_probe
            metrics["linear_probe"] = evaluate.linear_probe(
                model, train_folder, test_folder, size, args.probe_c, batch, device
            )
    except (FileNotFoundError, ValueError) as err:
        raise UsageError(str(err)) from err
    text = json.dumps(metrics, indent=2, sort_keys=True)
    print(text)
    if args.json:
        checkpoint.write_json(args.json, metrics)
    return 0
