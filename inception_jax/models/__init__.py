"""Model registry: ``create(name, **overrides)`` builds a configured Flax module by name.

Variants are data: each registry entry is a model class with some fields fixed, and overrides
replace any field (``create('googlenet', num_classes=10, aux_logits=False)``). Every model follows
the contract in ARCHITECTURE.md::

  out = model.apply(variables, images, train=False)       # out.logits [B, classes], float32
  out, updates = model.apply(variables, images, train=True,
                             rngs={'dropout': key}, mutable=['batch_stats'])
  out.aux_logits                                           # {'aux1', 'aux2'} / {'aux'} in training
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import flax.linen as nn

from inception_jax.errors import UserError
from inception_jax.models.googlenet import GoogLeNet
from inception_jax.models.inception_v3 import InceptionV3
from inception_jax.models.init import init_variables
from inception_jax.models.layers import BN_MOMENTUM, ModelOutput

# name -> (constructor, one-line description). Field values here are what makes each variant.
_REGISTRY: dict[str, tuple[Callable[..., nn.Module], str]] = {
    'googlenet': (
        functools.partial(GoogLeNet, branch5x5_kernel=5, dropout_rate=0.4, maxpool4_window=3),
        'GoogLeNet as in the paper (5x5 branch, 3x3/2 pool4, dropout 0.4) with batch norm'),
    'googlenet_tv': (
        functools.partial(GoogLeNet, branch5x5_kernel=3, dropout_rate=0.2, maxpool4_window=2),
        "torchvision's GoogLeNet layout (3x3 '5x5' branch, 2x2/2 pool4, dropout 0.2), BN"),
    'googlenet_2014': (
        functools.partial(GoogLeNet, branch5x5_kernel=5, dropout_rate=0.4, maxpool4_window=3,
                          use_bn=False),
        'the 2014 GoogLeNet: no batch norm, conv biases and LRN in the stem'),
    'inception_v3': (
        InceptionV3, 'Inception v3 as released (torchvision / TF-slim layout), dropout 0.5'),
}


def available() -> list[str]:
  """Registered model names, sorted."""
  return sorted(_REGISTRY)


def describe() -> dict[str, str]:
  """Registered model names with a one-line description."""
  return {name: _REGISTRY[name][1] for name in available()}


def _model_class(factory: Callable[..., nn.Module]) -> type[nn.Module]:
  return factory.func if isinstance(factory, functools.partial) else factory


def config_fields(name: str) -> list[str]:
  """Fields a registry entry accepts as overrides (Flax's own ``parent``/``name`` excluded)."""
  cls = _model_class(_lookup(name))
  return sorted(f.name for f in dataclasses.fields(cls)
                if f.init and f.name not in ('parent', 'name'))


def _lookup(name: str) -> Callable[..., nn.Module]:
  if name not in _REGISTRY:
    raise UserError(f'unknown model {name!r}; choose one of: {", ".join(available())}')
  return _REGISTRY[name][0]


def create(name: str, **overrides: Any) -> nn.Module:
  """Build registry entry ``name`` with some fields overridden; bad names raise UserError."""
  factory = _lookup(name)
  valid = config_fields(name)
  unknown = sorted(set(overrides) - set(valid))
  if unknown:
    raise UserError(f'unknown override {", ".join(map(repr, unknown))} for model {name!r}; '
                    f'valid keys: {", ".join(valid)}')
  model = factory(**overrides)
  model.check_config()
  return model


def check_input_size(model: nn.Module, size: int, setting: str, name: str, fix: str = '') -> None:
  """Raise a UserError, before anything is traced, when ``size`` px is below what ``model``
  takes (``min_input_size``); ``setting`` names where the size came from (``image_size=32``)."""
  minimum = model.min_input_size()
  if size < minimum:
    raise UserError(f'{setting} is too small for {name}: it needs at least {minimum} px'
                    + (f'; {fix}' if fix else ''))


__all__ = ['BN_MOMENTUM', 'ModelOutput', 'available', 'check_input_size', 'config_fields', 'create', 'describe',
           'init_variables']
