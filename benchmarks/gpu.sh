#!/usr/bin/env bash
# The GPU figures of benchmarks/RESULTS.md in one go. First benchmarks/gpu_variants.py times the
# training step with each of this package's lowerings against the plain Flax/XLA code, and at twice
# the batch; then both models run in bfloat16 with the fastest lowerings, side by side with
# torchvision (bf16 autocast, NCHW and channels_last, cudnn.benchmark), with the training loop fed
# in-memory batches against the bare step. Writes the JSON of every run and a combined log to $OUT
# (default benchmarks/results/gpu-latest; RESULTS.md's H200 files are in
# benchmarks/results/gpu-h200-bf16). The tf.data pipeline is skipped (--pipeline none): the CPU
# figures measure it, and the GPU image may lack TensorFlow.
#
#   bash benchmarks/gpu.sh                     # on a machine with one GPU
#   SKIP_VARIANTS=1 bash benchmarks/gpu.sh     # the comparison with the current defaults only
#   STEPS=3 GN="--batch 8 --size 64" V3="--batch 2 --size 299" VARIANTS_ARGS=--small \
#     bash benchmarks/gpu.sh                   # smoke run
set -u
OUT=${OUT:-benchmarks/results/gpu-latest}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then  # packages missing on a bare GPU image (ml_collections)
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1
# torch shares the GPU with JAX in the same process: leave it half of the memory.
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.5}
# XLA's autotuning results (cuDNN algorithms, GEMM tilings) in a file cache shared by the runs
# below: the variants' first compile of each model pays it (that compile time is the fresh-machine
# figure); later processes load it. Dropped if this XLA does not know the flag.
AUTOTUNE="--xla_gpu_per_fusion_autotune_cache_dir=${AUTOTUNE_DIR:-/tmp/inception_jax_autotune}"
if XLA_FLAGS="${XLA_FLAGS:-} $AUTOTUNE" python3 -c 'import jax; jax.devices()' >/dev/null 2>&1; then
  export XLA_FLAGS="${XLA_FLAGS:-} $AUTOTUNE"
fi
echo "XLA_FLAGS=${XLA_FLAGS:-}"
STEPS=${STEPS:-20}
GN=${GN:---batch 256 --size 224}
V3=${V3:---batch 128 --size 299}
LOG=$OUT/log.txt
{ nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1
  python3 -c 'import sys, jax, flax, optax; print(sys.version.split()[0], "jax", jax.__version__, "flax", flax.__version__, "optax", optax.__version__, jax.devices())'
} 2>&1 | tee "$LOG"
bench() {  # name, arguments...
  local name=$1; shift
  echo "=== $name: $*" | tee -a "$LOG"
  timeout "${RUN_LIMIT:-240}" python3 -m inception_jax.tools.bench --half --pipeline none --steps "$STEPS" \
    --json "$OUT/$name.json" "$@" 2>&1 | tee -a "$LOG"
}
if [ -z "${SKIP_VARIANTS:-}" ]; then
  echo "=== variants" | tee -a "$LOG"
  timeout "${VARIANTS_LIMIT:-280}" python3 benchmarks/gpu_variants.py "$OUT" --steps "$STEPS" \
    --budget "${VARIANTS_BUDGET:-230}" ${VARIANTS_ARGS:-} 2>&1 | tee -a "$LOG"
fi
plain_flags() {  # the fastest variant's --plain flags for model $1 (none without a variants run)
  grep "^best_plain $1=" "$LOG" | tail -n 1 | cut -d= -f2 | tr ',' '\n' | sed -n 's/^\(.\+\)$/--plain \1/p'
}
bench googlenet_tv_bf16 --model googlenet_tv $GN --compare torchvision --loop $(plain_flags googlenet_tv)
bench inception_v3_bf16 --model inception_v3 $V3 --compare torchvision --loop $(plain_flags inception_v3)
