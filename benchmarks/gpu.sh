#!/usr/bin/env bash
# The GPU benchmark, in at most 5 minutes: `googlenet bench` for inference and training against
# torchvision's googlenet (eager fp32, eager AMP bf16 channels_last, torch.compile), then JPEG
# decoding on the CPU against the GPU (can the input keep the GPU fed?). Prints images/s and the
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
STEP_LIMIT=${STEP_LIMIT:-130}   # seconds per bench step: 2 x 130 + 30 < 5 minutes
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
echo "== JPEG decoding"
timeout 30 "$PY" benchmarks/jpeg_decode.py --device "$DEVICE" --count "$JPEGS" \
    || echo "decode bench failed or ran out of time ($?)"
