r"""Sweep results rebuilt from the run directories: results.csv, results.md and PNG plots.

  python -m inception_jax.tools.report sweeps/aux            # after (or during) a sweep
  python -m inception_jax.tools.report sweeps/aux --out /tmp/report --no_plots

Runs come from the sweep's ``sweep.json`` (written by :mod:`inception_jax.tools.sweep`: every run of the
grid, so runs not started yet show as *missing*, except those the sweep's ``--only`` left out,
which are only counted); without it, every directory below ``DIR`` that holds a ``metrics.jsonl``,
``config.json`` or ``checkpoints/`` is a run, and its path components ``key=value`` are its
coordinates (``seed=N`` the seed). Each run is read from what train.py leaves behind:
``metrics.jsonl`` (train/eval lines), ``config.json`` and the checkpoint metadata.

* ``results.csv``: one row per run (those ``--only`` left out excepted): its coordinates, seed,
  status (``finished``; ``partial``: started but not finished, i.e. running, failed or stopped;
  ``missing``: never started), last step, final and best eval top-1/top-5 (%), the step of the
  best, params, MACs, median train images/s, model, dataset, image size, and the paper's errors
  when the run's config carries ``paper`` (``configs/ladder``).
* ``results.md``: one row per variant (runs that differ only in the seed): mean ± sample standard
  deviation (n - 1) over its finished seeds of final and best top-1/top-5, params, MACs, images/s,
  and for ladder runs the paper's error next to the run's. A variant without a finished run shows
  its partial runs, marked.
* ``learning_curves.png`` (eval top-1 and train loss against step, mean over seeds, min-max band),
  ``accuracy_vs_aux_weight.png`` (when ``aux_weight`` is a coordinate), ``accuracy_vs_macs.png``
  (when the variants' MACs differ; the output says when and why it is skipped).

Definitions: *final* is the evaluation at the run's last step (train.py evaluates at the end),
*best* the highest evaluation seen (top-1 and top-5 each on its own). *Params* counts the
inference network (aux heads excluded; BN statistics excluded) and *MACs* are multiply-adds per
image at the run's ``image_size``, both from :mod:`inception_jax.models.summary` (torchvision's
convention). *images/s* is the median of the train lines' ``images_per_sec`` (compilation and
checkpoint/eval pauses excluded by the training loop).
"""

from __future__ import annotations

import ast
import csv
import dataclasses
import fnmatch
import json
import math
import os
import sys
from typing import Any, Callable, Sequence

from inception_jax import errors

METRICS_FILE = 'metrics.jsonl'
CONFIG_FILE = 'config.json'
MANIFEST = 'sweep.json'
LOG_FILE = 'train.log'         # the sweep's copy of a run's output
CHECKPOINTS = 'checkpoints'
# Label-space sizes of common datasets, for runs without checkpoint metadata.
KNOWN_NUM_CLASSES = {'digits': 10, 'mnist': 10, 'cifar10': 10, 'cifar100': 100,
                     'imagenet2012': 1000, 'imagenet2012_subset': 1000, 'imagenet_resized': 1000}
# Status of a run of the grid that the sweep's --only left out and that never started: not in the
# tables, only counted.
NOT_SELECTED = 'not selected'


# ----------------------------------------------------------------------------- one run


def _float(value: Any) -> float:
  try:
    return float(value)
  except (TypeError, ValueError):
    return float('nan')


def read_metrics(workdir: str) -> list[dict[str, Any]]:
  """``metrics.jsonl`` lines as dicts (torn or non-JSON lines skipped; a step logged twice by an
  interrupted run keeps its last line)."""
  path = os.path.join(workdir, METRICS_FILE)
  if not os.path.exists(path):
    return []
  lines: dict[tuple[str, int], dict[str, Any]] = {}
  with open(path, errors='replace') as f:
    for line in f:
      try:
        record = json.loads(line)
        key = (str(record['kind']), int(record['step']))
      except (ValueError, KeyError, TypeError):
        continue
      lines[key] = record
  return sorted(lines.values(), key=lambda r: (int(r['step']), r['kind'] != 'train'))


def checkpoint_steps(workdir: str) -> list[int]:
  """Committed checkpoint steps (Orbax's in-progress ``*.orbax-checkpoint-tmp*`` excluded)."""
  directory = os.path.join(workdir, CHECKPOINTS)
  if not os.path.isdir(directory):
    return []
  return sorted(int(n) for n in os.listdir(directory)
                if n.isdigit() and os.path.isdir(os.path.join(directory, n)))


