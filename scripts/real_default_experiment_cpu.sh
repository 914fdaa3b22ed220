#!/usr/bin/env bash
# Issue 19's experiment (protocol in docs/results.md): skip designs `gate` and `head`, 2 seeds each, fine-tuned from
# weights/mvtrack-S on the same 400 pre-rendered engine clips with stereo tracks; then the real-footage benchmark
# (near, far) and the engine's held-out split for every model. Resumable: finished runs and benches are skipped.
# The reference rows (no learning, the same for every model) are scored once per split, in bench_<task>_refs.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-outputs/real_default_cpu}
DATA=$OUT/shards
mkdir -p "$OUT"
if [ ! -f "$DATA/config.json" ]; then
  python -m mvtrack synth --out "$DATA" --num 400 --views 2 --frames 8 --size 64 --seed 400 --baseline small \
    --tracks 16 --query-view 0 --layouts objects,room --photo-prob 0.7 --shards 50
fi
for seed in 0 1; do
  for arm in gate head; do
    run=$OUT/${arm}_s$seed
    if [ ! -d "$run/final" ]; then
      python -m mvtrack train --config configs/real_default_cpu/$arm.yaml --set seed=$seed --set output_dir=$run \
        --set data.source=$DATA --set track2view.cache=$OUT/geometry_cache
    fi
  done
done
bench() {  # bench OUT_DIR ARGS...: skipped when OUT_DIR/summary.json exists
  local dir=$1; shift
  [ -f "$dir/summary.json" ] || python -m mvtrack bench --no-cameras --out "$dir" "$@"
}
for task in near far; do
  bench $OUT/bench_${task}_refs --config configs/bench/re10k/$task.yaml --method stereo_splat --method copy_source
  for seed in 0 1; do
    for arm in gate head; do
      bench $OUT/bench_${task}_${arm}_s$seed --config configs/bench/re10k/$task.yaml --checkpoint $OUT/${arm}_s$seed/final
    done
  done
done
bench $OUT/bench_engine_refs --config configs/bench/heldout.yaml --no-tracks --method stereo_splat \
  --method source_depth_splat --method copy_source
for seed in 0 1; do
  for arm in gate head; do
    bench $OUT/bench_engine_${arm}_s$seed --config configs/bench/heldout.yaml --no-tracks \
      --checkpoint $OUT/${arm}_s$seed/final
  done
done
python scripts/summarize_real_default_experiment.py "$OUT"
