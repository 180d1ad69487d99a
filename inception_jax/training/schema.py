"""The training config schema (ARCHITECTURE.md's table) and its validation.

``base_config()`` holds every field with a type, so ``--config.KEY=VALUE`` works for all of them;
the files in ``configs/`` start from it and set (and cite) their numbers. ``model_overrides`` holds
typed placeholders for the model fields one may want to change from the command line
(``--config.model_overrides.width_multiplier=0.5``); a placeholder left at None means "the
registry's value" and is not passed to the model.
"""

from __future__ import annotations

import math
from typing import Any

import ml_collections
from ml_collections.config_dict import placeholder

from inception_jax.errors import UserError

# Model fields settable from the command line (GoogLeNet and Inception v3 families).
MODEL_OVERRIDE_TYPES: dict[str, type] = {
    'num_classes': int,
    'aux_logits': bool,
    'dropout_rate': float,
    'aux_dropout_rate': float,
    'width_multiplier': float,
    'use_bn': bool,
    'module_kind': str,
    'branch5x5_kernel': int,
    'factorize_5x5': bool,
    'maxpool4_window': int,
    'stem': str,
    'asymmetric_7x7': bool,
    'expanded_3x3': bool,
    'bn_auxiliary': bool,
    'aux_adaptive': bool,
    'bn_momentum': float,
}

PARALLEL_MODES = ('pmap', 'shard_map')
OPTIMIZERS = ('sgd', 'rmsprop', 'adamw')
SCHEDULES = ('staircase_exponential', 'cosine', 'constant')


def base_config() -> ml_collections.ConfigDict:
  """Every field the training system reads, with neutral values (configs/*.py set theirs)."""
  c = ml_collections.ConfigDict()
  c.model = 'googlenet'
  c.model_overrides = ml_collections.ConfigDict(
      {k: placeholder(t) for k, t in MODEL_OVERRIDE_TYPES.items()})
  # Data (read by inception_jax.data).
  c.dataset = 'digits'
  c.data_dir = placeholder(str)
  c.train_split = 'train'
  c.eval_split = 'validation'
  c.image_size = 224
  c.augment = 'inception_crop'
  c.crop_area_range = (0.08, 1.0)
  c.aspect_ratio_range = (3 / 4, 4 / 3)
  c.random_flip = True
  c.eval_crop_fraction = 0.875
  c.normalization = 'inception'
  c.shuffle_buffer = 16_384
  c.seed = 0
  # Length and batch.
  c.global_batch_size = 256
  c.eval_batch_size = 256
  c.num_epochs = 1.0
  c.num_train_steps = 0          # > 0 wins over num_epochs
  c.recipe_source = ''           # the published run the config follows ('' = none cited)
  c.recipe_verified_batch_size = 0  # the largest global batch that run used (0 = none stated);
                                    # a larger batch gets a warning (inception_jax.recipes)
  # Optimiser.
  c.optimizer = 'sgd'
  c.learning_rate = 0.1          # for base_batch_size; scaled linearly with global_batch_size
  c.base_batch_size = 256
  c.lr_schedule = 'constant'
  c.warmup_epochs = 0.0
  c.decay_epochs = 1.0
  c.decay_rate = 1.0
  c.momentum = 0.9
  c.nesterov = False
  c.rmsprop_decay = 0.9
  c.rmsprop_epsilon = 1.0
  c.weight_decay = 0.0
  c.grad_clip_norm = 0.0         # 0 = no clipping
  c.min_learning_rate_fraction = 0.0  # floor of the schedule, as a fraction of the peak rate
                                      # (0 = none; the Cloud TPU Inception v3 run uses 1e-4)
  # Loss.
  c.label_smoothing = 0.0
  c.aux_weight = 0.3
  c.ema_decay = 0.0              # 0 = no Polyak averaging
  # Batch norm (the papers': per-device statistics, exponential running averages).
  c.precise_bn_batches = 0       # > 0: recompute running stats over this many train batches
                                 # before each evaluation (precise BN)
  c.sync_batch_norm = False      # batch statistics averaged across devices in training
  # Execution.
  c.half_precision = False
  c.parallel = 'pmap'
  c.num_devices = 0              # 0 = every device of every process
  c.log_every_steps = 100
  c.eval_every_steps = 0         # 0 = only at the end
  c.checkpoint_every_steps = 1000
  c.keep_checkpoints = 3
  c.init_from = placeholder(str)
  c.tensorboard = True
  return c


