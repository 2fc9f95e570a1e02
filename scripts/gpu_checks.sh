#!/usr/bin/env bash
# Every GPU check in one go, for a GPU lent for a few minutes (324 s on one H200, measured):
#   1. benchmarks/gpu_check.py: the full model (ResNet-50 @448 + BERT-base) at bf16, one GPU and
#      DDP with one process: pairs/s and peak memory;
#   2. the training CLI on CUDA: fp16 with the gradient scaler under torchrun (NCCL), stopped
#      and resumed from its checkpoint;
#   3. the demo recipe (the `demo` preset, the standard 5,000-phantom train set, 1,500 steps) on
#      the GPU, so its checkpoint can be exported and measured like the CPU-trained one;
#   4. lesionloc-run asked for CUDA with whatever ONNX Runtime is installed (a CPU-only build
#      must warn and fall back);
#   5. (only when STAGES names it) latency-2core: the runtime issue's CPU latency benchmark
#      (int8 vs PyTorch fp32 on the reference study) pinned to two physical cores of this
#      machine's processor, whose int8 instructions (VNNI, AMX; listed in env.txt) the 2-core
#      development machine lacks. The full-size bundles are exported first on all cores.
# Each stage has a time limit and a failing stage does not stop the next. Results go to OUT:
# stages.txt (rc and seconds per stage), gpu.log, env.txt, gpu_check.json, demo-metrics.jsonl,
# demo-gpu.tar (the last demo checkpoint without optimizer state, with the run's config).
#
#   scripts/gpu_checks.sh OUT                                   # on a CUDA machine
#   DEVICE=cpu N=60 STEPS=4 TINY=1 scripts/gpu_checks.sh OUT   # the same stages on CPU, tiny
#   STAGES=demo DEMO_SET="model.image.image_size=512" scripts/gpu_checks.sh OUT  # a variant only
#   STAGES="latency-2core run-cuda" scripts/gpu_checks.sh OUT  # the runtime checks only
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: scripts/gpu_checks.sh OUT_DIR}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=${WORK:-/tmp/lesionloc-gpu}
DEVICE=${DEVICE:-cuda}
N=${N:-5000}
STEPS=${STEPS:-1500}
WORKERS=${WORKERS:-$(( $(nproc) > 12 ? 12 : $(nproc) ))}
STAGES=" ${STAGES:-gpu_check scaled demo run-cuda} "  # which checks (synth and cache: for scaled, demo)
DEMO_SET=${DEMO_SET:-}  # space-separated KEY=VALUE overrides for the demo run and its cache
BUDGET=${BUDGET:-540}  # seconds for the whole script; the demo run gets what is left of it
export TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
CLI="$PY -m lesionloc_train.cli"
LOG=$OUT/gpu.log
rm -rf "$WORK" && mkdir -p "$WORK"

stage() {  # stage NAME SECONDS CMD...: run with a limit, log, record rc and time
  local name=$1 limit=$2 start=$SECONDS rc
  shift 2
  printf '\n== %s %s (limit %s s): %s\n' "$(date +%H:%M:%S)" "$name" "$limit" "$*" >> "$LOG"
  timeout "$limit" "$@" >> "$LOG" 2>&1
  rc=$?
  echo "$name rc=$rc $((SECONDS - start)) s" | tee -a "$OUT/stages.txt"
  return $rc
}

{
  date -u; uname -a; nproc; free -g | head -2
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
  grep -m1 "model name" /proc/cpuinfo
  echo "int8/vector flags: $(grep -o -w -E 'avx2|avx512f|avx512_vnni|avx_vnni|amx_int8|amx_bf16' /proc/cpuinfo | sort -u | paste -sd' ')"
  $PY -c "import torch, transformers, onnxruntime as ort; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available() and torch.cuda.get_device_name(0)); print('transformers', transformers.__version__); print('onnxruntime', ort.__version__, ort.get_available_providers())" 2>&1
} > "$OUT/env.txt"

want() { [[ "$STAGES" == *" $1 "* ]]; }

# The train set renders on the CPUs while the GPU measures the full model.
SYNTH=
if want scaled || want demo; then
  $CLI synth --out "$WORK/train" --n "$N" --size 512 --seed 0 --no-png --workers "$WORKERS" \
    > "$WORK/synth.log" 2>&1 &
  SYNTH=$!
  SYNTH_START=$SECONDS
fi
sets=()
for kv in $DEMO_SET; do sets+=(--set "$kv"); done

