#!/bin/bash
# bfloat16 host images (what the H200 runs use), 128 timed batches of 64 (8,192 images), three
# rounds alternating the recipes: the per-core training rate behind "host cores per H200".
set -e
cd "$(dirname "$0")/../../../.."
out=benchmarks/results/cpu/zen5_session11
data=${1:-/tmp/fi_big}
for round in 1 2 3; do
  for recipe in googlenet_imagenet inception_v3_imagenet; do
    python -m inception_jax.bench --pipeline-only --config=configs/$recipe.py \
      --config.data_dir=$data --config.global_batch_size=64 --config.eval_batch_size=64 \
      --config.half_precision=True --batches 128 --warmup 3 \
      --json $out/pipeline_${recipe}_bf16_128_${round}.json 2>&1 | grep -E "train|eval" | sed "s/^/$recipe $round /"
  done
done
