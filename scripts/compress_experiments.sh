#!/usr/bin/env bash
# Issue 5's CPU experiments: the LightGaussian pipeline on MSSNet-small with the shipped synthetic
# weights (configs/compress-lightgaussian.yaml), its per-step table as CSV, then every stored
# model re-timed round-robin with the machine's load noted (reports/benchmarks/compression.md).
#
#     scripts/compress_experiments.sh            # about an hour on a 2-core CPU
#     CONFIG=configs/compress-quick.yaml scripts/compress_experiments.sh
#
# Environment: CONFIG (default configs/compress-lightgaussian.yaml), OUT (run store, reports/),
# ROUNDS (re-timing rounds, 3), SIZE (re-timing input side, 256).
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG="${CONFIG:-configs/compress-lightgaussian.yaml}"
OUT="${OUT:-reports/}"
BENCH=reports/benchmarks
STEM="$(basename "$CONFIG" .yaml)"
STEM="compression-${STEM#compress-}"   # compression-lightgaussian, compression-quick

effprof compress --config "$CONFIG" --out "$OUT" --resume --progress lines
python scripts/compress_summary.py "$OUT" --config "$CONFIG" --csv "$BENCH/$STEM.csv"
echo "load before re-timing: $(cat /proc/loadavg)"
python scripts/compress_latency.py "$OUT" --config "$CONFIG" --rounds "${ROUNDS:-3}" --size "${SIZE:-256}" \
    --csv "$BENCH/$STEM-latency.csv"
