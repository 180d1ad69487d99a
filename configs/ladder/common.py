"""Shared pieces of the Table 3 ladder configs (``configs/ladder/NN_*.py``); not a config itself.

Every row file loads the row before it (or, for rows 1 and 4, a project recipe), applies its
``CHANGES`` and records the paper's numbers in ``config.paper``. ``paper`` is the only field the
training system does not read; it travels into the run's config.json, from where
``python -m inception_jax.report`` shows the paper's error next to the run's.
"""

from __future__ import annotations

import os
from typing import Any

import ml_collections

from inception_jax import sweep

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT_CONFIGS = os.path.dirname(HERE)
TABLE = 'Rethinking the Inception Architecture (Szegedy et al. 2016), Table 3'
OPTIONS = ('imagenet', 'digits')


def dataset_option(arg: str | None) -> str:
  """``'imagenet'`` (default: the paper's setting) or ``'digits'`` (an offline smoke run)."""
  options = sweep.parse_arg(arg, OPTIONS, default=('imagenet',))
  if len(options) != 1:
    raise ValueError('choose one of imagenet, digits')
  return options.pop()


def recipe(name: str) -> ml_collections.ConfigDict:
  """A project recipe from configs/ (``googlenet_imagenet``, ``inception_v3_imagenet``)."""
  return sweep.load_config_file(f'{name}.py', relative_to=PROJECT_CONFIGS)


def previous(row_file: str, arg: str | None) -> ml_collections.ConfigDict:
  """The config of another row, with the same dataset option."""
  return sweep.load_config_file(f'{row_file}:{dataset_option(arg)}', relative_to=HERE)


def digits_smoke(c: ml_collections.ConfigDict, *, image_size: int,
                 width_multiplier: float) -> ml_collections.ConfigDict:
  """The row's recipe on the offline digits data for a few epochs (a pipeline check, not a
  result): the quick start's data settings (configs/default.py), a narrow network, no EMA."""
  c.dataset = 'digits'
  c.data_dir = None
  c.train_split, c.eval_split = 'train', 'validation'
  c.image_size = image_size
  c.augment = 'resize'
  c.random_flip = False
  c.eval_crop_fraction = 1.0
  c.shuffle_buffer = 2048
  c.global_batch_size = 64
  c.eval_batch_size = 120           # divides the 360 validation digits
  c.num_epochs = 4.0
  c.num_train_steps = 0
  c.warmup_epochs = 1.0
  c.ema_decay = 0.0
  c.model_overrides.width_multiplier = width_multiplier
  c.log_every_steps = 22
  c.eval_every_steps = 44
  c.checkpoint_every_steps = 44
  c.keep_checkpoints = 2
  return c


def finish(c: ml_collections.ConfigDict, changes: dict[str, Any], *, row: str, top1_error: float,
           top5_error: float | None, cost_bn_ops: float, where: str
           ) -> ml_collections.ConfigDict:
  """Applies the row's ``changes`` (dotted fields) and records the paper's numbers."""
  c = sweep.apply_overrides(c, changes, where)
  with c.unlocked():
    c.paper = ml_collections.ConfigDict(dict(
        row=row, top1_error=top1_error, top5_error=top5_error, cost_bn_ops=cost_bn_ops,
        table=TABLE))
  return c
