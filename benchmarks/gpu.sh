#!/usr/bin/env bash
# The GPU figures of benchmarks/RESULTS.md in one go: both models in bfloat16, side by side with
# torchvision (bf16 autocast, NCHW and channels_last, cudnn.benchmark), and the training loop fed
# in-memory batches against the bare step. Writes one JSON per run and a combined log to $OUT
# (default benchmarks/results/gpu/latest). The tf.data pipeline is skipped (--pipeline none): the CPU
# figures measure it, and the GPU image may lack TensorFlow.
#
#   bash benchmarks/gpu.sh                     # on a machine with one GPU
#   STEPS=3 GN="--batch 8 --size 64" V3="--batch 2 --size 299" bash benchmarks/gpu.sh  # smoke run
set -u
OUT=${OUT:-benchmarks/results/gpu/latest}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then  # packages missing on a bare GPU image (ml_collections)
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1
# torch shares the GPU with JAX in the same process: leave it half of the memory.
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.5}
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
  timeout "${RUN_LIMIT:-240}" python3 -m inception_jax.bench --half --pipeline none --steps "$STEPS" \
    --json "$OUT/$name.json" "$@" 2>&1 | tee -a "$LOG"
}
bench googlenet_tv_bf16 --model googlenet_tv $GN --compare torchvision --loop
bench inception_v3_bf16 --model inception_v3 $V3 --compare torchvision --loop
