"""The training config schema (ARCHITECTURE.md's table) and its validation.

``base_config()`` holds every field with a type, so ``--config.KEY=VALUE`` works for all of them;
the files in ``configs/`` start from it and set (and cite) their numbers. ``model_overrides`` holds
typed placeholders for every registered model's settable fields (``models.override_types()``,
read from the modules' annotations: ``--config.model_overrides.width_multiplier=0.5``); a
placeholder left at None means "the registry's value" and is not passed to the model.

Importing this module loads no JAX (configs import it); ``base_config()`` does, through the model
registry, the first time it is called.
"""

from __future__ import annotations

import math
import numbers
import re
from typing import Any

import ml_collections
from ml_collections.config_dict import placeholder

from inception_jax.errors import UserError

PARALLEL_MODES = ('pmap', 'shard_map')
OPTIMIZERS = ('sgd', 'rmsprop', 'adamw')
SCHEDULES = ('staircase_exponential', 'cosine', 'constant')
AUGMENTATIONS = ('inception_crop', 'resize', 'pad_and_crop')    # inception_jax.data.preprocessing
NORMALIZATIONS = ('inception', 'imagenet')
DATASET_NAMING_HELP = (
    "use 'digits' (bundled, offline), a TFDS image-classification name such as 'imagenet2012', "
    "'cifar10' or 'mnist', or 'folder:/path' (class sub-folders under train/ and validation/)")


def model_override_types() -> dict[str, type]:
  """The ``model_overrides`` keys and their types: the registered models' fields, at call time
  (so a model registered before the config is built has its fields settable too)."""
  from inception_jax import models  # pylint: disable=g-import-not-at-top
  return models.override_types()


def base_config() -> ml_collections.ConfigDict:
  """Every field the training system reads, with neutral values (configs/*.py set theirs).

  A table, built afresh by each call (a placeholder must not be shared between two configs).
  """
  return ml_collections.ConfigDict({
      'model': 'googlenet',
      'model_overrides': ml_collections.ConfigDict(
          {k: placeholder(t) for k, t in sorted(model_override_types().items())}),
      # Data (read by inception_jax.data).
      'dataset': 'digits',
      'data_dir': placeholder(str),
      'train_split': 'train',
      'eval_split': 'validation',
      'image_size': 224,
      'augment': 'inception_crop',
      'crop_area_range': (0.08, 1.0),
      'aspect_ratio_range': (3 / 4, 4 / 3),
      'crop_padding': 4,              # pixels of shift each way for augment 'pad_and_crop'
      'random_flip': True,
      'eval_crop_fraction': 0.875,
      'normalization': 'inception',
      'uint8_images': True,           # batches carry uint8 pixels, normalised on the device
                                      # (False: normalised floats from the host)
      'shuffle_buffer': 16_384,
      'seed': 0,
      'data_service': '',             # HOST:PORT of a tf.data service dispatcher: training
                                      # examples decoded on its workers ('' = here)
      # Length and batch.
      'global_batch_size': 256,
      'eval_batch_size': 256,
      'num_epochs': 1.0,
      'num_train_steps': 0,           # > 0 wins over num_epochs
      'recipe_source': '',            # the published run the config follows ('' = none cited)
      'recipe_verified_batch_size': 0,  # the largest global batch that run used (0 = none stated);
                                        # a larger batch gets a warning (inception_jax.config.recipes)
      # Optimiser.
      'optimizer': 'sgd',
      'learning_rate': 0.1,           # for base_batch_size; scaled linearly with global_batch_size
      'base_batch_size': 256,
      'lr_schedule': 'constant',
      'warmup_epochs': 0.0,
      'decay_epochs': 1.0,
      'decay_rate': 1.0,
      'momentum': 0.9,
      'nesterov': False,
      'rmsprop_decay': 0.9,
      'rmsprop_epsilon': 1.0,
      'weight_decay': 0.0,
      'grad_clip_norm': 0.0,          # 0 = no clipping
      'min_learning_rate_fraction': 0.0,  # floor of the schedule, as a fraction of the peak rate
                                          # (0 = none; the Cloud TPU Inception v3 run uses 1e-4)
      # Loss.
      'label_smoothing': 0.0,
      'aux_weight': 0.3,              # GoogLeNet paper, Section 5 (a config states its own)
      'ema_decay': 0.0,               # 0 = no Polyak averaging
      # Batch norm (the papers': per-device statistics, exponential running averages).
      'precise_bn_batches': 0,        # > 0: recompute running stats over this many train batches
                                      # before each evaluation (precise BN)
      'sync_batch_norm': False,       # batch statistics averaged across devices in training
      # Execution.
      'half_precision': False,
      'parallel': 'pmap',
      'num_devices': 0,               # 0 = every device of every process
      'log_every_steps': 100,
      'eval_every_steps': 0,          # 0 = only at the end
      'checkpoint_every_steps': 1000,
      'keep_checkpoints': 3,
      'init_from': placeholder(str),
      'freeze_backbone': False,       # train only fc and the aux classifiers (training/optimizers.py)
      'tensorboard': True,
  })


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


