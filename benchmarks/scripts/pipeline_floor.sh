#!/bin/bash
# Both ImageNet recipes' input pipelines against their decode-only floor (bench --pipeline-only),
# on real photographs made by make_photo_jpegs.py, with uint8 batches (the default) and with
# float32 ones, RUNS runs of each:
#
#   python benchmarks/scripts/make_photo_jpegs.py /tmp/photos
#   bash benchmarks/scripts/pipeline_floor.sh /tmp/photos OUT_DIR [RUNS] [ACCELERATOR_RATES]
#
# Writes OUT_DIR/pipeline_<recipe>_<uint8|float32>_run<N>.json. ACCELERATOR_RATES (default
# "7728 3619", the H200 bf16 training rates of GoogLeNet and Inception v3) give the host cores
# per accelerator.
set -e
cd "$(dirname "$0")/../.."
photos=${1:?photo folder from make_photo_jpegs.py}
out=${2:?output folder}
runs=${3:-2}
rates=(${4:-7728 3619})
mkdir -p "$out"
for run in $(seq 1 "$runs"); do
  i=0
  for recipe in googlenet_imagenet inception_v3_imagenet; do
    for pixels in uint8 float32; do
      u8=True; [ $pixels = float32 ] && u8=False
      python -m inception_jax.tools.bench --pipeline-only --config=configs/$recipe.py \
        --config.dataset=folder:"$photos" --config.data_dir="$photos"_data \
        --config.global_batch_size=64 --config.eval_batch_size=50 --config.uint8_images=$u8 \
        --batches 16 --warmup 2 --rounds 3 --accelerator-rate "${rates[$i]}" \
        --json "$out/pipeline_${recipe}_${pixels}_run${run}.json" 2>&1 | grep -v "^wrote"
    done
    i=$((i + 1))
  done
done