def checkpoint_metadata(workdir: str, step: int) -> dict[str, Any] | None:
  """The JSON metadata train.py saves next to the state (``checkpoints/<step>/metadata``)."""
  path = os.path.join(workdir, CHECKPOINTS, str(step), 'metadata', 'metadata')
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


@dataclasses.dataclass(frozen=True)
class RunState:
  """``status``: finished / partial / missing; ``step``: latest committed checkpoint."""
  status: str
  step: int | None = None
  total_steps: int | None = None


def run_state(workdir: str, metrics: list[dict[str, Any]] | None = None) -> RunState:
  """The completion marker (see :mod:`inception_jax.tools.sweep`): finished when the latest committed
  checkpoint is at its ``num_train_steps`` and metrics.jsonl has the final eval at that step."""
  steps = checkpoint_steps(workdir)
  metrics = read_metrics(workdir) if metrics is None else metrics
  if not steps:
    started = metrics or any(os.path.exists(os.path.join(workdir, n))
                             for n in (CONFIG_FILE, LOG_FILE))
    return RunState('partial' if started else 'missing')
  step = steps[-1]
  meta = checkpoint_metadata(workdir, step) or {}
  total = meta.get('num_train_steps')
  total = int(total) if isinstance(total, (int, float)) else None
  final_eval = any(r['kind'] == 'eval' and int(r['step']) == step for r in metrics)
  if total is not None and step == total and final_eval:
    return RunState('finished', step, total)
  return RunState('partial', step, total)


@dataclasses.dataclass
class RunResult:
  """What one run achieved (accuracies in %)."""

  name: str
  cell: dict[str, Any]
  seed: int | None
  status: str
  steps: int | None = None
  total_steps: int | None = None
  final_top1: float | None = None
  final_top5: float | None = None
  best_top1: float | None = None
  best_top5: float | None = None
  best_step: int | None = None
  final_eval_loss: float | None = None
  params: int | None = None
  macs: int | None = None
  images_per_sec: float | None = None
  model: str | None = None
  dataset: str | None = None
  image_size: int | None = None
  paper_top1_error: float | None = None
  paper_top5_error: float | None = None
  eval_curve: list[tuple[int, float, float]] = dataclasses.field(default_factory=list)
  train_curve: list[tuple[int, float]] = dataclasses.field(default_factory=list)


def _finite(x: float) -> bool:
  return x is not None and math.isfinite(x)


class _CostCache:
  """Params and MACs per distinct network (the same for every seed)."""

  def __init__(self):
    self._cache: dict[str, tuple[int | None, int | None]] = {}

  def __call__(self, config: dict[str, Any], num_classes: int | None
               ) -> tuple[int | None, int | None]:
    model = config.get('model')
    size = config.get('image_size')
    if not model or not isinstance(size, int) or not num_classes:
      return None, None
    overrides = {k: v for k, v in (config.get('model_overrides') or {}).items() if v is not None}
    overrides.update(num_classes=int(num_classes), aux_logits=False)  # the inference network
    key = json.dumps([model, overrides, size], sort_keys=True)
    if key not in self._cache:
      try:
        from inception_jax import models  # pylint: disable=g-import-not-at-top
        from inception_jax.models import summary
        net = models.create(model, **overrides)
        self._cache[key] = (summary.count_params(net, size), summary.count_macs(net, size))
      except Exception:  # noqa: BLE001 - an unknown model or size: leave the cells empty
        self._cache[key] = (None, None)
    return self._cache[key]


