"""What every model returns, and the checks every model runs on its settings and inputs.

The checks raise at trace time (so also under ``jax.eval_shape``) a ``UserError`` that names the
model's own argument to change; callers that know where a value came from (a training config,
a command-line flag) check it before tracing and say so themselves.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax
import jax
import numpy as np

from inception_jax import lowering as lowering_lib
from inception_jax.errors import UserError
from inception_jax.lowering import Lowering

Array = jax.Array


@flax.struct.dataclass
class ModelOutput:
  """Main logits and the auxiliary heads' logits by name.

  ``aux_logits`` is empty unless the aux heads ran (training, or ``return_aux=True``); names are
  ``aux1``/``aux2`` (GoogLeNet, after 4a/4d) and ``aux`` (Inception v3, after Mixed_6e).
  All logits are float32 whatever the compute dtype.
  """

  logits: Array
  aux_logits: dict[str, Array]


def check_config(model_name: str, num_classes: int, width_multiplier: float) -> None:
  """Reject settings no input could fix."""
  if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
    raise UserError(f'{model_name} needs num_classes >= 1 (got {num_classes!r})')
  if not width_multiplier > 0:
    raise UserError(f'{model_name} needs width_multiplier > 0 (got {width_multiplier!r}); '
                    '1.0 is the published architecture')


def check_choice(model_name: str, field: str, value: Any, choices: Sequence[Any]) -> None:
  """Reject a switch value outside its documented choices."""
  if value not in choices:
    raise UserError(f'{model_name}: {field} must be one of '
                    f'{", ".join(repr(c) for c in choices)} (got {value!r})')


def check_lowering(model_name: str, lowering: Any) -> None:
  """``lowering`` is a :class:`~inception_jax.lowering.Lowering` or None (the backend's own)."""
  if lowering is not None and not isinstance(lowering, Lowering):
    raise UserError(f'{model_name}: lowering must be an inception_jax.lowering.Lowering or None '
                    f'(got {lowering!r})')


def chosen_lowering(network: str, lowering: Lowering | None) -> Lowering:
  """The lowering a network hands to all of its layers: its own ``lowering`` field, or when None
  the current backend's choice for ``network`` (the model's ``label``), looked up once, at trace
  time."""
  return lowering if lowering is not None else lowering_lib.for_backend(network=network)


def check_images(model_name: str, images: Array, min_size: int, fix: str = 'use larger images'
                 ) -> None:
  """Reject inputs the architecture cannot take, naming the minimum side and ``fix``."""
  if images.ndim != 4:
    raise UserError(f'{model_name} takes NHWC image batches [batch, height, width, 3] '
                    f'(got shape {tuple(images.shape)})')
  h, w, c = images.shape[1:]
  if c != 3:
    raise UserError(f'{model_name} takes 3-channel RGB images (got {c} channels in NHWC shape '
                    f'{tuple(images.shape)}); convert the images to RGB')
  if h < min_size or w < min_size:
    raise UserError(f'{model_name} needs images of at least {min_size}x{min_size} pixels '
                    f'(got {h}x{w}); {fix}')


__all__ = ['ModelOutput', 'check_choice', 'check_config', 'check_images', 'check_lowering',
           'chosen_lowering']