def _integer(config, key, minimum=None):
  value = config.get(key)
  if (isinstance(value, bool) or not isinstance(value, numbers.Integral)
      or (minimum is not None and value < minimum)):
    kind = {None: 'an integer', 0: 'a non-negative integer', 1: 'a positive integer'}.get(
        minimum, f'an integer >= {minimum}')
    raise UserError(f'config.{key} must be {kind}, got {value!r}')


def _range(config, key, low, high):
  """A pair (lo, hi) with low < lo <= hi (<= high when given)."""
  value = config.get(key)
  try:
    lo, hi = (float(v) for v in value)
  except (TypeError, ValueError):
    raise UserError(f'config.{key} must be a pair (low, high), got {value!r}') from None
  if not (low < lo <= hi and (high is None or hi <= high)):
    bound = f'<= {high}' if high is not None else ''
    raise UserError(f'config.{key}={value!r} must satisfy {low} < low <= high {bound}'.rstrip())


def _check_data(config):
  """The input pipeline's fields (inception_jax.data reads them unchecked)."""
  dataset = config.get('dataset')
  if not isinstance(dataset, str) or not dataset.strip():
    raise UserError(f'config.dataset must be a non-empty string: {DATASET_NAMING_HELP}')
  _choice(config, 'augment', AUGMENTATIONS)
  _choice(config, 'normalization', NORMALIZATIONS)
  _range(config, 'crop_area_range', 0.0, 1.0)
  _range(config, 'aspect_ratio_range', 0.0, None)
  if config.get('crop_padding') is not None:  # absent from configs older than the field
    _integer(config, 'crop_padding', minimum=0)
  fraction = config.get('eval_crop_fraction')
  if not isinstance(fraction, numbers.Real) or not 0.0 < fraction <= 1.0:
    raise UserError(f'config.eval_crop_fraction must be in (0, 1], got {fraction!r}')
  _integer(config, 'shuffle_buffer', minimum=1)
  _integer(config, 'seed')
  service = config.get('data_service') or ''
  if not isinstance(service, str) or (service and not re.fullmatch(
      r'(grpc://)?(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):\d{1,5}', service.strip())):
    raise UserError(f'config.data_service must be HOST:PORT of a tf.data service dispatcher '
                    f"(or '' for none), got {service!r}")


def validate_config(config: Any, *, check_model: bool = True) -> None:
  """One-line UserErrors for values no run can use, before anything expensive happens.

  Every entry point that takes a config calls it (train.py's loop, the plan, evaluation); the
  parts of the system after it read the fields directly. ``check_model=False`` skips the registry
  lookup (the caller supplies its own module).
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
  if not isinstance(config.get('freeze_backbone', False), bool):
    raise UserError(f'config.freeze_backbone must be True or False, got '
                    f'{config.get("freeze_backbone")!r}')
  overrides = model_overrides(config)
  if 'num_classes' in overrides and overrides['num_classes'] <= 0:
    raise UserError(f'model_overrides.num_classes must be positive, got '
                    f'{overrides["num_classes"]}')
  _check_data(config)


# ----------------------------------------------------------------------------- the run's shape


def local_batch_size(config: Any, key: str, *, num_processes: int,
                     num_devices: int | None = None) -> int:
  """This process's share of ``config[key]`` (a global batch); a UserError unless it splits
  evenly over ``num_devices`` (a multiple of ``num_processes``) and over the processes."""
  batch = int(config[key])
  for count, what in ((num_devices, 'devices'), (num_processes, 'processes')):
    if count and batch % count:
      raise UserError(f'{key}={batch} is not divisible by the {count} {what}; use a multiple '
                      f'of {count}')
  return batch // num_processes


def steps_per_epoch(config: Any, num_train_examples: int, num_processes: int) -> int:
  """Full training batches per epoch: each process's share of the train split over its share
  of the batch (the remainder is dropped); a UserError when not one batch fits."""
  local = local_batch_size(config, 'global_batch_size', num_processes=num_processes)
  steps = (num_train_examples // num_processes) // local
  if steps <= 0:
    raise UserError(f'global_batch_size={config.global_batch_size} is larger than the train '
                    f'split ({num_train_examples} examples); use a smaller batch')
  return steps
