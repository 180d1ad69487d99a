"""Batch-norm statistics that match the weights: precise BN and synchronised batch norm.

Each test shows the gap it closes: running statistics that lag the weights (precise BN), and
statistics of per-device batches too small to stand for the global batch (sync BN).
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _training_helpers import TinyNet, loop_options, numpy_train_state, tiny_config

from inception_jax import models
from inception_jax.models import layers
from inception_jax.training import loop, model_factory, optimizers, parallel
from inception_jax.training import state as state_lib
from inception_jax.training import step as step_lib

SIZE = 12


def _images(seed, n=16, shift=0.0):
  rng = np.random.RandomState(seed)
  return (rng.randn(n, SIZE, SIZE, 3) + shift).astype(np.float32)


def _setup(model, lr=0.1):
  config = tiny_config(learning_rate=lr, lr_schedule='constant', weight_decay=0.0)
  lr_fn = optimizers.create_learning_rate_fn(config, 10, 100)
  tx = optimizers.create_optimizer(config, lr_fn)
  return tx, lr_fn, numpy_train_state(model, tx, image_size=SIZE)


# ----------------------------------------------------------------------------- precise BN


def test_precise_statistics_close_the_train_eval_gap_on_their_batch():
  """Running statistics far from the data (here: the initial 0/1, inputs shifted by +3) make the
  evaluation forward differ from the training forward on the same batch; statistics recomputed
  from that batch make them equal."""
  model = TinyNet(dropout_rate=0.0, aux_logits=False)
  _, _, host_state = _setup(model)
  images = _images(0, shift=3.0)
  batch = {'image': images, 'label': np.zeros(16, np.int32)}
  variables = lambda s: {'params': s.params, 'batch_stats': s.batch_stats}
  train_logits = model.apply(variables(host_state), images, train=True,
                             mutable=['batch_stats'])[0].logits
  before = model.apply(variables(host_state), images, train=False).logits
  gap_before = float(jnp.abs(before - train_logits).max())

  dp = parallel.DataParallel('pmap', 1)
  bn_stats_step = dp.eval_step(step_lib.make_batch_norm_stats_step(
      model, momentum=models.BN_MOMENTUM, axis_name=dp.axis_name))
  state = loop.precise_batch_stats(bn_stats_step, dp.put_state(host_state), [batch], 1, dp)
  precise = dp.get_state(state)
  after = model.apply(variables(precise), images, train=False).logits
  gap_after = float(jnp.abs(after - train_logits).max())
  assert gap_before > 0.1, gap_before
  assert gap_after < 1e-4, gap_after
  # Only the statistics changed.
  for a, b in zip(jax.tree.leaves(precise.params), jax.tree.leaves(host_state.params)):
    np.testing.assert_array_equal(a, b)


def test_precise_statistics_average_several_batches_over_devices():
  """Over 2 batches, the statistics are the mean of the 2 batches' own; on 4 devices the means
  are the same as on 1 (each device's mean of 4 examples, pmean'd)."""
  model = TinyNet(dropout_rate=0.0, aux_logits=False)
  _, _, host_state = _setup(model)
  batches = [{'image': _images(s, shift=s), 'label': np.zeros(16, np.int32)} for s in (1, 2)]

  def stats_on(n):
    dp = parallel.DataParallel('shard_map', n)
    bn_stats_step = dp.eval_step(step_lib.make_batch_norm_stats_step(
        model, momentum=models.BN_MOMENTUM, axis_name=dp.axis_name))
    return dp.get_state(loop.precise_batch_stats(bn_stats_step, dp.put_state(host_state),
                                                 batches, 2, dp)).batch_stats

  one, four = stats_on(1), stats_on(4)
  # The first layer's means agree. (Deeper layers see inputs each device normalised with its own
  # statistics, and variances are each device's own, averaged, as pycls and Detectron2 do: what
  # each device normalised with in training. Neither is comparable across device counts.)
  np.testing.assert_allclose(four['conv1_bn']['mean'], one['conv1_bn']['mean'], rtol=1e-5,
                             atol=1e-6)
  # The first layer's mean is the mean of the two batches' conv1 means, computed directly.
  conv1 = lambda x: jax.lax.conv_general_dilated(
      x, host_state.params['conv1_conv']['kernel'], (1, 1), 'SAME',
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  expected = np.mean([np.asarray(conv1(b['image'])).mean((0, 1, 2)) for b in batches], axis=0)
  np.testing.assert_allclose(one['conv1_bn']['mean'], expected, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_precise_bn_in_the_loop_changes_only_the_statistics_and_lowers_the_eval_loss(tmp_path):
  """Early in a fast-moving run (a few steps at a high rate) the running statistics lag the
  weights; with precise_bn_batches the same weights evaluate better. Weights are identical."""
  config = tiny_config(num_train_steps=6, learning_rate=0.4, lr_schedule='constant',
                       log_every_steps=6, checkpoint_every_steps=0, eval_every_steps=3)
  model = TinyNet(dropout_rate=0.0)
  plain = loop.train_and_evaluate(config, tmp_path / 'plain', loop_options(model=model))
  config.precise_bn_batches = 4
  precise = loop.train_and_evaluate(config, tmp_path / 'precise', loop_options(model=model))
  for a, b in zip(jax.tree.leaves(plain.state.params), jax.tree.leaves(precise.state.params)):
    np.testing.assert_array_equal(a, b)
  assert precise.final_eval['num_examples'] == plain.final_eval['num_examples'] == 360
  assert precise.final_eval['loss'] < plain.final_eval['loss']
  # The saved final state is the evaluated one: it holds the precise statistics.
  stats = jax.tree.leaves(precise.state.batch_stats)
  assert any(np.abs(a - b).max() > 1e-3
             for a, b in zip(stats, jax.tree.leaves(plain.state.batch_stats)))


# ----------------------------------------------------------------------------- sync BN


def _train(mode, num_devices, model, host_state, tx, lr_fn, batches):
  dp = parallel.DataParallel(mode, num_devices)
  train = dp.train_step(step_lib.make_train_step(model, tx, lr_fn, aux_weight=0.3))
  state, rng = dp.put_state(host_state), dp.put_replicated(host_state.rng)
  for batch in dp.prefetch(batches):
    state, _ = train(state, batch, rng)
  return dp.get_state(state)


def _max_difference(a, b):
  return max(float(np.abs(x - y).max()) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.mark.slow  # compiles and runs training steps on 8 devices and on 1
@pytest.mark.parametrize('mode', ['pmap', 'shard_map'])
def test_sync_batch_norm_makes_8_devices_of_2_equal_1_device_of_16(mode):
  """Per-device statistics of 2 examples make 8 devices train differently from 1 device holding
  the same 16; with statistics averaged across devices they train the same."""
  rng = np.random.RandomState(0)
  batches = [{'image': _images(i), 'label': rng.randint(0, 10, 16).astype(np.int32)}
             for i in range(3)]
  results = {}
  for sync in (False, True):
    model = TinyNet(dropout_rate=0.0, bn_axis_name=step_lib.AXIS_NAME if sync else None)
    tx, lr_fn, host_state = _setup(model)
    one = _train(mode, 1, model, host_state, tx, lr_fn, batches)
    eight = _train(mode, 8, model, host_state, tx, lr_fn, batches)
    results[sync] = (_max_difference(one.params, eight.params),
                     _max_difference(one.batch_stats, eight.batch_stats))
  assert results[False][0] > 1e-3 and results[False][1] > 1e-3, results
  assert results[True][0] < 1e-5 and results[True][1] < 1e-5, results


def test_conv_bn_norm_axis_name_averages_statistics_over_the_axis():
  """The real models' ConvBN: 4 groups of 2 under a named axis give 1 group of 8's output."""
  block = functools.partial(layers.ConvBN, 4, 3, padding=1)
  x = _images(5, n=8)
  plain = block()
  variables = plain.init(jax.random.PRNGKey(0), x)
  whole, _ = plain.apply(variables, x, train=True, mutable=['batch_stats'])
  synced = block(norm_axis_name='batch')
  grouped = jax.vmap(lambda xs: synced.apply(variables, xs, train=True,
                                             mutable=['batch_stats'])[0],
                     axis_name='batch')(x.reshape(4, 2, SIZE, SIZE, 3))
  np.testing.assert_allclose(grouped.reshape(whole.shape), whole, rtol=1e-5, atol=1e-5)
  alone = jax.vmap(lambda xs: plain.apply(variables, xs, train=True, mutable=['batch_stats'])[0]
                   )(x.reshape(4, 2, SIZE, SIZE, 3))
  assert float(np.abs(alone.reshape(whole.shape) - whole).max()) > 1e-2


def test_sync_batch_norm_config_reaches_the_model():
  config = tiny_config(model='googlenet', image_size=32, sync_batch_norm=True)
  model = model_factory.build_model(config, num_classes=10)
  assert model.bn_axis_name == step_lib.AXIS_NAME
  config.sync_batch_norm = False
  assert model_factory.build_model(config, num_classes=10).bn_axis_name is None


def test_bn_momentum_sets_the_running_decay_and_precise_bn_follows_it():
  """``bn_momentum`` (the Cloud TPU run's batch-norm decay 0.996) reaches ConvBN, and the
  precise-BN step, told the same momentum, still recovers the batch's exact statistics."""
  assert models.create('inception_v3', bn_momentum=0.996).bn_momentum == 0.996
  make_block = layers.conv_block(True, 1.0, jnp.float32, norm_momentum=0.996)
  block = make_block(4, 3, padding=1)
  x = _images(6, n=8, shift=2.0)
  variables = block.init(jax.random.PRNGKey(0), x)
  conv_out = nn.Conv(4, (3, 3), padding=1, use_bias=False).apply(
      {'params': variables['params']['conv']}, x)
  _, updates = block.apply(variables, x, train=True, mutable=['batch_stats'])
  np.testing.assert_allclose(updates['batch_stats']['bn']['mean'],
                             0.004 * np.asarray(conv_out).mean((0, 1, 2)), rtol=1e-4, atol=1e-7)

  class Wrapped(nn.Module):
    @nn.compact
    def __call__(self, images, train=False):
      return models.ModelOutput(logits=make_block(4, 3, padding=1)(images, train).mean((1, 2)), aux_logits={})

  model = Wrapped()
  state = state_lib.TrainState(
      step=np.zeros((), np.int32), params={'ConvBN_0': variables['params']},
      batch_stats={'ConvBN_0': variables['batch_stats']}, opt_state=(), ema_params={},
      rng=np.asarray(jax.random.PRNGKey(0)), nonfinite_step=np.full((), -1, np.int32),
      nonfinite_what=np.zeros((), np.int32))
  stats = step_lib.make_batch_norm_stats_step(model, momentum=0.996, axis_name=None)(
      state, {'image': x})
  np.testing.assert_allclose(stats['ConvBN_0']['bn']['mean'],
                             np.asarray(conv_out).mean((0, 1, 2)), rtol=1e-4, atol=1e-6)
