"""The report's PNG plots (matplotlib is imported only when one is drawn)."""

from __future__ import annotations

from typing import Sequence

from inception_jax.tools.report.collection import Variant
from inception_jax.tools.report.runs import finite
from inception_jax.tools.report.tables import human


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
      if finite(point[index]):
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


def macs_plot_skipped(variants: Sequence[Variant]) -> str | None:
  """Why accuracy_vs_macs.png would say nothing (None: draw it): it needs variants with a final
  evaluation and at least two different MACs (equal ones would be labels printed over each
  other)."""
  macs = {v.first('macs') for v in variants
          if v.first('macs') is not None and v.stat('final_top1')[0] is not None}
  if not macs:
    return 'no variant has both MACs and a final evaluation'
  if len(macs) == 1:
    return f'every variant has the same MACs ({human(next(iter(macs)))}) per image'
  return None
