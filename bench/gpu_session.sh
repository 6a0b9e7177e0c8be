#!/usr/bin/env bash
# One lent-GPU session, ready to start: benchmarks on every model, the batch runner and interactive
# latency on CUDA, then terrain64 training for the minutes left. See docs/PERFORMANCE.md ("GPU
# session") for how to start it with the device tool.
#
#   bash bench/gpu_session.sh            # on the GPU machine: ≤ ~9.5 minutes in all (GPU_SESSION_SECONDS)
#   bash bench/gpu_session.sh --smoke    # the same steps on CPU in tiny sizes (tests/test_bench.py)
#
# Every step has its own time budget (timeout) and the script goes on past a failing step, logging
# it. Results go to $OUT (the folder the device tool brings back: at most 8 files, 16 MiB each), so
# scratch work happens in $WORK and only a few files are copied to $OUT at the end:
#   session.log       every step's command, budget, exit status and seconds, and the tail of its output
#   summary.md        the benchmark tables (Markdown) of every bench step
#   results.tar.gz    raw bench JSON/Markdown, every step's full log, the training log
#   ema.safetensors, samples.png, materials.json   the training run's model, last sample sheet, quality
# Nothing is downloaded: the machine reaches no registry. Missing Python packages named in
# requirements.txt are installed only from wheels carried in .whl/ (see docs/PERFORMANCE.md).
set -u
SMOKE=0
[ "${1:-}" = "--smoke" ] && SMOKE=1
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
PY=${PYTHON:-python3}
[ -x "$ROOT/.venv/bin/python" ] && [ -z "${PYTHON:-}" ] && PY="$ROOT/.venv/bin/python"
OUT=${OUT:-$(mktemp -d /tmp/gpu_session_out.XXXX)}
WORK=${WORK:-$(mktemp -d /tmp/gpu_session_work.XXXX)}
mkdir -p "$OUT" "$WORK/bench"
TOTAL=${GPU_SESSION_SECONDS:-560}
T0=$(date +%s)
export PYTHONUNBUFFERED=1 PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

elapsed() { echo $(( $(date +%s) - T0 )); }
left() { echo $(( TOTAL - $(elapsed) )); }
log() { echo "[$(date -u +%H:%M:%S) +$(elapsed)s] $*" | tee -a "$OUT/session.log"; }

# step NAME BUDGET_SECONDS COMMAND...: run with a timeout (never past the session's end), log it.
step() {
    local name=$1 budget=$2
    shift 2
    local cap=$(( $(left) - 15 ))
    [ "$budget" -gt "$cap" ] && budget=$cap
    if [ "$budget" -lt 5 ]; then
        log "step $name: SKIPPED (no time left)"
        return 0
    fi
    log "step $name: start (budget ${budget}s): $*"
    local t=$(date +%s)
    timeout --kill-after=10 "$budget" "$@" > "$WORK/$name.log" 2>&1
    local rc=$?
    local status=ok
    [ $rc -eq 124 ] && status="TIMED OUT"
    [ $rc -ne 0 ] && [ $rc -ne 124 ] && status="FAILED"
    log "step $name: $status (rc $rc, $(( $(date +%s) - t ))s)"
    [ $rc -ne 0 ] && tail -n 15 "$WORK/$name.log" | sed 's/^/    | /' | tee -a "$OUT/session.log"
    return 0
}

if [ $SMOKE = 1 ]; then
    DEV=cpu
    SMALL=(--models tiny --batch-size 2 --repeats 1 --latency-n 1 --threads 1 --batch-count 4
           --options channels_last --hooks parts)
    BIG=(--models tiny --batch-size 1 --large-batch-size 1,2 --repeats 1 --latency-n 1 --threads 1
         --batch-count 0 --options channels_last --hooks "")
    LAT=(--models tiny --batch-size 1 --repeats 1 --latency-n 3 --threads 1 --batch-count 0 --options "" --hooks "")
else
    DEV=cuda
    SMALL=(--models tiny,terrain64,faces64 --batch-size 64 --repeats 5 --latency-n 20 --batch-count 1024
           --options channels_last,compile,float16,bfloat16,cuda_graphs --hooks parts,projection)
    BIG=(--models biggan-deep-128,biggan-deep-256 --large-batch-size 1,16,64 --repeats 3 --latency-n 20
         --batch-count 0 --options channels_last,float16,bfloat16,cuda_graphs,compile --hooks "")
    LAT=(--models biggan-deep-256 --large-batch-size 1 --repeats 3 --latency-n 50 --batch-count 0
         --options "" --hooks "" --dtype float16)
fi

log "gpu_session: smoke=$SMOKE device=$DEV total budget ${TOTAL}s; work $WORK; out $OUT"

