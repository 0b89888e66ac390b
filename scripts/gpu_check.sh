#!/usr/bin/env bash
# The device check, run once on a lent H100/H200 (tool `device`; about 15 minutes per session):
#   1. installs effprof from src/ plus the wheels carried in .whl/ (the machine has torch,
#      onnxruntime, pandas, numpy but not pydantic, plotly, fvcore, thop, torch-pruning);
#   2. runs the GPU-marked tests (in the background, while training starts: they check
#      behaviour, not speed);
#   3. trains MSSNet-small on the GPU in two time-boxed phases (scripts/train_weights.sh:
#      TRAIN_MINUTES, default 6.5, from the CPU-trained weights; TRAIN_MINUTES2, default 4, with
#      rescaled crops; FROM=WEIGHTS skips the first) and returns the fp16 weights and the run
#      record (loss curve, evaluations, held-out test set) of the last phase;
#   4. optionally (PROFILES=1) profiles small/base/large at 1280x720 in fp32, tf32, fp16 and
#      fp16 + CUDA graphs against gpu-anchors.md, and (LATENCY=1) times dense and pruned
#      base-width MSSNet (fp16, channels_last, CUDA graphs);
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
python3 -c "import torch, effprof.api; print('torch', torch.__version__, torch.cuda.get_device_name())" || exit 1

stage "GPU tests (background)"
tests_pid=""
if [[ "${SKIP_TESTS:-0}" != 1 ]]; then
    (timeout 120 python3 -m pytest -q -m gpu -p no:cacheprovider tests >"$OUT/gpu-tests.log" 2>&1
     echo "pytest exit $?" >>"$OUT/gpu-tests.log") &
    tests_pid=$!
fi

if [[ "${SKIP_TRAIN:-0}" != 1 ]]; then
    stage "train MSSNet-small (${TRAIN_MINUTES:-6.5} + ${TRAIN_MINUTES2:-4} min budget)"
    DEVICE=cuda MAX_MINUTES="${TRAIN_MINUTES:-6.5}" MAX_MINUTES2="${TRAIN_MINUTES2:-4}" OUT=/tmp/train-runs \
        timeout -s INT "${TRAIN_TIMEOUT:-500}" scripts/train_weights.sh
    run=$(ls -td /tmp/train-runs/runs/*/ 2>/dev/null | head -n 1)
    if [[ -n "$run" ]]; then
        if [[ -f "$run/weights-fp16.pt" ]]; then
            cp "$run/weights-fp16.pt" "$OUT/mssnet-small-synthetic-gpu.pt"
        elif [[ -f "$run/checkpoint.pt" ]]; then  # stopped early: keep the last checkpoint's weights
            python3 -c "import sys, torch; s = torch.load(sys.argv[1], weights_only=True)['model_state_dict']; torch.save({k: v.half() for k, v in s.items()}, sys.argv[2])" \
                "$run/checkpoint.pt" "$OUT/checkpoint-weights-fp16.pt"
        fi
        tar czf "$OUT/train-run.tar.gz" --exclude='*.pt' --exclude='*.tmp' -C "$(dirname "$run")" "$(basename "$run")"
    fi
fi

# Wait for the tests by pid: a bare `wait` would also wait for the log's tee, which never ends.
if [[ -n "$tests_pid" ]]; then
    wait "$tests_pid"
    tail -n 15 "$OUT/gpu-tests.log"
fi

if [[ "${PROFILES:-0}" == 1 ]]; then
    stage "profiles at 1280x720"
    timeout 300 python3 scripts/gpu_profiles.py --out /tmp/gpu-runs --summary "$OUT/gpu-profiles.csv"
fi
if [[ "${LATENCY:-0}" == 1 && -d reports/benchmarks/compression-gpu ]]; then
    stage "dense vs pruned base-width latency"
    timeout 180 python3 scripts/compress_gpu_latency.py time \
        --structures reports/benchmarks/compression-gpu --out "$OUT"
fi

ls -la "$OUT"
stage "done"
