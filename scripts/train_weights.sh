#!/usr/bin/env bash
# Reproduce the shipped MSSNet-small weights (src/effprof/models/weights/mssnet-small-synthetic*.pt).
#
# CPU (how `synthetic-cpu` was made; see MODEL_CARD-cpu.md for the numbers): phase 1, 3000 fp32
# steps from scratch (configs/train-mssnet-small-cpu.yaml); phase 2 starts from phase 1's weights
# with a fresh optimizer, bf16 autocast, channels_last and a moving average of the weights for 103
# minutes (configs/train-mssnet-small-cpu-finetune.yaml); phase 3 adds rescaled crops for 60
# minutes (configs/train-mssnet-small-cpu-zoom.yaml); phase 4 trains on 8 crops of 128 px per step
# for 100 minutes (configs/train-mssnet-small-cpu-zoom-large.yaml), about 5.6 hours in all.
# Install the result with INSTALL_AS=synthetic-cpu:
#     scripts/train_weights.sh
# GPU (unattended, time-boxed: the learning rate decays over each budget and the run stops and
# saves), how `synthetic` was made (MODEL_CARD.md): phase 1 from the CPU-trained weights
# `synthetic-cpu` (configs/train-mssnet-small-cuda.yaml, MAX_MINUTES, default 4; the shipped run
# started from the CPU weights of before CPU phase 3), phase 2 with rescaled crops
# (configs/train-mssnet-small-cuda-finetune.yaml, MAX_MINUTES2, default 4); FROM=WEIGHTS skips
# phase 1 and starts phase 2 from WEIGHTS:
#     DEVICE=cuda MAX_MINUTES=6.5 MAX_MINUTES2=4.3 scripts/train_weights.sh
#
# Environment:
#   DEVICE=cpu|cuda       picks configs/train-mssnet-small-$DEVICE.yaml (default cpu)
#   MAX_MINUTES=N         time budget (default: none on cpu, 4 on cuda); MAX_MINUTES2 for cuda phase 2
#   FROM=WEIGHTS          cuda: skip phase 1, start phase 2 from these weights
#   PHASES="N1 N2 ..."    instead of the four cpu phases: total steps per phase, each resuming the
#                         previous one with a longer cosine (warm restart)
#   OUT=DIR               run store root (default reports/)
#   INSTALL=1             copy the trained fp16 weights over the shipped `synthetic` file afterwards
#   INSTALL_AS=NAME       ... over the shipped file of that name instead (synthetic-cpu)
#   THREADS=N             torch threads (default: the config's, 1 on cpu: a shared CPU slows 2 threads 10x)
# Extra arguments go to `effprof train` (e.g. --steps 200 for a quick try).
#
# On a machine without effprof installed (the lent GPU machines) the script runs it from src/;
# pydantic, if missing there, is installed from wheels in .whl/ (see the lead's notes).
set -euo pipefail
cd "$(dirname "$0")/.."

DEVICE="${DEVICE:-cpu}"
OUT="${OUT:-reports/}"
CONFIG="configs/train-mssnet-small-${DEVICE}.yaml"
[[ -f "$CONFIG" ]] || { echo "error: no $CONFIG (DEVICE must be cpu or cuda)" >&2; exit 2; }

args=(--config "$CONFIG" --device "$DEVICE" --out "$OUT")
if [[ "$DEVICE" == cuda ]]; then
    args+=(--max-minutes "${MAX_MINUTES:-4}")
elif [[ -n "${MAX_MINUTES:-}" ]]; then
    args+=(--max-minutes "$MAX_MINUTES")
fi
[[ -n "${THREADS:-}" ]] && args+=(--threads "$THREADS")

if command -v effprof >/dev/null 2>&1 && python -c "import effprof" 2>/dev/null; then
    EFFPROF=(effprof)
    PYTHON=python
else
    PYTHON=python3
    if ! $PYTHON -c "import pydantic" 2>/dev/null; then
        compgen -G ".whl/pydantic-*.whl" >/dev/null || {
            echo "error: pydantic is missing here; carry .whl/ with its cp312 wheels (see the lead's notes)" >&2
            exit 2
        }
        $PYTHON -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target /tmp/effprof-site .whl/*.whl
        export PYTHONPATH="/tmp/effprof-site${PYTHONPATH:+:$PYTHONPATH}"
    fi
    export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
    EFFPROF=($PYTHON -m effprof)
fi

export PYTHONUNBUFFERED=1

# One `effprof train` call; prints its run folder last.
train_phase() {
    local log run
    log="$(mktemp)"
    "${EFFPROF[@]}" train "${args[@]}" --progress lines "$@" | tee "$log" >&2
    run="$(sed -n 's/^run: //p' "$log" | tail -n 1)"
    rm -f "$log"
    [[ -n "$run" && -f "$run/weights-fp16.pt" ]] || { echo "error: training wrote no weights" >&2; exit 1; }
    echo "$run"
}

# The options of a later CPU phase: its config, plus the budget and threads given here.
cpu_args() {
    args=(--config "$1" --device cpu --out "$OUT")
    [[ -n "${MAX_MINUTES:-}" ]] && args+=(--max-minutes "$MAX_MINUTES")
    [[ -n "${THREADS:-}" ]] && args+=(--threads "$THREADS")
    return 0
}

# A GPU run is one time-boxed phase; PHASES gives resumed phases of one config instead.
run_dir=""
if [[ -n "${PHASES:-}" ]]; then
    for steps in $PHASES; do
        if [[ -z "$run_dir" ]]; then
            run_dir="$(train_phase --steps "$steps" "$@")"
        else
            run_dir="$(train_phase --steps "$steps" --resume "$run_dir/checkpoint.pt" "$@")"
        fi
    done
elif [[ "$DEVICE" == cuda ]]; then
    if [[ -n "${FROM:-}" ]]; then
        phase1_weights="$FROM"
    else
        phase1_weights="$(train_phase "$@")/checkpoint.pt"
    fi
    args=(--config configs/train-mssnet-small-cuda-finetune.yaml --device cuda --out "$OUT"
          --max-minutes "${MAX_MINUTES2:-4}")
    run_dir="$(train_phase --weights "$phase1_weights" "$@")"
else
    phase1="$(train_phase "$@")"
    cpu_args configs/train-mssnet-small-cpu-finetune.yaml
    phase2="$(train_phase --weights "$phase1/checkpoint.pt" "$@")"
    cpu_args configs/train-mssnet-small-cpu-zoom.yaml
    phase3="$(train_phase --weights "$phase2/checkpoint.pt" "$@")"
    cpu_args configs/train-mssnet-small-cpu-zoom-large.yaml
    run_dir="$(train_phase --weights "$phase3/checkpoint.pt" "$@")"
fi
echo "weights: $run_dir/weights-fp16.pt"
if [[ "${INSTALL:-0}" == 1 || -n "${INSTALL_AS:-}" ]]; then
    target="src/effprof/models/weights/mssnet-small-${INSTALL_AS:-synthetic}.pt"
    cp "$run_dir/weights-fp16.pt" "$target"
    echo "installed: $target"
fi
