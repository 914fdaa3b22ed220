#!/usr/bin/env bash
# Track supervision v2 (issue 14, docs/results.md): camera-only vs MVTrack4Gen (pair head) vs MVTrack4Gen with the
# MV-TAP-style head and per-head L_corr vs Track4Gen as in seed 003 (calibrated weight), each fine-tuning the
# camera-only default of commit 7a9947f (the issue-4 starting point; weights/mvtrack-S is Track2View now) for 200
# steps on the same clips (configs/track_cpu/*.yaml, data stream 100 + seed), 2 seeds side by side on one thread
# each; then one benchmark table (configs/bench/track_v2.yaml: held-out split, 10 steps, camera sensitivity) and
# the pre-registered decision (scripts/summarize_track_experiment.py). Finished runs are skipped, so a stopped
# experiment resumes where it was (training itself resumes exactly). About 2 h on the 2-core CPU.
set -euo pipefail
OUT=${OUT:-outputs/track_v2_cpu}
BASE=${BASE:-outputs/camera_only_base}
ARMS=${ARMS:-"camera_only mvtrack4gen mvtrack4gen_mvtap track4gen_paper"}
SEEDS=${SEEDS:-"0 1"}
mkdir -p "$OUT"
bash scripts/camera_only_base.sh "$BASE"
for arm in $ARMS; do
  for seed in $SEEDS; do
    run="$OUT/${arm}_s$seed"
    if [ ! -f "$run/final/config.json" ]; then
      OMP_NUM_THREADS=1 python -m mvtrack train --config "configs/track_cpu/$arm.yaml" --set model="$BASE" \
        --set seed=$seed --set data.seed=$((100 + seed)) --set output_dir="$run" > "$run.log" 2>&1 &
    fi
  done
  wait
done
python -m mvtrack bench --config configs/bench/track_v2.yaml --out "$OUT/bench"
python scripts/summarize_track_experiment.py "$OUT/bench" --arms camera_only mvtrack4gen mvtrack4gen_mvtap track4gen_paper
