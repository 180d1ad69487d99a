"""One run directory read back: its metrics, checkpoints, completion state and costs.

Only what train.py leaves behind is read (``metrics.jsonl``, ``config.json``, the checkpoint
metadata), so a report can be rebuilt at any time, during a sweep or long after it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any

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


def finite(x: float) -> bool:
  """True for a real number (None, NaN and infinities are left out of statistics and curves)."""
  return x is not None and math.isfinite(x)


class CostCache:
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
             costs: CostCache | None = None) -> RunResult:
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
    top1 = [(c[1], c[0]) for c in result.eval_curve if finite(c[1])]
    if top1:
      result.best_top1, result.best_step = max(top1, key=lambda t: (t[0], -t[1]))
    top5 = [c[2] for c in result.eval_curve if finite(c[2])]
    result.best_top5 = max(top5) if top5 else None
  speeds = sorted(v for v in (_float(r.get('images_per_sec')) for r in trains) if finite(v))
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
