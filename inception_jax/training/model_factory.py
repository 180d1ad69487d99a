"""The one way to build a network from a config: training, restoring and benchmarking agree.

A training config and a checkpoint's metadata name a network with the same fields (``model``,
``model_overrides``, ``num_classes``/``image_size``), so both go through :func:`build_model` and a
checkpoint is restored into exactly the network that trained it.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from inception_jax import models
from inception_jax.errors import UserError
from inception_jax.config import schema
from inception_jax.training import step as step_lib


def build_model(config: Any, *, num_classes: int | None = None, check_input_size: bool = True,
                **fields: Any) -> nn.Module:
  """``models.create(config.model, num_classes=..., **config.model_overrides)``.

  Args:
    config: a training config, or a checkpoint's metadata (a dict with the same field names).
      The compute dtype is bfloat16 with ``half_precision`` and float32 otherwise (metadata has no
      such field, so a restored network computes in float32); ``sync_batch_norm`` names the
      batch axis for the BatchNorm layers.
    num_classes: the classes of the data (default ``config['num_classes']``);
      ``model_overrides.num_classes`` may ask for more outputs, not fewer.
    check_input_size: raise a UserError when ``config.image_size`` is below what the network
      takes (off for a checkpoint, which is evaluated at the size one asks for).
    **fields: model fields that no config holds (a tool's own choices), passed on as they are.
  """
  name = config['model']
  num_classes = int(config['num_classes'] if num_classes is None else num_classes)
  overrides = schema.model_overrides(config)
  overrides.pop('dtype', None)  # only half_precision decides it
  overrides.setdefault('num_classes', num_classes)
  if overrides['num_classes'] < num_classes:
    raise UserError(f'model_overrides.num_classes={overrides["num_classes"]} is smaller than the '
                    f'{num_classes} classes of dataset {config.get("dataset")!r}')
  if config.get('half_precision'):
    overrides['dtype'] = jnp.bfloat16
  if config.get('sync_batch_norm'):
    overrides['bn_axis_name'] = step_lib.AXIS_NAME
  model = models.create(name, **overrides, **fields)
  if check_input_size:
    size = config['image_size']
    models.check_input_size(model, size, f'image_size={size}', name,
                            fix='raise config.image_size')
  return model
