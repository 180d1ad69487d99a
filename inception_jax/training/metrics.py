"""Metric writers: ``metrics.jsonl`` (one JSON object per line) and TensorBoard event files.

Every line has ``step`` and ``kind`` (``'train'`` or ``'eval'``) plus the values (``loss``, ``top1``,
``top5``; eval lines also ``num_examples``). Only process 0 writes (``enabled=False`` elsewhere).
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Mapping

METRICS_FILE = 'metrics.jsonl'


def _jsonable(v: Any) -> Any:
  if hasattr(v, 'item'):
    v = v.item()
  if isinstance(v, float) and not math.isfinite(v):
    return str(v)  # JSON has no NaN/Inf; keep the line valid
  return v


class MetricsWriter:
  """Appends to ``<workdir>/metrics.jsonl`` and writes TensorBoard scalars under ``<workdir>``
  (``train/<name>`` and ``eval/<name>`` tags)."""

  def __init__(self, workdir: str, *, enabled: bool = True, tensorboard: bool = True):
    self.enabled = enabled
    self.path = os.path.join(os.fspath(workdir), METRICS_FILE)
    self._tb = None
    if enabled and tensorboard:
      from flax.metrics import tensorboard as flax_tb  # imports TensorFlow; only on writers
      self._tb = flax_tb.SummaryWriter(os.fspath(workdir))

  def truncate_after(self, step: int) -> None:
    """Drops lines past ``step`` (written by a run that was interrupted after its last checkpoint)
    so a resumed run's log has each step once."""
    if not self.enabled or not os.path.exists(self.path):
      return
    with open(self.path) as f:
      lines = f.readlines()
    keep = []
    for line in lines:
      try:
        if json.loads(line).get('step', 0) <= step:
          keep.append(line if line.endswith('\n') else line + '\n')
      except ValueError:
        continue  # a torn last line from a kill
    if len(keep) != len(lines):
      tmp = self.path + '.tmp'
      with open(tmp, 'w') as f:
        f.writelines(keep)
      os.replace(tmp, self.path)

  def write(self, step: int, kind: str, values: Mapping[str, Any]) -> None:
    if not self.enabled:
      return
    record = {'step': int(step), 'kind': kind}
    record.update({k: _jsonable(v) for k, v in values.items()})
    with open(self.path, 'a') as f:
      f.write(json.dumps(record) + '\n')
    if self._tb is not None:
      for k, v in values.items():
        v = _jsonable(v)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
          self._tb.scalar(f'{kind}/{k}', v, int(step))

  def flush(self) -> None:
    if self._tb is not None:
      self._tb.flush()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()
      self._tb = None
