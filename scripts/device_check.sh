#!/usr/bin/env bash
# What no CPU can show, in one go on a GPU machine (issue #28): a few training steps of every
# detector under trainer=gpu with bf16, trainer=ddp on the GPUs present, and the predict, serve
# and cloak benchmarks with --device cuda. Each step is bounded with `timeout`; the whole run stays
# under 8 minutes on one GPU. Writes one summary file (default device_check/summary.txt): the card,
# then per step its status, seconds and last lines.
#
#   bash scripts/device_check.sh [--dry-run] [--out DIR]
#
# --dry-run: prints every step, runs only the CPU-safe checks (the scripts' --help, config
# composition) and writes the summary; for checking the script itself on a machine without a GPU.
set -u
cd "$(dirname "$0")/.."
OUT=device_check
DRY=0
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY=1 ;;
        --out) OUT="$2"; shift ;;
        *) echo "device_check: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
mkdir -p "$OUT"
SUMMARY="$OUT/summary.txt"
PY=${PYTHON:-python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4} HYDRA_FULL_ERROR=1
FAILED=0
DEADLINE=${DEADLINE:-470}  # seconds: no step starts that could end past it (under 8 minutes in all)

{
    echo "# dfdetect device check, $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null)"
    if command -v nvidia-smi >/dev/null; then
        echo "card: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | paste -sd ';')"
    else
        echo "card: none (nvidia-smi not found)"
    fi
    echo "mode: $([ $DRY = 1 ] && echo dry-run || echo full)"
} > "$SUMMARY"

# step NAME SECONDS COMMAND...: runs it bounded (dry run: prints it), records status and tail
step() {
    local name="$1" limit="$2"; shift 2
    local log="$OUT/$name.log"
    echo "+ [$name, at most ${limit}s] $*"
    if [ $DRY = 0 ] && [ $((SECONDS + limit)) -gt $DEADLINE ]; then
        echo "$name: skipped (would pass the ${DEADLINE}s deadline)" >> "$SUMMARY"; FAILED=$((FAILED + 1))
        return 0
    fi
    if [ $DRY = 1 ]; then
        echo "$name: not run (dry run): $*" >> "$SUMMARY"
        return 0
    fi
    local t0=$SECONDS
    timeout --kill-after=10 "$limit" "$@" > "$log" 2>&1
    local rc=$?
    local status=ok
    [ $rc = 124 ] || [ $rc = 137 ] && status="timed out"
    [ $rc != 0 ] && [ "$status" = ok ] && status="failed (exit $rc)"
    [ $rc != 0 ] && FAILED=$((FAILED + 1))
    { echo "$name: $status in $((SECONDS - t0)) s"; tail -n 4 "$log" | sed 's/^/    /'; } >> "$SUMMARY"
}

# CPU-safe: the entry points answer and the GPU configs compose (runs in --dry-run too)
check() {
    local name="$1"; shift
    echo "+ [check $name] $*"
    if "$@" > "$OUT/check_$name.log" 2>&1; then
        echo "check $name: ok" >> "$SUMMARY"
    else
        echo "check $name: FAILED (see $OUT/check_$name.log)" >> "$SUMMARY"; FAILED=$((FAILED + 1))
    fi
}
check bench-help $PY scripts/benchmark_predict.py --help
check gpu-config $PY -c "
from hydra import compose, initialize_config_module
with initialize_config_module('dfdetect.conf', version_base='1.3'):
    for t in ('gpu', 'ddp'):
        c = compose('train.yaml', overrides=[f'trainer={t}', 'trainer.precision=bf16-mixed', 'data=demo'])
        print(t, c.trainer.accelerator, c.trainer.precision)
"

# every detector config (dfdetect/conf/model/*.yaml), so a new model is checked without editing this
MODELS=$(for f in dfdetect/conf/model/[!_]*.yaml; do basename "$f" .yaml; done)
STEPS="trainer.max_epochs=1 trainer.limit_train_batches=3 trainer.limit_val_batches=1 trainer.limit_test_batches=1"
GPUS=$(command -v nvidia-smi >/dev/null && nvidia-smi -L | wc -l || echo 0)
# the benchmarks and DDP first: their figures are what #28 owes, and the deadline skips what comes last
step bench-predict 120 $PY scripts/benchmark_predict.py --device cuda --videos 4 --rounds 3
step bench-serve 90 $PY scripts/benchmark_serve.py --device cuda --seconds 4 --concurrency 1,8,16
step bench-cloak 45 $PY scripts/benchmark_cloak.py --device cuda --images 32 --rounds 3
# shellcheck disable=SC2086
step "train-ddp-${GPUS}gpu" 120 $PY train.py model=meso4 data=demo trainer=ddp trainer.devices=auto \
    trainer.precision=bf16-mixed $STEPS hydra.run.dir="$OUT/runs/ddp"
for model in $MODELS; do
    # shellcheck disable=SC2086
    step "train-gpu-bf16-$model" 45 $PY train.py model=$model data=demo trainer=gpu \
        trainer.precision=bf16-mixed $STEPS hydra.run.dir="$OUT/runs/$model"
done

echo "failed steps: $FAILED" >> "$SUMMARY"
echo "summary: $SUMMARY"
cat "$SUMMARY"
[ $FAILED = 0 ]
