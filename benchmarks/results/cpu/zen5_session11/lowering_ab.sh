#!/bin/bash
# A network's CPU lowering on the Zen 5 EPYC: the package's choice against --plain conv (no
# FastConv, hence no Winograd) and --plain winograd (FastConv's 1x1 products, direct 3x3s),
# alternated three rounds so the VM's drift falls on every variant alike. Session 11:
#   lowering_ab.sh inception_v3 16 299
#   lowering_ab.sh googlenet_tv 32 224
# (Inception v3's rounds ran while its choice was still FastConv + Winograd, commit 7721f7f.)
set -e
model=${1:?model}; batch=${2:?batch}; size=${3:?size}
cd "$(dirname "$0")/../../../.."
out=benchmarks/results/cpu/zen5_session11
for round in 1 2 3; do
  for variant in package conv winograd; do
    plain=(); [ "$variant" != package ] && plain=(--plain "$variant")
    python -m inception_jax.bench --model "$model" --batch "$batch" --size "$size" --steps 6 \
      --warmup 2 --allocator tcmalloc --pipeline none "${plain[@]}" \
      --json "$out/${model}_${variant}_${round}.json" > "$out/${model}_${variant}_${round}.log" 2>&1
    echo "$(date +%T) $variant $round: $(grep -E 'train:|eval :' "$out/${model}_${variant}_${round}.log" | tr -s ' ' | cut -c1-60 | tr '\n' '|')"
  done
done
