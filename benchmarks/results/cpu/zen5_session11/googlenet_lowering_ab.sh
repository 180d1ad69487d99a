#!/bin/bash
# GoogLeNet (torchvision layout) on the Zen 5 EPYC: the package's CPU lowering against --plain conv (no FastConv,
# hence no Winograd) and --plain winograd (FastConv's 1x1 products, direct 3x3s), alternated
# three rounds so the VM's drift falls on every variant alike. Session 11.
set -e
cd "$(dirname "$0")/../../../.."
out=benchmarks/results/cpu/zen5_session11
for round in 1 2 3; do
  for variant in package conv winograd; do
    plain=(); [ "$variant" != package ] && plain=(--plain "$variant")
    python -m inception_jax.bench --model googlenet_tv --batch 32 --size 224 --steps 6 --warmup 2 \
      --allocator tcmalloc --pipeline none "${plain[@]}" \
      --json "$out/googlenet_tv_${variant}_${round}.json" > "$out/googlenet_tv_${variant}_${round}.log" 2>&1
    echo "$(date +%T) $variant $round: $(grep -E 'train:|eval :' "$out/googlenet_tv_${variant}_${round}.log" | tr -s ' ' | cut -c1-60 | tr '\n' '|')"
  done
done