def read_run(workdir: str, name: str, cell: dict[str, Any], seed: int | None,
             costs: _CostCache | None = None) -> RunResult:
  """Everything the report needs from one run directory."""
  metrics = read_metrics(workdir)
  state = run_state(workdir, metrics)
  config: dict[str, Any] = {}
  try:
    with open(os.path.join(workdir, CONFIG_FILE)) as f:
      config = json.load(f)
  except (OSError, ValueError):
    pass
  if seed is None and isinstance(config.get('seed'), int):
    seed = config['seed']
  result = RunResult(name=name, cell=dict(cell), seed=seed, status=state.status,
                     total_steps=state.total_steps, model=config.get('model'),
                     dataset=config.get('dataset'), image_size=config.get('image_size'))
  paper = config.get('paper') or {}
  if isinstance(paper, dict):
    result.paper_top1_error = paper.get('top1_error')
    result.paper_top5_error = paper.get('top5_error')

  evals = [r for r in metrics if r['kind'] == 'eval']
  trains = [r for r in metrics if r['kind'] == 'train']
  result.eval_curve = [(int(r['step']), 100 * _float(r.get('top1')), 100 * _float(r.get('top5')))
                       for r in evals]
  result.train_curve = [(int(r['step']), _float(r.get('loss'))) for r in trains]
  if metrics:
    result.steps = max(int(r['step']) for r in metrics)
  if evals:
    last = evals[-1]
    result.final_top1 = 100 * _float(last.get('top1'))
    result.final_top5 = 100 * _float(last.get('top5'))
    result.final_eval_loss = _float(last.get('loss'))
    top1 = [(c[1], c[0]) for c in result.eval_curve if _finite(c[1])]
    if top1:
      result.best_top1, result.best_step = max(top1, key=lambda t: (t[0], -t[1]))
    top5 = [c[2] for c in result.eval_curve if _finite(c[2])]
    result.best_top5 = max(top5) if top5 else None
  speeds = sorted(v for v in (_float(r.get('images_per_sec')) for r in trains) if _finite(v))
  if speeds:
    mid = len(speeds) // 2
    result.images_per_sec = (speeds[mid] if len(speeds) % 2
                             else (speeds[mid - 1] + speeds[mid]) / 2)

  if costs is not None and config:
    num_classes = None
    for step in reversed(checkpoint_steps(workdir)):
      meta = checkpoint_metadata(workdir, step)
      if meta and meta.get('num_classes'):
        num_classes = meta['num_classes']
        break
    num_classes = (num_classes or (config.get('model_overrides') or {}).get('num_classes')
                   or KNOWN_NUM_CLASSES.get(str(config.get('dataset'))))
    result.params, result.macs = costs(config, num_classes)
  return result


# ----------------------------------------------------------------------------- the sweep


def _literal(text: str) -> Any:
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def _is_run_dir(path: str) -> bool:
  return any(os.path.exists(os.path.join(path, n))
             for n in (METRICS_FILE, CONFIG_FILE, CHECKPOINTS))


def discover_runs(sweep_dir: str) -> list[tuple[str, dict[str, Any], int | None]]:
  """(name, coordinates, seed) of every run: from sweep.json, else from the directory tree."""
  manifest_path = os.path.join(sweep_dir, MANIFEST)
  if os.path.exists(manifest_path):
    try:
      with open(manifest_path) as f:
        manifest = json.load(f)
      return [(r['name'], dict(r.get('cell') or {}), r.get('seed')) for r in manifest['runs']]
    except (OSError, ValueError, KeyError, TypeError) as e:
      print(f'warning: ignoring unreadable {manifest_path} ({e})', file=sys.stderr)
  runs = []
  for root, dirs, _ in os.walk(sweep_dir):
    dirs.sort()
    if root != sweep_dir and _is_run_dir(root):
      dirs[:] = []  # a run's own sub-directories (checkpoints) are not runs
      name = os.path.relpath(root, sweep_dir).replace(os.sep, '/')
      cell: dict[str, Any] = {}
      seed = None
      plain = []
      for part in name.split('/'):
        for item in part.split(','):
          key, sep, value = item.partition('=')
          if not sep:
            plain.append(item)
          elif key == 'seed' and isinstance(_literal(value), int):
            seed = _literal(value)
          else:
            cell[key] = _literal(value)
      if plain:
        cell = {'run': '/'.join(plain), **cell}
      runs.append((name, cell, seed))
  if not runs and _is_run_dir(sweep_dir):
    runs.append(('.', {}, None))
  return runs


def only_patterns(sweep_dir: str) -> list[str]:
  """The sweep's last ``--only`` patterns (from sweep.json; empty: every run was selected)."""
  try:
    with open(os.path.join(sweep_dir, MANIFEST)) as f:
      only = json.load(f).get('only') or []
  except (OSError, ValueError, AttributeError):
    return []
  return [str(p) for p in only] if isinstance(only, list) else []


