"""Metric writers: ``metrics.jsonl`` (one JSON object per line) and TensorBoard event files.

Every line has ``step`` and ``kind`` (``'train'`` or ``'eval'``) plus the values (``loss``, ``top1``,
``top5``; eval lines also ``num_examples``). Only process 0 writes (``enabled=False`` elsewhere).
The workdir may be local or a cloud path (``gs://...``, through ``etils.epath``); object stores
cannot append, so there the file is rewritten at each flush (it stays small: one line per log).
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Mapping

from etils import epath

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
    workdir = os.fspath(workdir)
    self.path = os.path.join(workdir, METRICS_FILE)
    self._local = '://' not in workdir
    self._lines = None  # cloud paths: the whole file, rewritten at flush
    self._tb = None
    if enabled and tensorboard:
      from flax.metrics import tensorboard as flax_tb  # imports TensorFlow; only on writers
      self._tb = flax_tb.SummaryWriter(workdir)

  def _read_lines(self) -> list[str]:
    path = epath.Path(self.path)
    return path.read_text().splitlines(keepends=True) if path.exists() else []

  def truncate_after(self, step: int) -> None:
    """Drops lines past ``step`` (written by a run that was interrupted after its last checkpoint)
    so a resumed run's log has each step once."""
    if not self.enabled:
      return
    lines = self._read_lines()
    keep = []
    for line in lines:
      try:
        if json.loads(line).get('step', 0) <= step:
          keep.append(line if line.endswith('\n') else line + '\n')
      except ValueError:
        continue  # a torn last line from a kill
    if not self._local:
      self._lines = keep
      if len(keep) != len(lines):
        self.flush()
    elif len(keep) != len(lines):
      tmp = self.path + '.tmp'
      with open(tmp, 'w') as f:
        f.writelines(keep)
      os.replace(tmp, self.path)

  def write(self, step: int, kind: str, values: Mapping[str, Any]) -> None:
    if not self.enabled:
      return
    record = {'step': int(step), 'kind': kind}
    record.update({k: _jsonable(v) for k, v in values.items()})
    line = json.dumps(record) + '\n'
    if self._local:
      with open(self.path, 'a') as f:
        f.write(line)
    else:
      if self._lines is None:
        self._lines = self._read_lines()
      self._lines.append(line)
    if self._tb is not None:
      for k, v in values.items():
        v = _jsonable(v)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
          self._tb.scalar(f'{kind}/{k}', v, int(step))

  def flush(self) -> None:
    if self.enabled and not self._local and self._lines is not None:
      epath.Path(self.path).write_text(''.join(self._lines))
    if self._tb is not None:
      self._tb.flush()

  def close(self) -> None:
    self.flush()
    if self._tb is not None:
      self._tb.close()
      self._tb = None
