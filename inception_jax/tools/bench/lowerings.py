"""``--plain``: which of this package's layer lowerings the benchmarked model runs plain.

The plain Flax/XLA code computes the same numbers, so the difference between the two figures is
what a lowering is worth on this machine. The choice reaches the benchmarked model alone: every
other model in the process keeps the backend's own lowering.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
  from inception_jax.lowering import Lowering

# --plain choices -> the fields of the backend's Lowering that take lowering.plain()'s values
# (the first one says whether that part is on; Winograd is one of FastConv's lowerings).
PLAIN_SWITCHES = {'conv': ('conv', 'winograd'), 'norm': ('norm',),
                  'pool': ('max_pool', 'sliced_eval_pool'), 'winograd': ('winograd',)}
PLAIN_CHOICES = tuple(PLAIN_SWITCHES)


def lowering_for(plain: Sequence[str], network: str) -> Lowering:
  """This backend's ``lowering.Lowering`` for ``network`` (a model's ``label``) with the parts
  named in ``plain`` (``--plain``) made plain; a new value, so nothing else in the process
  changes."""
  from inception_jax import lowering  # pylint: disable=g-import-not-at-top
  base = lowering.plain()
  fields = {f: getattr(base, f) for name in plain for f in PLAIN_SWITCHES[name]}
  return dataclasses.replace(lowering.for_backend(network=network), **fields)


def lowering_names(value: Lowering) -> dict[str, str]:
  """Which code each layer runs under the Lowering ``value``, for the report."""
  from inception_jax import lowering  # pylint: disable=g-import-not-at-top
  base = lowering.plain()

  def name(cls) -> str:
    package = getattr(cls, '__module__', '').startswith('inception_jax.lowering')
    return ('lowering.' if package else '') + getattr(cls, '__qualname__', repr(cls))

  pool = 'lowering.max_pool gather-form gradient'
  if value.sliced_eval_pool:
    pool += ', sliced eval forward'
  names = {'conv': (name(value.conv), 'nn.Conv'), 'norm': (name(value.norm), 'nn.BatchNorm'),
           'pool': (pool, 'autodiff of reduce_window'),
           'winograd': ('lowering.winograd_conv3x3 for wide 3x3s', 'no Winograd')}
  on = {k: getattr(value, PLAIN_SWITCHES[k][0]) != getattr(base, PLAIN_SWITCHES[k][0])
        for k in PLAIN_CHOICES}
  return {k: names[k][not on[k]] for k in PLAIN_CHOICES}
