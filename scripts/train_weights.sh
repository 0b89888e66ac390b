#!/usr/bin/env bash
# Reproduce the shipped MSSNet-small weights (src/effprof/models/weights/mssnet-small-synthetic.pt).
#
# CPU (how the shipped file was made; see MODEL_CARD.md for the numbers):
#     scripts/train_weights.sh
# GPU (unattended, time-boxed: the learning rate decays over the budget and the run stops and saves):
#     DEVICE=cuda MAX_MINUTES=4 scripts/train_weights.sh
#
# Environment:
#   DEVICE=cpu|cuda       picks configs/train-mssnet-small-$DEVICE.yaml (default cpu)
#   MAX_MINUTES=N         time budget (default: none on cpu, 4 on cuda)
#   OUT=DIR               run store root (default reports/)
#   INSTALL=1             copy the trained fp16 weights over the shipped file afterwards
#   THREADS=N             torch threads on cpu (default 2; the config's value otherwise)
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
        $PYTHON -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target /tmp/effprof-site .whl/*.whl
        export PYTHONPATH="/tmp/effprof-site${PYTHONPATH:+:$PYTHONPATH}"
    fi
    export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
    EFFPROF=($PYTHON -m effprof)
fi

export PYTHONUNBUFFERED=1
log="$(mktemp)"
"${EFFPROF[@]}" train "${args[@]}" --progress lines "$@" | tee "$log"
run_dir="$(sed -n 's/^run: //p' "$log" | tail -n 1)"
rm -f "$log"
[[ -n "$run_dir" && -f "$run_dir/weights-fp16.pt" ]] || { echo "error: training wrote no weights" >&2; exit 1; }
echo "weights: $run_dir/weights-fp16.pt"
if [[ "${INSTALL:-0}" == 1 ]]; then
    cp "$run_dir/weights-fp16.pt" src/effprof/models/weights/mssnet-small-synthetic.pt
    echo "installed: src/effprof/models/weights/mssnet-small-synthetic.pt"
fi
