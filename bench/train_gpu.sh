#!/usr/bin/env bash
# One short GPU check of the trainer (2-4 minutes): ViT-B/32 at batch 256 with bf16 autocast,
# eager then torch.compile: samples/s and model FLOP utilisation. Needs only torch, tokenizers,
# pillow, fsspec, pyarrow and tqdm, which the lent GPU machines' python3 has. If webdataset is
# importable there (carry its wheel and braceexpand's in .whl) and COCO images are at $COCO,
# it also times the loader with 12 worker processes.
set -euo pipefail
cd "$(dirname "$0")/.."
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import sys, torch; print('python', sys.version.split()[0], 'torch', torch.__version__)"
coco=${COCO:-.benchdata/coco-mini}
extra=()
if [ -d "$coco" ] && python3 -c "import webdataset" 2>/dev/null; then extra=(--coco "$coco"); fi
PYTHONUNBUFFERED=1 timeout "${LIMIT_S:-300}" python3 bench/train.py gpu --compile --steps 20 "${extra[@]}" \
    | tee "${OUT:-/tmp}/train_gpu.log"
