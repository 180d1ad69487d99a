#!/bin/bash
# The input pipeline alone on the rehearsal set (500 validation images = 8 eval batches of 64),
# re-measured after bench --pipeline-only stopped timing pass restarts and counting padded
# examples (session 11). Same commands as session 9's, data in /tmp/fi_big
# (python -m inception_jax.data.fake_imagenet, as benchmarks/rehearse_imagenet.sh makes it).
set -e
cd "$(dirname "$0")/../../../.."
out=benchmarks/results/cpu/zen5_session11
data=${1:-/tmp/fi_big}
for recipe in googlenet_imagenet inception_v3_imagenet; do
  for cores in all one; do
    pre=""; [ $cores = one ] && pre="taskset -c 0"
    $pre python -m inception_jax.bench --pipeline-only --config=configs/$recipe.py \
      --config.data_dir=$data --config.global_batch_size=64 --config.eval_batch_size=64 \
      --batches 16 --warmup 3 --json $out/pipeline_${recipe}_${cores}.json 2>&1 | grep -v "^wrote"
  done
  for hp in False True; do
    python -m inception_jax.bench --pipeline-only --config=configs/$recipe.py \
      --config.data_dir=$data --config.global_batch_size=64 --config.eval_batch_size=64 \
      --config.half_precision=$hp --batches 64 --warmup 3 \
      --json $out/pipeline_${recipe}_long_hp${hp}.json 2>&1 | grep -v "^wrote"
  done
done
