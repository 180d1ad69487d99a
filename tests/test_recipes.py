"""The ImageNet recipes (configs/*_imagenet.py) follow their cited runs field by field, keep the
papers' settings as ``:paper`` variants, warn past the cited run's batch, and the schedule's floor
(``min_learning_rate_fraction``) behaves as the Cloud TPU reference's ``tf.maximum``. No model is
compiled here."""

from __future__ import annotations

import math
import os

import ml_collections
import pytest

from inception_jax.config import recipes
from inception_jax.tools import sweep
from inception_jax.errors import UserError
from inception_jax.training import optimizers
from inception_jax.config import schema

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(name, arg=''):
  return sweep.load_config_file(os.path.join(REPO, 'configs', name) + (f':{arg}' if arg else ''))


@pytest.mark.parametrize('name', ['googlenet_imagenet.py', 'inception_v3_imagenet.py'])
@pytest.mark.parametrize('arg', ['', 'paper'])
def test_variants_are_valid_configs_that_cite_a_run(name, arg):
  c = _config(name, arg)
  schema.validate_config(c)
  assert set(schema.base_config().keys()) == set(c.keys())
  assert c.recipe_source and c.dataset == 'imagenet2012'


def test_unknown_variant_is_refused():
  with pytest.raises(ValueError, match="unknown variant 'bogus'.*'paper'"):
    _config('inception_v3_imagenet.py', 'bogus')


def test_inception_v3_default_is_the_cloud_tpu_reference():
  """tensorflow/tpu models/experimental/inception/inception_v3.py, its default flags."""
  c = _config('inception_v3_imagenet.py')
  assert c.global_batch_size == 1024 and c.recipe_verified_batch_size == 1024   # train_batch_size
  assert optimizers.scaled_learning_rate(c) == pytest.approx(0.66)    # 0.165 * 1024 / 256
  assert (c.optimizer, c.rmsprop_decay, c.momentum, c.rmsprop_epsilon) == ('rmsprop', 0.9, 0.9, 1.0)
  assert (c.lr_schedule, c.decay_rate, c.decay_epochs) == ('staircase_exponential', 0.94, 3.0)
  assert c.min_learning_rate_fraction == 1e-4                          # final_learning_rate
  assert c.warmup_epochs == 0 and c.grad_clip_norm == 0                # no warm-up, no clipping
  assert (c.weight_decay, c.label_smoothing, c.aux_weight, c.ema_decay) == (4e-5, 0.1, 0.4, 0.995)
  assert schema.model_overrides(c) == {'bn_auxiliary': True, 'dropout_rate': 0.2,
                                      'bn_momentum': 0.996}  # BATCH_NORM_DECAY
  assert optimizers.num_train_steps(c, 1251 * 1024) == 213_000         # train_steps
  assert c.eval_every_steps == 2000 and c.eval_batch_size == 1024      # train_steps_per_eval
  assert tuple(c.crop_area_range) == (0.1, 1.0) and c.image_size == 299


def test_inception_v3_paper_variant_keeps_the_papers_setting():
  c = _config('inception_v3_imagenet.py', 'paper')
  assert (c.learning_rate, c.base_batch_size, c.decay_epochs, c.grad_clip_norm, c.ema_decay,
          c.warmup_epochs, c.num_epochs) == (0.045, 32, 2.0, 2.0, 0.9999, 5.0, 100.0)
  assert optimizers.scaled_learning_rate(c) == pytest.approx(1.44)
  assert c.recipe_verified_batch_size == 32 and c.min_learning_rate_fraction == 0
  assert schema.model_overrides(c) == {'bn_auxiliary': True}


def test_googlenet_default_is_mindcvs_run():
  """mindspore-lab/mindcv configs/googlenet/googlenet_ascend.yaml (8 cards x batch 32)."""
  c = _config('googlenet_imagenet.py')
  assert c.model == 'googlenet' and c.global_batch_size == 256 == c.recipe_verified_batch_size
  assert (c.optimizer, c.momentum, c.nesterov, c.learning_rate, c.base_batch_size) == (
      'sgd', 0.9, False, 0.045, 256)
  assert (c.lr_schedule, c.warmup_epochs, c.num_epochs, c.min_learning_rate_fraction) == (
      'cosine', 5.0, 150.0, 0.0)
  assert (c.weight_decay, c.label_smoothing, c.ema_decay, c.grad_clip_norm) == (4e-5, 0.1, 0, 0)
  assert (c.normalization, c.eval_crop_fraction, tuple(c.crop_area_range)) == (
      'imagenet', 0.875, (0.08, 1.0))
  assert c.eval_every_steps == 1_281_167 // 256                        # val_interval 1 (epoch)


