#!/usr/bin/env bash
# The CPU-scale track-supervision experiment of docs/results.md: 4 objectives x 2 seeds, each fine-tuning the
# camera-only default of commit 7a9947f for 200 steps (configs/track_cpu/*.yaml), exported and scored on the held-out
# benchmark split.
# The two seeds of an arm train side by side, one thread each (2 cores). About 80 min on the 2-core CPU.
set -euo pipefail
OUT=${OUT:-outputs/track_cpu}
ARMS=${ARMS:-"camera_only mvtrack4gen track4gen both"}
SEEDS=${SEEDS:-"0 1"}
bash scripts/camera_only_base.sh  # outputs/camera_only_base, the configs' model
for arm in $ARMS; do
  for seed in $SEEDS; do
    OMP_NUM_THREADS=1 python -m mvtrack train --config "configs/track_cpu/$arm.yaml" \
      --set seed=$seed --set data.seed=$((100 + seed)) --set output_dir="$OUT/${arm}_s$seed" \
      > "$OUT/${arm}_s$seed.log" 2>&1 &
  done
  wait
done
checkpoints=()
for arm in $ARMS; do for seed in $SEEDS; do checkpoints+=(--checkpoint "$OUT/${arm}_s$seed/final"); done; done
# One shared split and one table ($OUT/bench/summary.md): reference rows, the starting point, then every run.
python -m mvtrack bench --method ground_truth --method copy_source --method depth_warp --method noise \
  --checkpoint outputs/camera_only_base "${checkpoints[@]}" --out "$OUT/bench"
