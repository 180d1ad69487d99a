"""Model registry: ``create(name, **overrides)`` builds a configured Flax module by name.

Variants are data: each registry entry (``registry.ModelSpec``, registered by its model's file)
is a model class with some fields fixed, plus what the tools need to know about it (input size,
normalisation, aux-loss weight, torchvision counterpart and weight layout); overrides replace any
field (``create('googlenet', num_classes=10, aux_logits=False)``). ``register(name, spec)`` adds a
model. Every model follows the contract in ARCHITECTURE.md::

  out = model.apply(variables, images, train=False)       # out.logits [B, classes], float32
  out, updates = model.apply(variables, images, train=True,
                             rngs={'dropout': key}, mutable=['batch_stats'])
  out.aux_logits                                           # {'aux1', 'aux2'} / {'aux'} in training
"""

from __future__ import annotations

import flax.linen as nn

from inception_jax.errors import UserError
from inception_jax.models.contract import ModelOutput
# Importing a model's file registers its entries.
from inception_jax.models.googlenet import GoogLeNet
from inception_jax.models.inception_v3 import InceptionV3
from inception_jax.models.init import init_variables
from inception_jax.models.layers import BN_MOMENTUM
from inception_jax.models.registry import (
    ModelSpec, TorchvisionLayout, available, config_fields, create, describe, model_class,
    override_types, register, spec, unregister)


def check_input_size(model: nn.Module, size: int, setting: str, name: str, fix: str = '') -> None:
  """Raise a UserError, before anything is traced, when ``size`` px is below what ``model``
  takes (``min_input_size``); ``setting`` names where the size came from (``image_size=32``)."""
  minimum = model.min_input_size()
  if size < minimum:
    raise UserError(f'{setting} is too small for {name}: it needs at least {minimum} px'
                    + (f'; {fix}' if fix else ''))


__all__ = ['BN_MOMENTUM', 'GoogLeNet', 'InceptionV3', 'ModelOutput', 'ModelSpec',
           'TorchvisionLayout', 'available', 'check_input_size', 'config_fields', 'create',
           'describe', 'init_variables', 'model_class', 'override_types', 'register', 'spec',
           'unregister']
