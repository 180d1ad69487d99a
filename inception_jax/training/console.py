"""What a run prints: process 0's lines, the progress bar, and the train / eval log lines."""

from __future__ import annotations

import math
import sys
from typing import Any, Mapping


class Printer:
  """Process-0 console output that does not break the progress bar (``bar``, when one is up)."""

  def __init__(self, enabled: bool):
    self.enabled = enabled
    self.bar = None

  def __call__(self, message: str) -> None:
    if not self.enabled:
      return
    if self.bar is not None:
      self.bar.write(message)
    else:
      print(message, flush=True)

  def open_bar(self, show: bool | None, total: int, initial: int) -> None:
    """The tqdm bar; ``show`` None means "when stderr is a terminal" (process 0 only)."""
    if not self.enabled or show is False or (show is None and not sys.stderr.isatty()):
      return
    from tqdm import tqdm  # pylint: disable=g-import-not-at-top
    self.bar = tqdm(total=total, initial=initial, unit='step', dynamic_ncols=True,
                    mininterval=0.5, smoothing=0.1, file=sys.stderr)

  def close_bar(self) -> None:
    if self.bar is not None:
      self.bar.close()
      self.bar = None


def train_line(step: int, total: int, m: Mapping[str, Any], images_per_s: float) -> str:
  """One log line; the speed is left out while there is none to give (the first window holds
  only the compiling step, which the meter does not time)."""
  speed = f'  {images_per_s:.1f} img/s' if math.isfinite(images_per_s) else ''
  return (f'step {step}/{total}: loss {m["loss"]:.4f} (main {m["main_loss"]:.4f}, aux '
          f'{m["aux_loss"]:.4f})  top1 {100 * m["top1"]:.2f}%  top5 {100 * m["top5"]:.2f}%  '
          f'lr {m["learning_rate"]:.4g}  |g| {m["grad_norm"]:.3g}{speed}')


def eval_line(step: int, m: Mapping[str, Any]) -> str:
  return (f'eval at step {step}: loss {m["loss"]:.4f}  top1 {100 * m["top1"]:.2f}%  '
          f'top5 {100 * m["top5"]:.2f}%  ({m["num_examples"]} examples)')


def final_line(step: int, m: Mapping[str, Any], directory: str) -> str:
  return (f'final evaluation at step {step}: top1 {100 * m["top1"]:.2f}%  top5 '
          f'{100 * m["top5"]:.2f}%  loss {m["loss"]:.4f}  ({m["num_examples"]} examples); '
          f'checkpoints in {directory}')
