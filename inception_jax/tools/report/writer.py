"""Writes a sweep's report: the tables, then the plots that have something to show."""

from __future__ import annotations

import json
import os
from typing import Callable

from inception_jax import errors
from inception_jax.tools.report.collection import collect, group, only_patterns
from inception_jax.tools.report.plots import (
    macs_plot_skipped, plot_accuracy_vs, plot_learning_curves)
from inception_jax.tools.report.runs import MANIFEST, NOT_SELECTED
from inception_jax.tools.report.tables import markdown, write_csv


def write_report(sweep_dir: str, out_dir: str | None = None, *, plots: bool = True,
                 costs: bool = True, log: Callable[[str], None] | None = None) -> list[str]:
  """Writes results.csv, results.md and the plots; returns their paths. ``log`` gets a line for
  each plot that is skipped, saying why."""
  log = log or (lambda line: None)
  if not os.path.isdir(sweep_dir):
    raise errors.UserError(f'{sweep_dir!r} is not a directory; pass the sweep --workdir')
  results = collect(sweep_dir, costs=costs)
  not_selected = sum(r.status == NOT_SELECTED for r in results)
  results = [r for r in results if r.status != NOT_SELECTED]
  if not results:
    raise errors.UserError(f'no runs in {sweep_dir!r} (no sweep.json and no directory with '
                           'metrics.jsonl, config.json or checkpoints/)')
  out_dir = out_dir or sweep_dir
  os.makedirs(out_dir, exist_ok=True)
  paths = [os.path.join(out_dir, 'results.csv'), os.path.join(out_dir, 'results.md')]
  write_csv(results, paths[0])
  title = ''
  try:
    with open(os.path.join(sweep_dir, MANIFEST)) as f:
      manifest = json.load(f)
    title = manifest.get('description') or os.path.basename(str(manifest.get('sweep_config')))
  except (OSError, ValueError, AttributeError):
    pass
  with open(paths[1], 'w') as f:
    f.write(markdown(results, title, not_selected=not_selected, only=only_patterns(sweep_dir)))
  if plots:
    variants = group(results)
    path = os.path.join(out_dir, 'learning_curves.png')
    plot_learning_curves(variants, path)
    paths.append(path)
    if any('aux_weight' in v.cell for v in variants):
      path = os.path.join(out_dir, 'accuracy_vs_aux_weight.png')
      if plot_accuracy_vs(variants, 'aux_weight', path, xlabel='auxiliary loss weight'):
        paths.append(path)
    path = os.path.join(out_dir, 'accuracy_vs_macs.png')
    skipped = macs_plot_skipped(variants)
    if skipped:
      log(f'accuracy_vs_macs.png skipped: {skipped}')
      if os.path.exists(path):  # a plot left in out_dir would not match these tables
        os.remove(path)
    elif plot_accuracy_vs(variants, 'macs', path, xlabel='multiply-adds per image', log_x=True):
      paths.append(path)
  return paths
