#!/bin/bash
# bfloat16 host images (what the H200 runs use), 128 timed batches of 64 (8,192 images), three
# rounds alternating the recipes: the per-core training rate behind "host cores per H200".
#
#   bash benchmarks/scripts/pipeline_bf16_repeats.sh [DATA_DIR] [OUT_DIR]
#
# DATA_DIR defaults to /tmp/fi_big; OUT_DIR to benchmarks/results/cpu-latest-bf16. Writes
# OUT_DIR/pipeline_<recipe>_2cores_128batches_run<N>.json.
set -e
cd "$(dirname "$0")/../.."
data=${1:-/tmp/fi_big}
out=${2:-benchmarks/results/cpu-latest-bf16}
mkdir -p "$out"
for round in 1 2 3; do
  for recipe in googlenet_imagenet inception_v3_imagenet; do
    python -m inception_jax.tools.bench --pipeline-only --config=configs/$recipe.py \
      --config.data_dir=$data --config.global_batch_size=64 --config.eval_batch_size=64 \
      --config.half_precision=True --batches 128 --warmup 3 \
      --json "$out/pipeline_${recipe}_2cores_128batches_run${round}.json" 2>&1 \
      | grep -E "train|eval" | sed "s/^/$recipe $round /"
  done
done
