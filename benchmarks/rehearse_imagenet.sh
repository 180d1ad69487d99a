#!/bin/bash
# README's ImageNet steps, unchanged, on ILSVRC-format rehearsal tarballs (no download needed):
# fake tarballs -> prepare (TFDS's real imagenet2012 builder) -> each ImageNet config at full
# resolution: a few steps, a rerun that resumes and trains on, then every validation image
# evaluated -> the input pipeline's rate (train and eval preprocessing, total and per core).
#
#   bash benchmarks/rehearse_imagenet.sh [DIR] [VAL_IMAGES] [TRAIN_PER_CLASS] [BATCH]
#
# Defaults: DIR=/tmp/imagenet_rehearsal, 50 validation images, 8 per class, global batch 8.
# Exits non-zero at the first failing step. The per-core figures go to DIR/pipeline_*.json.
set -euo pipefail
dir=${1:-/tmp/imagenet_rehearsal}
val=${2:-50}
per_class=${3:-8}
batch=${4:-8}
cd "$(dirname "$0")/.."

python -m inception_jax.tools.fake_imagenet --manual_dir "$dir/downloads/manual" \
    --val "$val" --train_per_class "$per_class"
python -m inception_jax.tools.prepare --dataset imagenet2012 --data_dir "$dir"

for recipe in googlenet_imagenet inception_v3_imagenet; do
  common=(--config="configs/$recipe.py" --workdir="$dir/runs/$recipe" --config.data_dir="$dir"
          --config.global_batch_size="$batch" --config.eval_batch_size="$batch"
          --config.log_every_steps=1 --config.checkpoint_every_steps=2)
  python train.py "${common[@]}" --config.num_train_steps=2
  python train.py "${common[@]}" --config.num_train_steps=4 | tee "$dir/runs/$recipe.log"
  grep -q 'resuming from the checkpoint at step 2' "$dir/runs/$recipe.log"
  grep -q "($val examples)" "$dir/runs/$recipe.log"
  python -m inception_jax.tools.evaluate --config="configs/$recipe.py" --config.data_dir="$dir" \
      --config.eval_batch_size="$batch" --checkpoint="$dir/runs/$recipe"
  python -m inception_jax.tools.bench --pipeline-only --config="configs/$recipe.py" \
      --config.data_dir="$dir" --config.global_batch_size=64 --config.eval_batch_size=64 \
      --json "$dir/pipeline_$recipe.json"
done
echo "rehearsal passed: $dir"
