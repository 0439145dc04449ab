#!/usr/bin/env bash
# One short GPU check (<= 10 min on one accelerator): keras_vae vs PyTorch training on the
# same GPU (float32 and mixed_float16, XLA on and off), the k=5000 test NLL time on all
# 10,000 images, and MirroredStrategy over every visible GPU against one device.
#   bash bench/gpu_check.sh              # on a machine with a GPU (pip install -e . torch)
#   bash bench/gpu_check.sh --cpu-dry-run  # the same steps, tiny, on the CPU (a smoke test)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
OUT=${OUT:-/tmp/keras_vae_gpu_check}
mkdir -p "$OUT"
if [[ "${1:-}" == "--cpu-dry-run" ]]; then
  DEV=cpu; SIZE=(--quick); EVAL=(--eval-examples 40); STEPS=4; DRY=(--cpu-dry-run)
  echo "cpu dry run: tiny sizes, figures meaningless"
else
  DEV=gpu; SIZE=(--quick); EVAL=(--eval-examples 10000); STEPS=20; DRY=()
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
fi
for precision in float32 mixed_float16; do
  for jit in true false; do
    echo "== train: $precision, jit=$jit"
    timeout 150 "$PY" bench/run.py --parts train "${SIZE[@]}" --device "$DEV" \
      --precision "$precision" --jit "$jit" --part-timeout 140 \
      --out "$OUT/train_${precision}_${jit}.json" --markdown "$OUT/train_${precision}_${jit}.md" \
      | grep -E "^\| train" || echo "(train $precision jit=$jit did not finish in 150 s)"
  done
done
echo "== eval: k=5000 test NLL"
timeout 240 "$PY" bench/run.py --parts eval "${EVAL[@]}" --device "$DEV" --jit true \
  --out "$OUT/eval.json" --markdown "$OUT/eval.md" | grep -E "^\| eval" || echo "(eval did not finish)"
echo "== MirroredStrategy vs one device"
timeout 120 "$PY" bench/gpu_check.py --steps "$STEPS" "${DRY[@]}"
