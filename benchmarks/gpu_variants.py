"""Which lowerings and batch sizes train fastest on this accelerator, in one process.

For each model at its benchmark batch: the training step with this package's lowerings, and with
the plain Flax/XLA code for batch norm and for max pooling's gradient (``bench --plain``); then
the default at twice the batch (does utilisation grow with the batch?). One process, so
XLA's autotuning of the convolutions, identical across variants, is paid once per model. Also
times the host-to-device copy of one batch in float32 and in bfloat16 (the loop's per-step copy).

Writes ``$OUT/variants.json`` and prints one line per variant plus ``best_plain=<flags>`` per
model: the ``--plain`` choices of the fastest variant, if more than 2 % faster than the default
(benchmarks/gpu.sh reads them).

  python3 benchmarks/gpu_variants.py OUT_DIR [--steps 20] [--budget 240] [--small]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from inception_jax.tools.bench import arguments, lowerings, steps, workload

MODELS = {'googlenet_tv': (256, 224), 'inception_v3': (128, 299)}
VARIANTS = ([], ['norm'], ['pool'])


def time_transfer(batch: int, size: int, repeats: int = 10) -> dict[str, float]:
  """Milliseconds to put one image batch on the device, float32 and bfloat16 (median)."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  out = {}
  for half in (False, True):
    image = workload.random_batch(batch, size, 10, half=half)['image']
    times = []
    for _ in range(repeats):
      t = time.perf_counter()
      jax.block_until_ready(jax.device_put(image))
      times.append(time.perf_counter() - t)
    out['bfloat16_ms' if half else 'float32_ms'] = 1e3 * float(np.median(times))
    out['bfloat16_mb' if half else 'float32_mb'] = image.nbytes / 1e6
  return out


def main(argv: list[str]) -> int:
  p = argparse.ArgumentParser()
  p.add_argument('out')
  p.add_argument('--steps', type=int, default=20)
  p.add_argument('--budget', type=float, default=240.0, help='seconds; later variants skipped')
  p.add_argument('--small', action='store_true', help='smoke run at a tiny size')
  a = p.parse_args(argv)
  os.makedirs(a.out, exist_ok=True)
  start = time.perf_counter()
  results = {}
  for model_name, (batch, size) in MODELS.items():
    if a.small:
      batch, size = 4, (75 if model_name == 'inception_v3' else 64)
    runs = [(plain, batch) for plain in VARIANTS] + [([], 2 * batch)]
    entry = {'transfer': time_transfer(batch, size)}
    print(f'{model_name} b{batch}: put one batch on the device: {entry["transfer"]}', flush=True)
    for plain, b in runs:
      if time.perf_counter() - start > a.budget:
        print(f'  skipped {plain} b{b}: over the {a.budget:.0f} s budget', flush=True)
        continue
      extra = ['--set', 'width_multiplier=0.25'] if a.small else []
      if a.small and model_name == 'inception_v3':
        extra += ['--set', 'aux_adaptive=True']
      args = arguments.parse_args(['--model', model_name, '--batch', str(b), '--size', str(size),
                                   '--steps', str(a.steps), '--half', '--no-eval',
                                   '--pipeline', 'none']
                                  + sum([['--plain', x] for x in plain], []) + extra)
      t = time.perf_counter()
      model = workload.build_model(args)  # with the --plain parts plain
      ours = steps.bench_ours(args, model, workload.default_aux_weight(), 0.0)
      del ours['_state']
      train = ours['train']
      name = f'b{b}' + ''.join(f'_plain_{x}' for x in plain)
      entry[name] = {'plain': plain, 'batch': b,
                     'lowerings': lowerings.lowering_names(model.lowering),
                     'images_per_second': train['images_per_second'],
                     'compile_seconds': train['compile_seconds'],
                     'flops_per_second': train['flops_per_second'],
                     'wall_seconds': time.perf_counter() - t}
      print(f'  {name:28s} {train["images_per_second"]["median"]:9.1f} img/s (min '
            f'{train["images_per_second"]["min"]:.1f}, max {train["images_per_second"]["max"]:.1f})'
            f'  {train["flops_per_second"] / 1e12:6.1f} TFLOP/s  compile '
            f'{train["compile_seconds"]:.1f} s', flush=True)
    same_batch = {k: v for k, v in entry.items() if k != 'transfer' and v['batch'] == batch}
    if same_batch:
      # A plain variant replaces the default only when clearly faster (> 2 %), not by noise.
      speed = lambda v: v['images_per_second']['median']
      best = max(same_batch.values(), key=speed)
      default = same_batch.get(f'b{batch}')
      if default is not None and speed(best) < 1.02 * speed(default):
        best = default
      entry['best_plain'] = best['plain']
      print(f'best_plain {model_name}=' + ','.join(best['plain']), flush=True)
    results[model_name] = entry
  with open(os.path.join(a.out, 'variants.json'), 'w') as f:
    json.dump(results, f, indent=1)
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
