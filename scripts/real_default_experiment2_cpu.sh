#!/usr/bin/env bash
# Issue 19's experiment 2 (protocol in docs/results.md): arms `open` (the default of experiment 1, trained on) and
# `fill` (the same plus the hole fill), 2 seeds each, 100 steps from that default on experiment 1's 400 clips with
# stereo tracks; then the real-footage benchmark (near, far) for every model and the engine's held-out split for
# seed 0. Run after scripts/real_default_experiment_cpu.sh (its shards, geometry cache and arm head's run).
# Resumable: finished runs and benches are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-outputs/real_default_cpu}
START=$OUT/start2  # experiment 1's default, written from its run (not weights/mvtrack-S, which may move on)
[ -f "$START/config.json" ] || python scripts/ship_real_default.py --run "$OUT/head_s0" --out "$START"
for seed in 0 1; do
  for arm in open fill; do
    run=$OUT/${arm}_s$seed
    if [ ! -d "$run/final" ]; then
      python -m mvtrack train --config configs/real_default_cpu/$arm.yaml --set seed=$seed --set output_dir=$run \
        --set model=$START --set data.source=$OUT/shards --set track2view.cache=$OUT/geometry_cache
    fi
  done
done
bench() {  # bench OUT_DIR ARGS...: skipped when OUT_DIR/summary.json exists
  local dir=$1; shift
  [ -f "$dir/summary.json" ] || python -m mvtrack bench --no-cameras --out "$dir" "$@"
}
for task in near far; do
  for seed in 0 1; do
    for arm in open fill; do
      bench $OUT/bench2_${task}_${arm}_s$seed --config configs/bench/re10k/$task.yaml --checkpoint $OUT/${arm}_s$seed/final
    done
  done
done
for arm in open fill; do
  bench $OUT/bench2_engine_${arm}_s0 --config configs/bench/heldout.yaml --no-tracks --checkpoint $OUT/${arm}_s0/final
done
