#!/usr/bin/env bash
# The device check, run once on a lent H100/H200 (tool `device`, see DEVELOPERS notes):
#   1. installs effprof from src/ plus the wheels carried in .whl/ (the machine has torch,
#      onnxruntime, pandas, numpy but no pydantic, plotly, fvcore, thop, torch-pruning);
#   2. trains MSSNet-small weights, time-boxed (TRAIN_MINUTES, default 4);
#   3. profiles small/base/large at 1280x720 in fp32, tf32, fp16 and fp16 + CUDA graphs;
#   4. runs the GPU-marked tests;
#   5. times dense and pruned base-width MSSNet (fp16, channels_last, CUDA graphs);
# and leaves everything under $OUT (at most 8 files come back).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/effprof-gpu-out}"
mkdir -p "$OUT"
log="$OUT/gpu_check.log"
exec > >(tee -a "$log") 2>&1
stage() { echo; echo "=== $(date +%T) $*"; }

stage "install"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH="$PWD/src:/tmp/site" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,driver_version --format=csv
python3 -c "import torch, effprof.api; print('torch', torch.__version__, torch.cuda.get_device_name())"

if [[ "${SKIP_TRAIN:-0}" != 1 ]]; then
    stage "train MSSNet-small (${TRAIN_MINUTES:-4} min budget)"
    DEVICE=cuda MAX_MINUTES="${TRAIN_MINUTES:-4}" OUT=/tmp/train-runs timeout 600 scripts/train_weights.sh
    weights=$(ls -t /tmp/train-runs/runs/*/weights-fp16.pt 2>/dev/null | head -n 1)
    [[ -n "$weights" ]] && cp "$weights" "$OUT/mssnet-small-synthetic-gpu.pt"
fi

stage "profiles at 1280x720"
timeout 420 python3 scripts/gpu_profiles.py --out /tmp/gpu-runs --summary "$OUT/gpu-profiles.csv"

stage "GPU tests"
timeout 240 python3 -m pytest -q -m gpu -p no:cacheprovider tests 2>&1 | tail -n 40

stage "dense vs pruned base-width latency"
if [[ -d reports/benchmarks/compression-gpu ]]; then
    timeout 180 python3 scripts/compress_gpu_latency.py time \
        --structures reports/benchmarks/compression-gpu --out "$OUT"
fi

stage "pack"
rm -f /tmp/train-runs/runs/*/*.pt.tmp
tar czf "$OUT/runs.tar.gz" --exclude='*.pt' --exclude='*.onnx' -C /tmp gpu-runs train-runs 2>/dev/null
ls -la "$OUT"
stage "done"