def collect(sweep_dir: str, *, costs: bool = True) -> list[RunResult]:
  """A :class:`RunResult` for every run of the sweep in ``sweep_dir``; a run that the sweep's
  ``--only`` left out and that never started has the status :data:`NOT_SELECTED`."""
  cache = _CostCache() if costs else None
  only = only_patterns(sweep_dir)
  results = []
  for name, cell, seed in discover_runs(sweep_dir):
    workdir = os.path.normpath(os.path.join(sweep_dir, *name.split('/')))
    result = read_run(workdir, name, cell, seed, cache)
    if (only and result.status == 'missing'
        and not any(fnmatch.fnmatchcase(name, p) for p in only)):
      result.status = NOT_SELECTED
    results.append(result)
  return results


def _key(value: Any) -> str:
  return json.dumps(value, sort_keys=True, default=repr)


@dataclasses.dataclass
class Variant:
  """Runs that differ only in the seed, and their statistics over the finished ones."""

  cell: dict[str, Any]
  runs: list[RunResult]

  @property
  def label(self) -> str:
    return ', '.join(f'{k}={v}' for k, v in self.cell.items()) or 'all runs'

  @property
  def finished(self) -> list[RunResult]:
    return [r for r in self.runs if r.status == 'finished']

  @property
  def used(self) -> list[RunResult]:
    """The runs the statistics are over: the finished ones, else the partial ones with an
    evaluation (marked in the table)."""
    return self.finished or [r for r in self.runs if r.status == 'partial' and r.eval_curve]

  def stat(self, field: str) -> tuple[float | None, float | None, int]:
    """(mean, sample std or None when n < 2, n) of ``field`` over :attr:`used`."""
    values = [getattr(r, field) for r in self.used]
    values = [float(v) for v in values if v is not None and _finite(float(v))]
    if not values:
      return None, None, 0
    mean = sum(values) / len(values)
    if len(values) < 2:
      return mean, None, len(values)
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(var), len(values)

  def first(self, field: str) -> Any:
    for r in self.runs:
      if getattr(r, field, None) is not None:
        return getattr(r, field)
    return None


def group(results: Sequence[RunResult]) -> list[Variant]:
  """Variants in order of first appearance."""
  variants: dict[str, Variant] = {}
  for r in results:
    variants.setdefault(_key(r.cell), Variant(dict(r.cell), [])).runs.append(r)
  return list(variants.values())


# ----------------------------------------------------------------------------- writers


def _fmt(mean: float | None, std: float | None, digits: int = 2) -> str:
  if mean is None:
    return '–'
  return f'{mean:.{digits}f}' if std is None else f'{mean:.{digits}f} ± {std:.{digits}f}'


def _human(n: float | None) -> str:
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
    row += [_human(v.first('params')), _human(v.first('macs'))]
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


def _pyplot():
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def _mean_curve(curves: Sequence[Sequence[tuple]], index: int):
  """Steps, mean, min, max of column ``index`` over runs, at every step any run logged."""
  by_step: dict[int, list[float]] = {}
  for curve in curves:
    for point in curve:
      if _finite(point[index]):
        by_step.setdefault(point[0], []).append(point[index])
  steps = sorted(by_step)
  return (steps, [sum(by_step[s]) / len(by_step[s]) for s in steps],
          [min(by_step[s]) for s in steps], [max(by_step[s]) for s in steps])


