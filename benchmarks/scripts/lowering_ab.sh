#!/bin/bash
# A network's CPU lowering against its two plain alternatives, alternated three rounds so the
# machine's drift falls on every variant alike: the backend's choice (lowering.for_backend),
# --plain conv (XLA's own convolutions: no FastConv, hence no Winograd) and --plain winograd
# (FastConv's 1x1 products, direct 3x3s). float32, 6 timed steps after 2 warm-up, tcmalloc.
#
#   bash benchmarks/scripts/lowering_ab.sh inception_v3 16 299 [OUT_DIR]
#   bash benchmarks/scripts/lowering_ab.sh googlenet_tv 32 224 [OUT_DIR]
#
# Writes OUT_DIR/lowering_<model>_<variant>_run<N>.json and .log (variant: package, plain_conv,
# plain_winograd); OUT_DIR defaults to benchmarks/results/cpu-latest-f32. RESULTS.md's figures
# are in benchmarks/results/<machine>-f32/.
set -e
model=${1:?model}; batch=${2:?batch}; size=${3:?size}
cd "$(dirname "$0")/../.."
out=${4:-benchmarks/results/cpu-latest-f32}
mkdir -p "$out"
for round in 1 2 3; do
  for variant in package conv winograd; do
    plain=(); name=package
    [ "$variant" != package ] && plain=(--plain "$variant") && name=plain_$variant
    file=$out/lowering_${model}_${name}_run${round}
    python -m inception_jax.tools.bench --model "$model" --batch "$batch" --size "$size" --steps 6 \
      --warmup 2 --allocator tcmalloc --pipeline none "${plain[@]}" \
      --json "$file.json" > "$file.log" 2>&1
    echo "$(date +%T) $name $round: $(grep -E 'train:|eval :' "$file.log" | tr -s ' ' | cut -c1-60 | tr '\n' '|')"
  done
done