def model_overrides(config: Any) -> dict[str, Any]:
  """``config.model_overrides`` without the unset (None) placeholders."""
  overrides = config.get('model_overrides') or {}
  overrides = overrides.to_dict() if hasattr(overrides, 'to_dict') else dict(overrides)
  return {k: v for k, v in overrides.items() if v is not None}


def _number(config, key, *, integer=False, allow_zero=False):
  value = config.get(key)
  if value is None or not isinstance(value, (int, float)) or isinstance(value, bool):
    raise UserError(f'config.{key} must be a number, got {value!r}')
  if not math.isfinite(value) or (value < 0 if allow_zero else value <= 0):
    raise UserError(f'config.{key} must be {"non-negative" if allow_zero else "positive"}, '
                    f'got {value}')
  if integer and int(value) != value:
    raise UserError(f'config.{key} must be a whole number, got {value}')


def _fraction(config, key):
  value = config.get(key, 0.0)
  if (not isinstance(value, (int, float)) or isinstance(value, bool)
      or not 0.0 <= value < 1.0):
    raise UserError(f'config.{key} must be in [0, 1), got {value!r}')


def _choice(config, key, choices):
  if config.get(key) not in choices:
    raise UserError(f'unknown {key} {config.get(key)!r}; choose one of {", ".join(choices)}')


def validate_config(config: Any, *, check_model: bool = True) -> None:
  """One-line UserErrors for values no run can use, before anything expensive happens.

  ``check_model=False`` skips the registry lookup (the caller supplies its own module).
  """
  from inception_jax import models  # pylint: disable=g-import-not-at-top
  if check_model and config.get('model') not in models.available():
    raise UserError(f'unknown model {config.get("model")!r}; choose one of: '
                    f'{", ".join(models.available())}')
  for key in ('global_batch_size', 'eval_batch_size', 'base_batch_size', 'image_size',
              'log_every_steps', 'keep_checkpoints'):
    _number(config, key, integer=True)
  _number(config, 'learning_rate')
  for key in ('checkpoint_every_steps', 'eval_every_steps', 'num_train_steps'):
    _number(config, key, integer=True, allow_zero=True)
  if config.get('precise_bn_batches') is not None:  # absent from configs older than the field
    _number(config, 'precise_bn_batches', integer=True, allow_zero=True)
  for key in ('num_epochs', 'aux_weight', 'weight_decay', 'grad_clip_norm', 'warmup_epochs'):
    _number(config, key, allow_zero=True)
  if not config.num_train_steps and not config.num_epochs:
    raise UserError('set config.num_epochs or config.num_train_steps to a positive value')
  _choice(config, 'optimizer', OPTIMIZERS)
  _choice(config, 'lr_schedule', SCHEDULES)
  _choice(config, 'parallel', PARALLEL_MODES)
  if config.lr_schedule == 'staircase_exponential':
    _number(config, 'decay_epochs')
    _number(config, 'decay_rate')
  for key in ('label_smoothing', 'ema_decay', 'momentum'):
    _fraction(config, key)
  if config.optimizer == 'rmsprop':
    _fraction(config, 'rmsprop_decay')
    _number(config, 'rmsprop_epsilon')
  _number(config, 'num_devices', integer=True, allow_zero=True)
  overrides = model_overrides(config)
  if 'num_classes' in overrides and overrides['num_classes'] <= 0:
    raise UserError(f'model_overrides.num_classes must be positive, got '
                    f'{overrides["num_classes"]}')
