"""``python -m inception_jax.tools.bench``: runs each part of the benchmark, assembles the report.

``--pipeline-only`` is a mode of its own (absl flags and a training config, no model): it is
handed to :mod:`inception_jax.tools.bench.pipeline_rate` before any other flag is read.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from typing import Any, Sequence

from inception_jax.tools.bench import allocator, machine, report as report_lib
from inception_jax.tools.bench.arguments import parse_args, parse_overrides
from inception_jax.tools.bench.loop import bench_loop
from inception_jax.tools.bench.lowerings import lowering_names
from inception_jax.tools.bench.pipeline import bench_pipeline
from inception_jax.tools.bench.steps import bench_ours
from inception_jax.tools.bench.timing import measure_peak, spec_peak
from inception_jax.tools.bench.torchvision_compare import bench_torchvision, import_torch
from inception_jax.tools.bench.workload import build_model, default_aux_weight


def run(args: argparse.Namespace) -> dict[str, Any]:
  """Runs the benchmark described by ``args``; returns the report (what --json writes)."""
  if args.xla_flags:
    os.environ['XLA_FLAGS'] = ' '.join(filter(None, [os.environ.get('XLA_FLAGS'),
                                                     args.xla_flags]))
  if args.compare:
    import_torch()  # fail early, before minutes of compilation
  load_start = machine.load_average()
  import jax  # pylint: disable=g-import-not-at-top

  model = build_model(args)
  aux_weight = args.aux_weight if args.aux_weight is not None else default_aux_weight()
  on_gpu = jax.default_backend() == 'gpu'
  peak = measure_peak(args.half, args.peak_size)
  peak['spec_flops_per_second'] = (spec_peak(jax.devices()[0].device_kind)
                                   if on_gpu and args.half else None)

  ours = bench_ours(args, model, aux_weight, peak['flops_per_second'])
  if peak['spec_flops_per_second']:
    for name in ('train', 'eval'):
      if ours[name]:
        ours[name]['percent_of_spec_peak'] = (100.0 * ours[name]['flops_per_second'] /
                                              peak['spec_flops_per_second'])
  memory = {'host_peak_bytes': machine.host_peak_rss_bytes(), 'device': machine.device_memory()}
  del ours['_state']

  with tempfile.TemporaryDirectory(prefix='inception_jax_bench_') as workdir:
    pipeline = bench_pipeline(args, workdir)
    # The faster of the two bare figures, so that the loop's overhead is never understated (on
    # the CPU, steps dispatched back to back can run slower than one at a time).
    bare = max(ours['train']['images_per_second']['median'],
               ours['train']['images_per_second_pipelined'])
    loop_result = (bench_loop(args, workdir, pipeline, bare)
                   if args.loop else None)

  compare = None
  if args.compare:
    compare = bench_torchvision(args, aux_weight, on_gpu)
    best = compare['formats'][compare['best_format']]
    compare['ratio_train'] = (ours['train']['images_per_second']['median'] /
                              best['train']['images_per_second']['median'])
    if ours['eval'] and best['eval']:
      best_eval = max(v['eval']['images_per_second']['median']
                      for v in compare['formats'].values())
      compare['ratio_eval'] = ours['eval']['images_per_second']['median'] / best_eval

  device = jax.devices()[0]
  report = {
      'model': args.model, 'batch': args.batch, 'size': args.size,
      'dtype': 'bfloat16' if args.half else 'float32', 'steps': args.steps,
      'warmup': args.warmup,
      'machine': {'backend': jax.default_backend(), 'device': device.device_kind,
                  'cpu': machine.cpu_model(), 'cpu_count': machine.cpu_count(),
                  'platform': platform.platform(), 'load_average_start': load_start,
                  'load_average_end': machine.load_average(),
                  'date': time.strftime('%Y-%m-%d %H:%M:%S %Z')},
      'versions': machine.versions(),
      'options': {'allocator': allocator.loaded_allocator(),
                  'xla_flags': os.environ.get('XLA_FLAGS', ''),
                  **lowering_names(model.lowering), 'plain': sorted(set(args.plain)),
                  'aux_weight': aux_weight, 'overrides': parse_overrides(args.set),
                  'num_classes': args.num_classes},
      'macs_per_image': ours['macs_per_image'], 'flops_per_image': ours['flops_per_image'],
      'peak': peak, 'init': ours['init'], 'train': ours['train'], 'eval': ours['eval'],
      'memory': memory, 'pipeline': pipeline, 'loop': loop_result, 'compare': compare,
  }
  return report_lib.strip_private(report)


def main(argv: Sequence[str] | None = None) -> int:
  """The command: ``argv`` without the program name (default ``sys.argv[1:]``); returns 0."""
  argv = list(sys.argv[1:] if argv is None else argv)
  if '--pipeline-only' in argv:  # the input pipeline alone, on a prepared dataset
    from inception_jax.tools.bench import pipeline_rate  # pylint: disable=g-import-not-at-top
    return pipeline_rate.main([a for a in argv if a != '--pipeline-only'])
  args = parse_args(argv)
  allocator.maybe_reexec(args, argv)
  report = run(args)
  report_lib.print_report(report)
  if args.json:
    report_lib.write_json(report, args.json)
    print(f'wrote {args.json}')
  return 0
