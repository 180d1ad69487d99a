#!/bin/bash
# The input pipeline alone (bench --pipeline-only), both ImageNet recipes, on the rehearsal set
# (500 validation images = 8 eval batches of 64; made with python -m
# inception_jax.tools.fake_imagenet and python -m inception_jax.tools.prepare, as
# benchmarks/rehearse_imagenet.sh does):
# 16 batches on all cores and on one core (taskset -c 0), then 64 batches with float32 and with
# bfloat16 host images (--config.half_precision).
#
#   bash benchmarks/scripts/pipeline_rates.sh [DATA_DIR] [OUT_PREFIX] [RUN]
#
# DATA_DIR defaults to /tmp/fi_big. float32 files go to OUT_PREFIX-f32/, bfloat16 ones to
# OUT_PREFIX-bf16/ (default OUT_PREFIX benchmarks/results/cpu-latest); RUN (default 1) numbers
# the 64-batch files, pipeline_<recipe>_2cores_64batches_run<RUN>.json.
set -e
cd "$(dirname "$0")/../.."
data=${1:-/tmp/fi_big}
prefix=${2:-benchmarks/results/cpu-latest}
run=${3:-1}
mkdir -p "$prefix-f32" "$prefix-bf16"
for recipe in googlenet_imagenet inception_v3_imagenet; do
  for cores in all one; do
    pre=""; name=2cores; [ $cores = one ] && pre="taskset -c 0" && name=1core
    $pre python -m inception_jax.tools.bench --pipeline-only --config=configs/$recipe.py \
      --config.data_dir=$data --config.global_batch_size=64 --config.eval_batch_size=64 \
      --batches 16 --warmup 3 --json "$prefix-f32/pipeline_${recipe}_${name}_16batches.json" \
      2>&1 | grep -v "^wrote"
  done
  for hp in False True; do
    dir=$prefix-f32; [ $hp = True ] && dir=$prefix-bf16
    python -m inception_jax.tools.bench --pipeline-only --config=configs/$recipe.py \
      --config.data_dir=$data --config.global_batch_size=64 --config.eval_batch_size=64 \
      --config.half_precision=$hp --batches 64 --warmup 3 \
      --json "$dir/pipeline_${recipe}_2cores_64batches_run${run}.json" 2>&1 | grep -v "^wrote"
  done
done
