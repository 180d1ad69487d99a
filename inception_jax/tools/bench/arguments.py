"""The benchmark's command-line flags, checked at parse time so that a bad value fails in a line,
before minutes of compilation."""

from __future__ import annotations

import argparse
import ast
from typing import Any, Sequence

from inception_jax import errors
from inception_jax.errors import UserError
from inception_jax.tools.bench.lowerings import PLAIN_CHOICES

DESCRIPTION = ('Training and evaluation speed of a model, side by side with torchvision on the '
               'same machine.')


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
  """The flags of ``python -m inception_jax.tools.bench`` (the package docstring explains them)."""
  p = errors.ArgumentParser(prog='python -m inception_jax.tools.bench',
                            description=DESCRIPTION,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--model', default='googlenet_tv', help='registry name (default googlenet_tv)')
  p.add_argument('--batch', type=int, default=32)
  p.add_argument('--size', type=int, default=224, help='square image side in pixels')
  p.add_argument('--steps', type=int, default=10, help='timed steps (median/min/max over them)')
  p.add_argument('--warmup', type=int, default=2, help='untimed steps after compilation')
  p.add_argument('--half', action='store_true', help='bfloat16 compute (parameters float32)')
  p.add_argument('--compare', choices=('torchvision',), default=None)
  p.add_argument('--json', default=None, help='write all figures to this file')
  p.add_argument('--set', action='append', default=[], metavar='KEY=VALUE',
                 help='model override, e.g. --set width_multiplier=0.5 (repeatable)')
  p.add_argument('--num-classes', type=int, default=1000)
  p.add_argument('--aux-weight', type=float, default=None,
                 help="default: the training system's (schema.base_config().aux_weight)")
  p.add_argument('--plain', action='append', default=[], choices=PLAIN_CHOICES,
                 help="run a layer's plain Flax/XLA code instead of this package's lowering "
                 '(same numbers): conv = nn.Conv for FastConv, norm = nn.BatchNorm for '
                 "FastBatchNorm, pool = reduce_window and its autodiff for max_pool, "
                 "winograd = direct convolutions for FastConv's wide 3x3s (repeatable)")
  p.add_argument('--plain-conv', action='append_const', const='conv', dest='plain',
                 help='the same as --plain conv')
  p.add_argument('--init', choices=('fast', 'train_state'), default='fast',
                 help="fast: models.init_variables; train_state: the training system's "
                 'create_train_state (jit of model.init)')
  p.add_argument('--pipeline-only', action='store_true',
                 help='only the input pipeline of --config=FILE on --config.data_dir, no model '
                      '(see python -m inception_jax.tools.bench --pipeline-only --helpfull)')
  p.add_argument('--pipeline', choices=('folder', 'digits', 'none'), default='folder')
  p.add_argument('--pipeline-batches', type=int, default=8)
  p.add_argument('--loop', action='store_true', help='also time the whole training loop')
  p.add_argument('--no-eval', action='store_true', help='skip the evaluation step')
  p.add_argument('--peak-size', type=int, default=None,
                 help='side of the square matrix product that measures the peak '
                 '(default 3072 on CPU, 8192 on GPU)')
  p.add_argument('--threads', type=int, default=None,
                 help='torch threads for --compare (default: the CPUs this process may use)')
  p.add_argument('--allocator', choices=('system', 'tcmalloc', 'jemalloc'), default='system',
                 help='re-run with this malloc preloaded (Linux; see the module docstring)')
  p.add_argument('--xla-flags', default='',
                 help="appended to XLA_FLAGS (opt-in tuning); write --xla-flags='--flag=value'")
  args = p.parse_args(argv)
  for name in ('batch', 'size', 'steps', 'num_classes', 'pipeline_batches'):
    if getattr(args, name) < 1:
      raise UserError(f'--{name.replace("_", "-")} must be >= 1 (got {getattr(args, name)})')
  if args.warmup < 0:
    raise UserError(f'--warmup must be >= 0 (got {args.warmup})')
  return args


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
  """``--set KEY=VALUE`` items as model overrides, each value a Python literal where it parses
  (``width_multiplier=0.5`` a float) and a string otherwise, so that numbers need no quoting."""
  out = {}
  for item in items:
    if '=' not in item:
      raise UserError(f'--set expects KEY=VALUE, got {item!r}')
    key, value = item.split('=', 1)
    try:
      out[key.strip()] = ast.literal_eval(value)
    except (ValueError, SyntaxError):
      out[key.strip()] = value
  return out
