#!/usr/bin/env bash
# The GPU benchmark, in at most 8 minutes: `googlenet bench` for inference and training against
# torchvision's googlenet (eager fp32, eager AMP bf16 channels_last, torch.compile); the input
# pipeline (`bench --mode data`: CPU loader workers, decode_jpeg batched on the GPU and the
# `--decode gpu` path, against the training rate just measured); then a short `googlenet train`
# under torchrun, one process per GPU (NCCL), with `--decode gpu`. Prints images/s and the
# fraction of the chip's bf16 peak (measured large matmul, and the data-sheet figure for known
# chips); JSON reports land in $OUT.
#
#   bash benchmarks/gpu.sh                                  # on a CUDA machine
#   DEVICE=cpu SIZE=64 INFER_BATCH=4 TRAIN_BATCH=4 REPEATS=2 WARMUP=1 COMPILE= JPEGS=16 \
#       STEP_LIMIT=600 bash benchmarks/gpu.sh                 # dry run on a CPU
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
DEVICE=${DEVICE:-cuda}
SIZE=${SIZE:-224}
INFER_BATCH=${INFER_BATCH:-256}
TRAIN_BATCH=${TRAIN_BATCH:-128}
REPEATS=${REPEATS:-20}
WARMUP=${WARMUP:-5}
JPEGS=${JPEGS:-256}
STEP_LIMIT=${STEP_LIMIT:-130}   # seconds per step: 3 x 130 + 90 < 8 minutes
COMPILE=${COMPILE---compile}   # inference: set COMPILE= to skip the torch.compile contenders
# Compiling a training step (forward and backward, ours and torchvision's) takes minutes: it
# does not fit in the 5-minute budget with the rest, so it is opt-in: TRAIN_COMPILE=--compile.
TRAIN_COMPILE=${TRAIN_COMPILE:-}
# Idle seconds before each timed call: against spinning CPU threads on a 2-core machine; a GPU
# call ends in a synchronize, and 16 cores leave spinning threads room, so little is needed.
SETTLE=${SETTLE:-0.01}
OUT=${OUT:-benchmarks/results}
mkdir -p "$OUT"

"$PY" - <<'PY'
import torch
print(f"torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}",
      f"({torch.cuda.get_device_name()})" if torch.cuda.is_available() else "")
PY

common=(--preset torchvision --force --device "$DEVICE" --input-size "$SIZE" --repeats "$REPEATS" --warmup "$WARMUP" --no-memory
        --settle "$SETTLE")
# Each step has its own time limit, so that the whole script stays within 5 minutes.
echo "== inference, batch $INFER_BATCH"
timeout "$STEP_LIMIT" "$PY" -m googlenet bench --mode infer -b "$INFER_BATCH" $COMPILE "${common[@]}" \
    --output "$OUT/gpu-infer.json" || echo "inference bench failed or ran out of time ($?)"
echo "== training step, batch $TRAIN_BATCH"
timeout "$STEP_LIMIT" "$PY" -m googlenet bench --mode train -b "$TRAIN_BATCH" $TRAIN_COMPILE "${common[@]}" \
    --output "$OUT/gpu-train.json" || echo "training bench failed or ran out of time ($?)"
echo "== input pipeline: $JPEGS JPEGs, against the training rate above"
RATE=$("$PY" -c 'import json, sys
r = json.load(open(sys.argv[1]))["train"]["results"]
print(max(x["images_per_s"] for x in r if x["ours"]))' "$OUT/gpu-train.json" 2>/dev/null || true)
timeout 90 "$PY" -m googlenet bench --mode data --device "$DEVICE" --images "$JPEGS" \
    --input-size "$SIZE" ${RATE:+--gpu-images-per-s "$RATE"} \
    || echo "input pipeline bench failed or ran out of time ($?)"
echo "== torchrun, one process per GPU (NCCL on CUDA), --decode gpu, 2 epochs of the demo digits"
NPROC=$("$PY" -c 'import torch; print(max(torch.cuda.device_count(), 1))')
RUN="$OUT/torchrun-$(date +%s)"
"$PY" -c 'import sys; from pathlib import Path; from PIL import Image
from googlenet.demo import write_digits
write_digits(Path(sys.argv[1]))
for png in Path(sys.argv[1]).rglob("*.png"):  # JPEGs, for decode_jpeg on the GPU
    Image.open(png).convert("RGB").save(png.with_suffix(".jpg"), quality=95)
    png.unlink()' "$RUN/data"
timeout "$STEP_LIMIT" "$PY" -m torch.distributed.run --standalone --nproc-per-node "$NPROC" \
    -m googlenet train --data "$RUN/data" --output-dir "$RUN/run" --epochs 2 --input-size 64 \
    -b 64 -j 4 --decode gpu --device "$DEVICE" --print-freq 5 \
    || echo "torchrun training failed or ran out of time ($?)"
