"""``python -m inception_jax.tools.summary``: parameters and multiply-adds per module.

    python -m inception_jax.tools.summary --model googlenet_tv
    python -m inception_jax.tools.summary --model inception_v3 --set aux_logits=False --json
    python -m inception_jax.tools.summary --model googlenet --naive-vs-reduced

The counting: :mod:`inception_jax.models.summary`.
"""

from __future__ import annotations

import ast
import json
import sys
from typing import Any, Sequence

from inception_jax import errors
from inception_jax import models
from inception_jax.models.summary import naive_vs_reduced, summarize


def _parse_value(text: str) -> Any:
  """``--set`` values: Python literals (``10``, ``False``, ``0.5``, ``'7x7'``) or bare strings."""
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def _parse_overrides(items: Sequence[str]) -> dict[str, Any]:
  overrides = {}
  for item in items:
    key, sep, value = item.partition('=')
    if not sep or not key:
      raise errors.UserError(f'--set takes key=value (got {item!r}), e.g. --set aux_logits=False')
    overrides[key.strip()] = _parse_value(value.strip())
  return overrides


def _human(n: float) -> str:
  for unit, scale in (('G', 1e9), ('M', 1e6), ('K', 1e3)):
    if abs(n) >= scale:
      return f'{n / scale:.4g} {unit}'
  return str(int(n))


def _print_table(name: str, summary: dict[str, Any]) -> None:
  print(f"{name} at {summary['size']}x{summary['size']} px: parameters and multiply-adds per image")
  print(f"{'module':<22}{'output (HxWxC)':>18}{'params':>14}{'MACs':>16}")
  for row in summary['rows']:
    shape = 'x'.join(map(str, row['output_shape']))
    label = row['name'] + (' (train)' if row['aux'] else '')
    print(f"{label:<22}{shape:>18}{row['params']:>14,}{row['macs']:>16,}")
  print(f"{'total (inference)':<22}{'':>18}{summary['params_without_aux']:>14,}"
        f"{summary['total_macs']:>16,}   ({_human(summary['total_macs'])}MACs)")
  if summary['aux_params']:
    print(f"{'aux heads':<22}{'':>18}{summary['aux_params']:>14,}{summary['aux_macs']:>16,}")
    print(f"{'total with aux heads':<22}{'':>18}{summary['total_params']:>14,}"
          f"{summary['total_macs'] + summary['aux_macs']:>16,}")


def _print_naive(name: str, size: int, rows: list[dict[str, Any]]) -> None:
  print(f'{name} at {size}x{size} px: naive Inception modules (Fig. 2a) vs with 1x1 reductions '
        '(Fig. 2b), same input and filter counts')
  print(f"{'module':<13}{'input':>12}{'naive params':>14}{'reduced':>12}{'naive MACs':>16}"
        f"{'reduced':>15}{'MACs x':>8}{'naive out C':>12}")
  for r in rows:
    print(f"{r['name']:<13}{'x'.join(map(str, r['input_shape'])):>12}{r['naive_params']:>14,}"
          f"{r['reduced_params']:>12,}{r['naive_macs']:>16,}{r['reduced_macs']:>15,}"
          f"{r['macs_ratio']:>8.2f}{r['naive_output_shape'][-1]:>12}")
  tn, tr = sum(r['naive_macs'] for r in rows), sum(r['reduced_macs'] for r in rows)
  pn, pr = sum(r['naive_params'] for r in rows), sum(r['reduced_params'] for r in rows)
  print(f"{'all modules':<13}{'':>12}{pn:>14,}{pr:>12,}{tn:>16,}{tr:>15,}{tn / tr:>8.2f}")


def main(argv: Sequence[str] | None = None) -> int:
  parser = errors.ArgumentParser(
      prog='python -m inception_jax.tools.summary',
      description='Parameters and multiply-adds per module of a registered model.')
  parser.add_argument('--model', required=True, help=f'one of: {", ".join(models.available())}')
  parser.add_argument('--size', type=int, default=None,
                      help='square input side in pixels (default 224; 299 for inception_v3)')
  parser.add_argument('--set', action='append', default=[], metavar='KEY=VALUE',
                      help='model override, repeatable (e.g. --set aux_logits=False)')
  parser.add_argument('--json', action='store_true', help='print one JSON object')
  parser.add_argument('--naive-vs-reduced', action='store_true',
                      help='GoogLeNet: what the 1x1 reductions save, module by module')
  args = parser.parse_args(argv)

  model = models.create(args.model, **_parse_overrides(args.set))
  size = args.size or models.spec(args.model).default_input_size
  if size < 1:
    raise errors.UserError(f'--size must be positive (got {size})')
  minimum = model.min_input_size()
  if size < minimum:
    trunk = getattr(model, 'trunk_min_size', lambda: minimum)()
    hint = ('raise --size, or --set aux_adaptive=True or aux_logits=False' if size >= trunk
            else 'raise --size')
    raise errors.UserError(f'{args.model} needs images of at least {minimum}x{minimum} pixels '
                           f'(got {size}x{size}); {hint}')
  summary = summarize(model, size)
  summary['model'] = args.model
  if args.naive_vs_reduced:
    summary['naive_vs_reduced'] = naive_vs_reduced(model, size)
  if args.json:
    print(json.dumps(summary))
  else:
    _print_table(args.model, summary)
    if args.naive_vs_reduced:
      print()
      _print_naive(args.model, size, summary['naive_vs_reduced'])
  return 0


if __name__ == '__main__':
  errors.run_cli(lambda: sys.exit(main()))
