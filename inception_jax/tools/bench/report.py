"""The benchmark's report: its JSON keys, the lines it prints, and the JSON file it writes."""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

# Top-level keys of the --json output (tests check them).
JSON_KEYS = ('model', 'batch', 'size', 'dtype', 'steps', 'warmup', 'machine', 'versions',
             'options', 'macs_per_image', 'flops_per_image', 'peak', 'init', 'train', 'eval',
             'memory', 'pipeline', 'loop', 'compare')
# Keys of 'train' and 'eval'.
STEP_KEYS = ('compile_seconds', 'images_per_second', 'step_seconds', 'flops_per_second',
             'percent_of_peak')


def _fmt_rate(section: dict[str, Any] | None) -> str:
  if not section:
    return '-'
  r = section['images_per_second']
  return f'{r["median"]:8.2f} img/s (min {r["min"]:.2f}, max {r["max"]:.2f})'


def print_report(report: dict[str, Any]) -> None:
  """The report as a few lines for a reader: the figures that matter, without the JSON's detail."""
  g = 1e9
  print(f'{report["model"]}: batch {report["batch"]}, {report["size"]} px, {report["dtype"]}, '
        f'{report["steps"]} timed steps after {report["warmup"]} warm-up '
        f'({report["machine"]["backend"]}, {report["machine"]["device"]}, '
        f'{report["machine"]["cpu_count"]} CPUs, load {report["machine"]["load_average_start"]})')
  if report['options']['plain']:
    print('  plain layers: ' + ', '.join(report['options'][k] for k in report['options']['plain']))
  peak = report['peak']
  print(f'  peak ({peak["dtype"]} {peak["matmul_size"]}^3 matmul): '
        f'{peak["flops_per_second"] / g:.1f} GFLOP/s')
  print(f'  init: {report["init"]["seconds"]:.2f} s ({report["init"]["method"]})')
  for name in ('train', 'eval'):
    s = report[name]
    if not s:
      continue
    pct = f'{s["percent_of_peak"]:.1f}% of peak' if s['percent_of_peak'] is not None else ''
    print(f'  {name:5s}: {_fmt_rate(s)}  compile {s["compile_seconds"]:.1f} s  '
          f'{s["flops_per_second"] / g:.1f} GFLOP/s  {pct}  '
          f'CPU {s.get("cpu_seconds_per_step", float("nan")):.2f} s/step')
    if 'images_per_second_pipelined' in s:
      print(f'         back to back (one wait for {report["steps"]} steps): '
            f'{s["images_per_second_pipelined"]:.2f} img/s')
  mem = report['memory']
  line = f'  host peak RSS {mem["host_peak_bytes"] / 2**30:.2f} GiB'
  if mem.get('device'):
    line += f', device peak {mem["device"].get("peak_bytes_in_use", 0) / 2**30:.2f} GiB'
  print(line)
  if report['pipeline']:
    p = report['pipeline']
    print(f'  input pipeline ({p["dataset"]}): {p["images_per_second"]:.1f} img/s')
  if report['loop']:
    for k in ('folder', 'constant_batch'):
      if k not in report['loop']:
        continue
      v = report['loop'][k]
      print(f'  loop ({k}): {v["images_per_second"]:.2f} img/s '
            f'({v["overhead_vs_bare_step_percent"]:+.1f}% vs the faster bare step figure, '
            f'{report["loop"]["bare_images_per_second"]:.2f} img/s)')
  if report['compare']:
    c = report['compare']
    for fmt, v in c['formats'].items():
      print(f'  torchvision {fmt:13s} train {_fmt_rate(v["train"])}  eval {_fmt_rate(v["eval"])}'
            f'  CPU {v["train"].get("cpu_seconds_per_step", float("nan")):.2f} s/step')
    print(f'  ours / torchvision ({c["best_format"]}): train {c["ratio_train"]:.2f}x'
          + (f', eval {c["ratio_eval"]:.2f}x' if c.get('ratio_eval') else ''))
    if c.get('note'):
      print(f'  note: {c["note"]}')


def strip_private(tree: Any) -> Any:
  """``tree`` without its keys starting with ``_``: values the parts pass each other, not
  figures."""
  if isinstance(tree, dict):
    return {k: strip_private(v) for k, v in tree.items() if not str(k).startswith('_')}
  if isinstance(tree, list):
    return [strip_private(v) for v in tree]
  return tree


def write_json(report: dict[str, Any], path: str) -> None:
  """Writes ``report`` to ``path`` through a temporary file, so that a reader never sees half."""
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  tmp = path + '.tmp'
  with open(tmp, 'w') as f:
    json.dump(report, f, indent=2, sort_keys=True, default=str)
  shutil.move(tmp, path)
