"""Whether a finished run still matches what the sweep would launch (else it is launched again).

The expected config of every run is built exactly as train.py's config flags build it, so a
finished run is skipped only when its saved ``config.json`` agrees on everything but cadence.
"""

from __future__ import annotations

import json
import os
from typing import Any, Iterable, Sequence

import ml_collections

from inception_jax.config.loading import apply_overrides, load_config_file
from inception_jax.errors import UserError
from inception_jax.tools.sweep.grid import Run, flatten

# Fields that may change between launches of a finished run without making it stale.
CADENCE_FIELDS = ('log_every_steps', 'eval_every_steps', 'checkpoint_every_steps',
                  'keep_checkpoints', 'tensorboard', 'data_dir', 'num_devices', 'parallel',
                  'eval_batch_size')


class ExpectedConfigs:
  """The training config each run will get, built here as config_flags builds it in train.py
  (base file, then the overrides); checks every run before anything is launched."""

  def __init__(self):
    self._bases: dict[str, ml_collections.ConfigDict] = {}

  def __call__(self, run: Run) -> ml_collections.ConfigDict:
    if run.base not in self._bases:
      self._bases[run.base] = load_config_file(run.base)
    return apply_overrides(self._bases[run.base], run.overrides,
                           f'the training config {os.path.basename(run.base)} (run {run.name})')

  def validate(self, runs: Iterable[Run]) -> None:
    from inception_jax.config import schema  # pylint: disable=g-import-not-at-top
    for run in runs:
      try:
        schema.validate_config(self(run))
      except UserError as e:
        raise UserError(f'run {run.name}: {e}') from None


def config_drift_dicts(saved: dict[str, Any], wanted: dict[str, Any],
                       ignore: Sequence[str] = CADENCE_FIELDS) -> list[str]:
  """``'field: saved -> wanted'`` for every leaf that differs (top-level fields in ``ignore``
  skipped)."""
  saved, wanted = flatten(saved), flatten(wanted)
  diffs = []
  for key in sorted(set(saved) | set(wanted)):
    if key.split('.')[0] in ignore:
      continue
    if saved.get(key) != wanted.get(key):
      diffs.append(f'{key}: {saved.get(key)!r} -> {wanted.get(key)!r}')
  return diffs


def config_drift(workdir: str, expected: ml_collections.ConfigDict) -> list[str]:
  """Fields whose value in ``workdir/config.json`` differs from ``expected`` (cadence ignored)."""
  try:
    with open(os.path.join(workdir, 'config.json')) as f:
      saved = json.load(f)
  except (OSError, ValueError):
    return ['config.json missing or unreadable']
  return config_drift_dicts(saved, json.loads(expected.to_json_best_effort()))