# 1. What is there; install only requirements.txt's packages, and only from carried wheels.
step environment 30 bash -c "nvidia-smi 2>/dev/null | head -15; $PY -c 'import sys, torch; print(sys.version); \
print(\"torch\", torch.__version__, \"cuda\", torch.version.cuda, \"available\", torch.cuda.is_available()); \
print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else \"no CUDA device\")'"
step install 60 "$PY" bench/requirements_check.py --wheels .whl --target "$WORK/site" \
    --optional streamlit,streamlit-drawable-canvas      # only the app needs these
[ -d "$WORK/site" ] && export PYTHONPATH="$PYTHONPATH:$WORK/site"

# 2. Benchmarks: 64-px models (ratios, options, batch runner end to end, parts/projection hooks),
#    then BigGAN-deep-128/256 (random weights of the real shapes) at batch 1, 16 and 64.
step bench_small 150 "$PY" -m bench --device $DEV "${SMALL[@]}" --out "$WORK/bench" --tag small
step bench_biggan 200 "$PY" -m bench --device $DEV "${BIG[@]}" --out "$WORK/bench" --tag biggan
# 3. Interactive latency of a 256-px label swap and blend (goal ≤ 150 ms), in half precision too
#    (float32 latency is in the bench_biggan rows at batch 1).
step latency_256 60 "$PY" -m bench --device $DEV "${LAT[@]}" --out "$WORK/bench" --tag latency

# 4. terrain64: continue training for the minutes left, then the sample sheet and the materials
#    benchmark. Data: TRAIN_DATA (default _data/materials, carried with the repository).
RUN="$WORK/run"
if [ $SMOKE = 1 ]; then
    DATA="$WORK/smoke-data"
    "$PY" - "$DATA" <<'EOF'
import sys
from pathlib import Path
import numpy as np
from PIL import Image
rng = np.random.default_rng(0)
for c, colour in (("red", (200, 40, 40)), ("blue", (40, 40, 200))):
    d = Path(sys.argv[1]) / c
    d.mkdir(parents=True, exist_ok=True)
    for i in range(4):
        img = np.clip(np.array(colour) + rng.normal(0, 30, (40, 40, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(d / f"{i}.png")
EOF
    TRAIN=(--smoke --device cpu --threads 1)
else
    DATA=${TRAIN_DATA:-_data/materials}
    # The shipped run's settings (docs/MATERIALS.md); a run folder or portable checkpoint continues.
    TRAIN=(--ch 16 --d-ch 16 --z-dim 64 --batch 32 --lr-g 2e-4 --lr-d 4e-4 --ema 0.999 --steps 1000000
           --device cuda)
    HELP=$("$PY" -m toolkit.train --help 2>/dev/null)
    if [ -n "${TRAIN_RESUME:-}" ] && grep -q -- "--resume-from" <<<"$HELP"; then
        TRAIN+=(--resume-from "$TRAIN_RESUME")
    elif grep -q -- "--init-from" <<<"$HELP"; then
        TRAIN+=(--init-from toolkit/weights/terrain64.safetensors)
    fi
fi
if [ -d "$DATA" ]; then
    TRAIN_SECONDS=$(( $(left) - (SMOKE ? 40 : 120) ))
    step train $(( TRAIN_SECONDS + 30 )) "$PY" -m toolkit.train --data "$DATA" --out "$RUN" "${TRAIN[@]}" \
        --time-limit "$TRAIN_SECONDS"
    if [ -f "$DATA/manifest.csv" ] && [ -f "$RUN/ema.safetensors" ]; then
        step materials 100 "$PY" bench/materials_quality.py --data "$DATA" --model "$RUN/ema.safetensors" \
            --out "$WORK/materials" --threads 8
    else
        log "step materials: SKIPPED (needs $DATA/manifest.csv, a materials build, and a trained $RUN/ema.safetensors)"
    fi
else
    log "step train: SKIPPED (no training data at $DATA: carry _data/materials, see docs/PERFORMANCE.md)"
fi

# 5. Collect: a few files into $OUT (the device tool returns at most 8).
cat "$WORK"/bench/*.md > "$OUT/summary.md" 2>/dev/null || log "no benchmark tables were written"
cp "$RUN/ema.safetensors" "$OUT/ema.safetensors" 2>/dev/null
last_sheet=$(ls "$RUN"/samples/*.png 2>/dev/null | tail -n 1)
[ -n "$last_sheet" ] && cp "$last_sheet" "$OUT/samples.png"
cp "$WORK/materials/quality.json" "$OUT/materials.json" 2>/dev/null
tar -czf "$OUT/results.tar.gz" -C "$WORK" bench $(cd "$WORK" && ls *.log) \
    $( [ -f "$RUN/log.csv" ] && echo run/log.csv ) 2>/dev/null
log "gpu_session: done in $(elapsed)s; files in $OUT: $(cd "$OUT" && ls | tr '\n' ' ')"