if ! want gpu_check; then
  :
elif [ -n "${TINY:-}" ]; then
  stage gpu_check 600 $PY -m benchmarks.gpu_check --tiny --device "$DEVICE" --out "$OUT/gpu_check.json"
else
  stage gpu_check 150 $PY -m benchmarks.gpu_check --device "$DEVICE" --out "$OUT/gpu_check.json"
fi

if [ -n "$SYNTH" ]; then
  wait $SYNTH
  echo "synth rc=$? $((SECONDS - SYNTH_START)) s (from the start of gpu_check)" | tee -a "$OUT/stages.txt"
  cat "$WORK/synth.log" >> "$LOG"
  stage cache 120 $CLI cache --manifest "$WORK/train/manifest.jsonl" --out "$WORK/cache" \
    --preset demo --workers "$WORKERS" "${sets[@]}"
fi

# Two physical cores (one logical CPU of each of the first two cores), the issue's "2 cores".
if want latency-2core; then
  CORES=$(lscpu -p=CPU,CORE | grep -v '^#' | sort -t, -k2,2n -u | head -2 | cut -d, -f1 | paste -sd,)
  echo "latency-2core: CPUs $CORES" >> "$OUT/env.txt"
  stage latency-prepare 300 $PY -c "from benchmarks.conftest import full_latency_model; full_latency_model()"
  stage latency-2core 300 taskset -c "$CORES" $PY -m pytest benchmarks/bench_latency.py --benchmark-only \
    --full -p no:cacheprovider -k "end_to_end or paired or cold_start" --benchmark-json "$OUT/latency-2core.json"
fi

# fp16 (gradient scaler) through torchrun, SMOKE steps, then resumed to twice as many.
SCALED=fp16
[ "$DEVICE" = cpu ] && SCALED=fp32  # fp16 training needs CUDA (and bf16 is slow on most CPUs)
SMOKE=${SMOKE:-20}
TORCHRUN=($PY -m torch.distributed.run --standalone --nproc_per_node 1 -m lesionloc_train.cli)
common=(--preset demo --manifest "$WORK/train/manifest.jsonl" --cache "$WORK/cache"
        --device "$DEVICE" --no-progress --set "optim.precision=\"$SCALED\""
        --set "data.workers=$(( WORKERS < 4 ? WORKERS : 4 ))" --set "checkpoint_every=$SMOKE" --set validate_every_epoch=false)
want scaled && stage "$SCALED-torchrun" 90 "${TORCHRUN[@]}" pretrain "${common[@]}" --out "$WORK/scaled" --max-steps "$SMOKE"
want scaled && stage "$SCALED-resume" 90 "${TORCHRUN[@]}" pretrain "${common[@]}" --out "$WORK/scaled" --max-steps $((2 * SMOKE)) \
  --resume latest
want scaled && ls "$WORK/scaled/checkpoints" >> "$LOG" 2>&1

# The demo recipe, on the GPU. Same preset and data; more loader workers than the CPU recipe's 0.
# It keeps its checkpoints every 250 steps, so a run cut short still comes back.
DEMO_LIMIT=$(( BUDGET - SECONDS - 45 ))
[ "$DEMO_LIMIT" -lt 30 ] && DEMO_LIMIT=30
want demo && stage demo "$DEMO_LIMIT" $CLI pretrain --preset demo --manifest "$WORK/train/manifest.jsonl" \
  --cache "$WORK/cache" --out "$WORK/demo" --max-steps "$STEPS" --device "$DEVICE" --no-progress \
  --set "data.workers=$WORKERS" "${sets[@]}"
cp "$WORK/demo/metrics.jsonl" "$OUT/demo-metrics.jsonl" 2>/dev/null
last=$(ls -d "$WORK"/demo/checkpoints/step_* 2>/dev/null | tail -1)
if [ -n "$last" ]; then
  tar -cf "$OUT/demo-gpu.tar" -C "$WORK/demo" --exclude training_state.safetensors \
    config.json tokenizer.json metrics.jsonl "checkpoints/$(basename "$last")"
fi

# The runtime asked for CUDA: active with onnxruntime-gpu, else a warning and the CPU.
want run-cuda && stage run-cuda 30 $PY -m lesionloc_runtime.cli lesionloc_runtime/demo/examples/example1.dcm \
  --report lesionloc_runtime/demo/examples/example1.txt --out "$WORK/run" --providers cuda
exit 0
