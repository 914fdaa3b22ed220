#!/usr/bin/env bash
# The camera-only model the CPU-scale experiments fine-tune (configs/track_cpu, configs/track2view_cpu,
# configs/cvd_cpu: `model: outputs/camera_only_base`): the embedded default before it became Track2View, 900 steps
# of configs/camera_only_S_cpu_xloss.yaml, kept in the repository's history (commit 7a9947f, weights/mvtrack-S; the
# shipped weights/mvtrack-S has a track conditioner now, which those experiments do not train).
#   bash scripts/camera_only_base.sh [OUT]      # default OUT: outputs/camera_only_base
set -euo pipefail
OUT=${1:-outputs/camera_only_base}
if [ ! -f "$OUT/config.json" ]; then
  mkdir -p "$OUT"
  git archive 7a9947f weights/mvtrack-S | tar -x -C "$OUT" --strip-components=2
fi
echo "$OUT"