def test_googlenet_paper_variant_keeps_the_papers_setting():
  c = _config('googlenet_imagenet.py', 'paper')
  assert (c.learning_rate, c.base_batch_size, c.global_batch_size, c.lr_schedule, c.decay_rate,
          c.decay_epochs, c.aux_weight, c.ema_decay, c.num_epochs) == (
              0.01, 32, 1024, 'staircase_exponential', 0.96, 8.0, 0.3, 0.9999, 90.0)
  assert c.recipe_verified_batch_size == 0


def test_batch_warning_past_the_cited_runs_batch():
  c = _config('inception_v3_imagenet.py')
  assert recipes.batch_warning(c) is None
  c.global_batch_size = 2048
  warning = recipes.batch_warning(c)
  assert warning.startswith('warning: global_batch_size=2048 is larger than 1024')
  assert 'tensorflow/tpu' in warning and '1.32' in warning and '\n' not in warning
  paper = recipes.batch_warning(_config('inception_v3_imagenet.py', 'paper'))
  assert 'larger than 32' in paper
  assert 'states no batch size' in recipes.batch_warning(_config('googlenet_imagenet.py', 'paper'))
  assert recipes.batch_warning(_config('googlenet_imagenet.py')) is None
  assert recipes.batch_warning(_config('default.py')) is None          # cites no run


def test_bad_verified_batch_is_a_user_error():
  c = _config('googlenet_imagenet.py')
  c.recipe_verified_batch_size = -1
  with pytest.raises(UserError, match='recipe_verified_batch_size must be a whole number'):
    recipes.batch_warning(c)


def _schedule_config(**fields):
  values = dict(learning_rate=0.165, base_batch_size=256, global_batch_size=1024,
                lr_schedule='staircase_exponential', decay_rate=0.5, decay_epochs=1.0,
                warmup_epochs=0.0, min_learning_rate_fraction=1e-2)
  values.update(fields)
  return ml_collections.ConfigDict(values)


def test_learning_rate_floor_is_a_maximum_over_the_whole_schedule():
  """``tf.maximum(learning_rate, 0.0001 * initial_learning_rate)`` (the Cloud TPU reference),
  here with a floor of 1e-2 so that it binds after seven halvings."""
  fn = optimizers.create_learning_rate_fn(_schedule_config(), steps_per_epoch=10, total_steps=200)
  for step in range(0, 200, 7):
    expected = max(0.66 * 0.5 ** (step // 10), 0.0066)
    assert float(fn(step)) == pytest.approx(expected, rel=1e-6), step
  assert float(fn(199)) == pytest.approx(0.0066)
  # Warm-up: the floor holds there too (TF applies the maximum after its warm-up branch).
  warm = optimizers.create_learning_rate_fn(_schedule_config(warmup_epochs=20.0, decay_rate=1.0),
                                            steps_per_epoch=10, total_steps=400)
  assert 0.66 / 200 < 0.0066 and float(warm(0)) == pytest.approx(0.0066)
  assert float(warm(99)) == pytest.approx(0.66 * 100 / 200)
  # Cosine to zero ends on the floor.
  cos = optimizers.create_learning_rate_fn(_schedule_config(lr_schedule='cosine'),
                                           steps_per_epoch=10, total_steps=200)
  assert float(cos(200)) == pytest.approx(0.0066)
  # No floor (the default): the schedule is unchanged.
  none = optimizers.create_learning_rate_fn(_schedule_config(min_learning_rate_fraction=0.0),
                                            steps_per_epoch=10, total_steps=200)
  assert float(none(199)) == pytest.approx(0.66 * 0.5 ** 19)
  assert math.isclose(float(none(0)), 0.66, rel_tol=1e-6)


@pytest.mark.parametrize('bad', [-0.1, 1.0, True, 'x'])
def test_bad_floor_is_a_user_error(bad):
  with pytest.raises(UserError, match=r'min_learning_rate_fraction must be in \[0, 1\)'):
    optimizers.create_learning_rate_fn(_schedule_config(min_learning_rate_fraction=bad), 10, 100)
