"""Progress of long loops for people and for log files.

On a terminal a tqdm bar; otherwise (a log file, a pipe, a job scheduler's output) plain lines
every few batches or ``interval`` seconds, with batches done / total and an ETA: never carriage
returns or escape codes, which turn a log file into one unreadable line.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any, Callable


def stderr_is_terminal() -> bool:
  """Whether stderr (where bars are drawn) is a terminal."""
  try:
    return sys.stderr.isatty()
  except (AttributeError, ValueError):  # replaced by an object without isatty, or closed
    return False


def format_seconds(seconds: float) -> str:
  """``42 s``, ``3 min 05 s``, ``2 h 07 min``."""
  seconds = max(0, int(round(seconds)))
  if seconds < 60:
    return f'{seconds} s'
  if seconds < 3600:
    return f'{seconds // 60} min {seconds % 60:02d} s'
  return f'{seconds // 3600} h {seconds // 60 % 60:02d} min'


class Progress:
  """``update()`` once per finished item; ``close()`` at the end.

  Args:
    total: the number of items.
    desc: what is being done (the line's or bar's prefix).
    log: where plain lines go (default: stderr).
    terminal: draw a tqdm bar; default: when stderr is a terminal.
    every: a plain line every ``every`` items (default: about ten lines in all) ...
    interval: ... or when ``interval`` seconds passed since the last line, whichever is first.
    unit: the items' name in plain lines (plural).
  """

  def __init__(self, total: int, desc: str, *, log: Callable[[str], None] | None = None,
               terminal: bool | None = None, every: int | None = None, interval: float = 30.0,
               unit: str = 'batches', clock: Callable[[], float] = time.monotonic):
    self.total = max(0, int(total))
    self.desc = desc
    self.unit = unit
    self.done = 0
    self._log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    self._every = every or max(1, math.ceil(self.total / 10))
    self._interval = interval
    self._clock = clock
    self._start = clock()
    self._first = None  # when the first item finished: it includes compilation, so the ETA
    self._last_line = self._start  # is the rate of the later items
    self._bar: Any = None
    if terminal if terminal is not None else stderr_is_terminal():
      from tqdm import tqdm  # pylint: disable=g-import-not-at-top
      self._bar = tqdm(total=self.total, desc=desc, unit=unit.rstrip('s') or unit,
                       dynamic_ncols=True, mininterval=0.5, file=sys.stderr, leave=False)

  def eta(self) -> float | None:
    """Seconds left, from the items after the first (None until two are done)."""
    if self._first is None or self.done < 2:
      return None
    rate = (self._clock() - self._first) / (self.done - 1)
    return rate * max(0, self.total - self.done)

  def line(self) -> str:
    """``evaluating: 12/48 batches (25%), 31 s elapsed, ETA 1 min 33 s``."""
    percent = f' ({100 * self.done // self.total}%)' if self.total else ''
    eta = self.eta()
    return (f'{self.desc}: {self.done}/{self.total} {self.unit}{percent}, '
            f'{format_seconds(self._clock() - self._start)} elapsed'
            + (f', ETA {format_seconds(eta)}' if eta is not None and self.done < self.total
               else ''))

  def update(self, n: int = 1) -> None:
    self.done += n
    now = self._clock()
    if self._first is None:
      self._first = now
    if self._bar is not None:
      self._bar.update(n)
      return
    if (self.done % self._every == 0 or self.done >= self.total
        or now - self._last_line >= self._interval):
      self._last_line = now
      self._log(self.line())

  def close(self) -> None:
    if self._bar is not None:
      self._bar.close()
      self._bar = None