def plot_learning_curves(variants: Sequence[Variant], path: str) -> None:
  """Eval top-1 and train loss against step, mean over seeds with a min-max band."""
  plt = _pyplot()
  fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
  for i, v in enumerate(variants):
    color = f'C{i % 10}'
    for ax, curves, index in ((ax1, [r.eval_curve for r in v.used], 1),
                              (ax2, [r.train_curve for r in v.used], 1)):
      steps, mean, lo, hi = _mean_curve(curves, index)
      if not steps:
        continue
      ax.plot(steps, mean, marker='o' if len(steps) < 20 else None, ms=3, color=color,
              label=v.label)
      if len(v.used) > 1:
        ax.fill_between(steps, lo, hi, color=color, alpha=0.15, linewidth=0)
  ax1.set(xlabel='step', ylabel='eval top-1 (%)', title='Evaluation accuracy')
  ax2.set(xlabel='step', ylabel='train loss', title='Training loss')
  for ax in (ax1, ax2):
    ax.grid(alpha=0.3)
  handles, labels = ax1.get_legend_handles_labels()
  if not handles:
    handles, labels = ax2.get_legend_handles_labels()
  if handles:
    fig.legend(handles, labels, loc='lower center', ncol=min(4, len(handles)), fontsize=8,
               frameon=False)
  fig.tight_layout(rect=(0, 0.06 + 0.04 * ((len(handles) - 1) // 4), 1, 1))
  fig.savefig(path, dpi=120)
  plt.close(fig)


def plot_accuracy_vs(variants: Sequence[Variant], field: str, path: str, *, xlabel: str,
                     log_x: bool = False) -> bool:
  """Final top-1 (mean ± std over seeds) against a numeric coordinate or attribute ``field``;
  one line per combination of the other coordinates. False when nothing could be plotted."""
  plt = _pyplot()
  lines: dict[str, list[tuple[float, float, float, str]]] = {}
  for v in variants:
    x = v.cell.get(field, v.first(field))
    mean, std, _ = v.stat('final_top1')
    if isinstance(x, bool) or not isinstance(x, (int, float)) or mean is None:
      continue
    rest = ', '.join(f'{k}={val}' for k, val in v.cell.items() if k != field)
    lines.setdefault(rest if field in v.cell else '', []).append(
        (float(x), mean, std or 0.0, v.label))
  if not lines:
    return False
  fig, ax = plt.subplots(figsize=(6.5, 4.5))
  for i, (label, points) in enumerate(lines.items()):
    points.sort()
    xs, ys, es = [p[0] for p in points], [p[1] for p in points], [p[2] for p in points]
    if field in variants[0].cell:  # a coordinate: one line per setting of the others
      ax.errorbar(xs, ys, yerr=es, marker='o', capsize=3, color=f'C{i % 10}', label=label or None)
      continue
    for j, (x, y, e, name) in enumerate(points):  # an attribute: one labelled point per variant
      ax.errorbar([x], [y], yerr=[e], marker='o', capsize=3, color=f'C{j % 10}')
      ax.annotate(name, (x, y), textcoords='offset points', xytext=(4, 4), fontsize=7)
  xs = [x for pts in lines.values() for x, *_ in pts]
  if log_x and min(xs) > 0 and max(xs) > 10 * min(xs):
    ax.set_xscale('log')
  ax.set(xlabel=xlabel, ylabel='final eval top-1 (%)')
  ax.grid(alpha=0.3)
  if any(lines):
    ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return True


def _macs_plot_skipped(variants: Sequence[Variant]) -> str | None:
  """Why accuracy_vs_macs.png would say nothing (None: draw it): it needs variants with a final
  evaluation and at least two different MACs (equal ones would be labels printed over each
  other)."""
  macs = {v.first('macs') for v in variants
          if v.first('macs') is not None and v.stat('final_top1')[0] is not None}
  if not macs:
    return 'no variant has both MACs and a final evaluation'
  if len(macs) == 1:
    return f'every variant has the same MACs ({_human(next(iter(macs)))}) per image'
  return None


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
    skipped = _macs_plot_skipped(variants)
    if skipped:
      log(f'accuracy_vs_macs.png skipped: {skipped}')
      if os.path.exists(path):  # an earlier report's plot would no longer match the tables
        os.remove(path)
    elif plot_accuracy_vs(variants, 'macs', path, xlabel='multiply-adds per image', log_x=True):
      paths.append(path)
  return paths


def main(argv: Sequence[str] | None = None) -> int:
  parser = errors.ArgumentParser(
      prog='python -m inception_jax.tools.report',
      description='Rebuild results.csv, results.md and the plots of a sweep from its run dirs.')
  parser.add_argument('sweep_dir', help='the sweep --workdir (or any directory of runs)')
  parser.add_argument('--out', default=None, help='where to write (default: sweep_dir)')
  parser.add_argument('--no_plots', action='store_true', help='tables only')
  args = parser.parse_args(argv)
  notes: list[str] = []
  paths = write_report(args.sweep_dir, args.out, plots=not args.no_plots, log=notes.append)
  with open(paths[1]) as f:
    print(f.read(), end='')
  for note in notes:
    print(note)
  print('wrote ' + ', '.join(paths))
  return 0


if __name__ == '__main__':
  errors.run_cli(lambda: sys.exit(main()))
