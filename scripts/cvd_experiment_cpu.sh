#!/usr/bin/env bash
# The CPU-scale CVD experiment of docs/results.md: camera-only vs epipolar cross-view modules vs the masked
# processor, each fine-tuning the camera-only default that shipped before Track2View (commit 7a9947f) for the same
# steps on the same clips (configs/cvd_cpu/*.yaml), 2 seeds (seed s: noise/sampling seed s, data stream 300 + s,
# identical across arms). Each run is exported and scored by scripts/cvd_consistency.py: re-rendering of 16 held-out
# 3-view clips (PSNR / SSIM) and the mutual consistency of 3 targets generated together on 8 held-out 4-view clips
# (epipolar consistency, two-view pose AUC and cross-view track consistency between generated views).
# Runs go one after another with both cores: about 60 min on the 2-core CPU when the machine is otherwise idle.
set -euo pipefail
OUT=${OUT:-outputs/cvd_cpu}
ARMS=${ARMS:-"camera_only cvd_module cvd_processor"}
SEEDS=${SEEDS:-"0 1"}
STEPS=${STEPS:-150}
mkdir -p "$OUT"
bash scripts/camera_only_base.sh  # the starting point (configs' model): the camera-only default of commit 7a9947f
for seed in $SEEDS; do
  for arm in $ARMS; do
    run="$OUT/${arm}_s$seed"
    if [ ! -f "$run/final/config.json" ]; then
      python -m mvtrack train --config "configs/cvd_cpu/$arm.yaml" --set seed=$seed --set data.seed=$((300 + seed)) \
        --set max_steps=$STEPS --set output_dir="$run" > "$run.log" 2>&1
    fi
    python scripts/cvd_consistency.py --model "$run/final" --out "$run/scores.json" > "$run.score.log" 2>&1
  done
done
python scripts/cvd_consistency.py --summarize "$OUT"
