"""Shared pieces of the Table 3 ladder configs (``configs/ladder/NN_*.py``); not a config itself.

Every row file loads the row before it (or, for rows 1 and 4, a project recipe), applies its
``CHANGES`` and records the paper's numbers in ``config.paper``. ``paper`` is the only field the
training system does not read; it travels into the run's config.json, from where
``python -m inception_jax.tools.report`` shows the paper's error next to the run's.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import ml_collections

from inception_jax import config_loading

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT_CONFIGS = os.path.dirname(HERE)
TABLE = 'Rethinking the Inception Architecture (Szegedy et al. 2016), Table 3'

# The smoke run takes the quick start's data and cadence settings (configs/default.py)...
QUICK_START_FIELDS = ('dataset', 'data_dir', 'train_split', 'eval_split', 'augment',
                      'random_flip', 'eval_crop_fraction', 'shuffle_buffer', 'global_batch_size',
                      'num_train_steps', 'warmup_epochs', 'ema_decay', 'log_every_steps',
                      'keep_checkpoints')
# ...and is shorter, evaluated and saved every 2 epochs.
SMOKE = {
    'eval_batch_size': 120,           # divides the 360 validation digits
    'num_epochs': 4.0,
    'eval_every_steps': 44,
    'checkpoint_every_steps': 44,
}


def dataset_option(arg: str | None) -> str:
  """``'imagenet'`` (default: the paper's setting) or ``'digits'`` (an offline smoke run)."""
  return config_loading.dataset_option(arg, default='imagenet')[0]


def digits_smoke(c: ml_collections.ConfigDict, *, image_size: int, **model_overrides: Any
                 ) -> ml_collections.ConfigDict:
  """The row's recipe on the offline digits data for a few epochs (a pipeline check, not a
  result): the quick start's data settings, a narrow network (``model_overrides``), no EMA."""
  quick = config_loading.load_config_file('default.py', relative_to=PROJECT_CONFIGS)
  changes = {key: quick[key] for key in QUICK_START_FIELDS}
  changes.update(SMOKE, image_size=image_size)
  changes.update({f'model_overrides.{k}': v for k, v in model_overrides.items()})
  return config_loading.apply_overrides(c, changes, 'the digits smoke run')


def row(row_file: str, changes: dict[str, Any], *, previous: str | None = None,
        recipe: str | None = None, digits: dict[str, Any] | None = None, **paper: Any
        ) -> Callable[[str | None], ml_collections.ConfigDict]:
  """The ``get_config(arg)`` of a row: the ``previous`` row's config with the same ``arg``, or a
  project ``recipe`` (on digits: :func:`digits_smoke` with ``digits``), plus ``changes``, and
  the paper's numbers (``row``, ``top1_error``, ``top5_error``, ``cost_bn_ops``) in ``paper``."""
  where = os.path.splitext(os.path.basename(row_file))[0]

  def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    dataset = dataset_option(arg)
    if previous is not None:
      c = config_loading.load_config_file(f'{previous}:{dataset}', relative_to=HERE)
    else:
      c = config_loading.load_config_file(f'{recipe}.py', relative_to=PROJECT_CONFIGS)
      if dataset == 'digits':
        c = digits_smoke(c, **digits)
    c = config_loading.apply_overrides(c, changes, where)
    with c.unlocked():
      c.paper = ml_collections.ConfigDict(dict(paper, table=TABLE))
    return c

  get_config.__doc__ = (f'{paper["row"]} (``arg``: \'imagenet\', the default, or \'digits\' for '
                        'a smoke run).')
  return get_config
