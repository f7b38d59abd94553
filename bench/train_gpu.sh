#!/usr/bin/env bash
# One short GPU check of the trainer (about 2 minutes): ViT-B/32 at batch 256 with bf16 autocast,
# eager and torch.compile, samples/s and model FLOP utilisation; then the loader's samples/s with
# 12 worker processes on real COCO shards. Meant for the device tool's `run`, which lends a GPU
# machine whose python3 has torch but not webdataset: carry its wheels in .whl (bench/README.md).
set -euo pipefail
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
coco=${COCO:-.benchdata/coco-mini}
extra=()
if [ -d "$coco" ]; then extra=(--coco "$coco"); fi
PYTHONUNBUFFERED=1 python3 bench/train.py gpu --compile "${extra[@]}" | tee "${OUT:-/tmp}/train_gpu.json"
