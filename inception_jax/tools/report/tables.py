"""The report's tables: results.csv (one row per run) and results.md (one row per variant)."""

from __future__ import annotations

import csv
import json
import math
from typing import Any, Sequence

from inception_jax.tools.report.collection import group
from inception_jax.tools.report.runs import RunResult


def _fmt(mean: float | None, std: float | None, digits: int = 2) -> str:
  if mean is None:
    return '–'
  return f'{mean:.{digits}f}' if std is None else f'{mean:.{digits}f} ± {std:.{digits}f}'


def human(n: float | None) -> str:
  """A count with a K/M/G suffix (params and MACs read at a glance in tables and plot notes)."""
  if n is None:
    return '–'
  for unit, scale in (('G', 1e9), ('M', 1e6), ('K', 1e3)):
    if abs(n) >= scale:
      return f'{n / scale:.3g}{unit}'
  return f'{n:.0f}'


def _csv_value(v: Any) -> Any:
  if v is None:
    return ''
  if isinstance(v, float):
    return '' if not math.isfinite(v) else round(v, 4)
  if isinstance(v, (list, tuple, dict)):
    return json.dumps(v)
  return v


def cell_fields(results: Sequence[RunResult]) -> list[str]:
  fields: list[str] = []
  for r in results:
    for k in r.cell:
      if k not in fields:
        fields.append(k)
  return fields


CSV_FIELDS = ('seed', 'status', 'steps', 'total_steps', 'final_top1', 'final_top5', 'best_top1',
              'best_top5', 'best_step', 'final_eval_loss', 'params', 'macs', 'images_per_sec',
              'model', 'dataset', 'image_size', 'paper_top1_error', 'paper_top5_error')


def write_csv(results: Sequence[RunResult], path: str) -> None:
  """One row per run; accuracies in %."""
  fields = cell_fields(results)
  with open(path, 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(['run'] + fields + list(CSV_FIELDS))
    for r in results:
      writer.writerow([r.name] + [_csv_value(r.cell.get(k)) for k in fields] +
                      [_csv_value(getattr(r, k)) for k in CSV_FIELDS])


def markdown(results: Sequence[RunResult], title: str = '', *, not_selected: int = 0,
             only: Sequence[str] = ()) -> str:
  """The results.md text (see the module docstring); ``not_selected`` runs of the grid that
  ``--only`` (``only``) left out are counted in the first line."""
  variants = group(results)
  fields = cell_fields(results)
  counts = {s: sum(r.status == s for r in results) for s in ('finished', 'partial', 'missing')}
  ladder = any(r.paper_top1_error is not None or r.paper_top5_error is not None for r in results)
  datasets = sorted({r.dataset for r in results if r.dataset})
  left_out = (f'; {not_selected} more run{"s" if not_selected != 1 else ""} of the grid not '
              f'selected by --only={",".join(only)}' if not_selected else '')
  lines = [f'# {title or "Sweep results"}', '',
           f'{len(results)} run{"s" if len(results) != 1 else ""}: {counts["finished"]} '
           f'finished, {counts["partial"]} partial, {counts["missing"]} missing' + left_out
           + (f"; dataset {', '.join(datasets)}" if datasets else '') + '.', '',
           'Eval accuracy in %: mean ± sample standard deviation (n − 1) over the finished seeds '
           '(*n* runs). *Final*: the evaluation at the last step; *best*: the highest evaluation '
           'seen. Params: inference network (aux heads excluded). MACs: multiply-adds per image at '
           'the run\'s image size. images/s: median training throughput.', '']
  header = fields + ['n', 'final top-1', 'final top-5', 'best top-1', 'best top-5', 'params',
                     'MACs', 'images/s']
  if ladder:
    header += ['top-1 err (run)', 'top-1 err (paper)', 'top-5 err (run)', 'top-5 err (paper)']
  lines.append('| ' + ' | '.join(header) + ' |')
  lines.append('|' + '|'.join('---' for _ in header) + '|')
  for v in variants:
    n_total = len(v.runs)
    finished = len(v.finished)
    if finished:
      n = f'{finished}' if finished == n_total else f'{finished} of {n_total}'
    else:
      n = f'{len(v.used)} partial of {n_total}' if v.used else f'0 of {n_total}'
    row = [str(v.cell.get(k, '')) for k in fields] + [n]
    for field in ('final_top1', 'final_top5', 'best_top1', 'best_top5'):
      mean, std, _ = v.stat(field)
      row.append(_fmt(mean, std))
    row += [human(v.first('params')), human(v.first('macs'))]
    mean, _, _ = v.stat('images_per_sec')
    row.append('–' if mean is None else f'{mean:.0f}')
    if ladder:
      for field, paper in (('final_top1', 'paper_top1_error'), ('final_top5', 'paper_top5_error')):
        mean, std, _ = v.stat(field)
        row.append(_fmt(None if mean is None else 100 - mean, std, 1))
        value = v.first(paper)
        row.append('–' if value is None else f'{value:g}')
    lines.append('| ' + ' | '.join(row) + ' |')
  incomplete = [r for r in results if r.status != 'finished']
  if incomplete:
    lines += ['', 'Not finished (excluded from the statistics of variants that have finished '
              'runs):', '']
    for r in incomplete:
      where = f'at step {r.steps}' if r.steps is not None else 'no metrics yet'
      total = f' of {r.total_steps}' if r.total_steps else ''
      lines.append(f'- `{r.name}`: {r.status} ({where}{total})')
  return '\n'.join(lines) + '\n'
