#!/usr/bin/env bash
# The CPU-scale Track2View experiment of docs/results.md: camera-only vs Track2View vs Track2View + MVTrack4Gen, each
# fine-tuning the camera-only default of commit 7a9947f (outputs/camera_only_base) for the same steps on the same clips (configs/track2view_cpu/*.yaml),
# 2 seeds (seed s: noise/sampling seed s, data stream 200 + s, identical across arms). Each run is exported and
# scored on 16 held-out `test` clips (`mvtrack demo`: PSNR / SSIM beside copy-source and the true-depth warp).
# Runs go one after another with both cores. About 80 min on the 2-core CPU when the machine is otherwise idle.
set -euo pipefail
OUT=${OUT:-outputs/track2view_cpu}
ARMS=${ARMS:-"track2view camera_only track2view_mvtrack4gen"}
SEEDS=${SEEDS:-"0 1"}
STEPS=${STEPS:-150}
EVAL_STEPS=${EVAL_STEPS:-10}
mkdir -p "$OUT"
bash scripts/camera_only_base.sh  # outputs/camera_only_base, the configs' model
for seed in $SEEDS; do
  for arm in $ARMS; do
    run="$OUT/${arm}_s$seed"
    python -m mvtrack train --config "configs/track2view_cpu/$arm.yaml" --set seed=$seed \
      --set data.seed=$((200 + seed)) --set max_steps=$STEPS --set output_dir="$run" > "$run.log" 2>&1
    python -m mvtrack demo --model "$run/final" --split test --clips 16 --steps $EVAL_STEPS --out "$run/heldout" \
      > "$run.demo.log" 2>&1
  done
done
python scripts/summarize_track2view_experiment.py "$OUT"
