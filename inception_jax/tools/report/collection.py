"""The runs of a sweep directory and their grouping into variants (runs that differ only in seed).

Runs come from ``sweep.json`` when the sweep wrote one, so runs not started yet still show up;
the directory tree is the fallback for runs launched by hand.
"""

from __future__ import annotations

import ast
import dataclasses
import fnmatch
import json
import math
import os
import sys
from typing import Any, Sequence

from inception_jax.tools.report.runs import (
    CHECKPOINTS, CONFIG_FILE, MANIFEST, METRICS_FILE, NOT_SELECTED, CostCache, RunResult, finite,
    read_run)


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
  cache = CostCache() if costs else None
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
    values = [float(v) for v in values if v is not None and finite(float(v))]
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
