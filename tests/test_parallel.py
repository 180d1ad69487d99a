"""Data parallelism: pmap over 8 CPU devices == 1 device; shard_map == pmap; batch checks.

Uses TinyNet (tests/_training_helpers.py): the parallel module knows nothing of the model, and a
small network keeps the compilations to about a second each.
"""

import threading
import time

import jax
import numpy as np
import pytest
from _training_helpers import TinyNet, numpy_train_state, tiny_config

from inception_jax.errors import UserError
from inception_jax.training import optimizers, parallel
from inception_jax.training import step as step_lib

GLOBAL_BATCH = 16
SIZE = 12
STEPS = 3


def _batches(seed=0):
  rng = np.random.RandomState(seed)
  return [{'image': rng.randn(GLOBAL_BATCH, SIZE, SIZE, 3).astype(np.float32),
           'label': rng.randint(0, 10, GLOBAL_BATCH).astype(np.int32)} for _ in range(STEPS)]


def _setup(model):
  config = tiny_config(learning_rate=0.1, lr_schedule='constant', weight_decay=1e-3,
                       ema_decay=0.9)
  lr_fn = optimizers.create_learning_rate_fn(config, 10, 100)
  tx = optimizers.create_optimizer(config, lr_fn)
  init = numpy_train_state(model, tx, image_size=SIZE, ema=True)
  step_fn = step_lib.make_train_step(model, tx, lr_fn, aux_weight=0.3, ema_decay=0.9)
  return init, step_fn


def _train(mode, num_devices, host_state, step_fn, batches):
  dp = parallel.DataParallel(mode, num_devices)
  train = dp.train_step(step_fn)
  state = dp.put_state(host_state)
  rng = dp.put_replicated(host_state.rng)
  losses = []
  for batch in dp.prefetch(batches):
    state, metrics = train(state, batch, rng)
    losses.append(metrics['loss'])
  return dp.get_state(state), np.array([float(x) for x in dp.to_host(losses)])


def _assert_states_close(a, b, atol):
  for (path, x), y in zip(jax.tree_util.tree_flatten_with_path(a)[0], jax.tree.leaves(b)):
    np.testing.assert_allclose(x, y, atol=atol, rtol=1e-4, err_msg=jax.tree_util.keystr(path))


@pytest.fixture(scope='module')
def no_bn():
  # Without BatchNorm and dropout every example's gradient is independent of how the batch is
  # split, so 8 devices x 2 examples must equal 1 device x 16 after gradient averaging.
  return _setup(TinyNet(use_bn=False, dropout_rate=0.0))


@pytest.fixture(scope='module')
def with_bn():
  return _setup(TinyNet(use_bn=True, dropout_rate=0.5))


def test_pmap_8_devices_equals_1_device(no_bn):
  assert jax.local_device_count() >= 8
  host_state, step_fn = no_bn
  batches = _batches()
  one, losses_one = _train('pmap', 1, host_state, step_fn, batches)
  eight, losses_eight = _train('pmap', 8, host_state, step_fn, batches)
  np.testing.assert_allclose(losses_eight, losses_one, rtol=1e-5)
  assert int(eight.step) == int(one.step) == STEPS
  _assert_states_close(eight.params, one.params, atol=1e-5)
  _assert_states_close(eight.ema_params, one.ema_params, atol=1e-5)
  _assert_states_close(eight.opt_state, one.opt_state, atol=1e-5)
  # And training moved the parameters (the comparison is not between two initial states).
  moved = [np.abs(a - b).max() for a, b in zip(jax.tree.leaves(one.params),
                                                jax.tree.leaves(host_state.params))]
  assert max(moved) > 1e-3


@pytest.mark.slow  # compiles and runs the training step under pmap and shard_map
def test_shard_map_equals_pmap_with_batchnorm_and_dropout(with_bn):
  host_state, step_fn = with_bn
  batches = _batches(1)
  by_pmap, losses_pmap = _train('pmap', 8, host_state, step_fn, batches)
  by_shard_map, losses_shard_map = _train('shard_map', 8, host_state, step_fn, batches)
  np.testing.assert_allclose(losses_shard_map, losses_pmap, rtol=1e-6)
  _assert_states_close(by_shard_map, by_pmap, atol=1e-6)
  # BatchNorm statistics were updated (pmean'd over devices) and are the same everywhere.
  stats = jax.tree.leaves(by_pmap.batch_stats)
  assert any(np.abs(s - s0).max() > 0 for s, s0 in zip(stats,
                                                       jax.tree.leaves(host_state.batch_stats)))


@pytest.mark.slow  # compiles and runs the training step on 8 devices and on 1
def test_batchnorm_statistics_are_averaged_over_devices(with_bn):
  host_state, _ = with_bn
  model = TinyNet(use_bn=True, dropout_rate=0.0)
  config = tiny_config(learning_rate=0.1, lr_schedule='constant')
  lr_fn = optimizers.create_learning_rate_fn(config, 10, 100)
  tx = optimizers.create_optimizer(config, lr_fn)
  batch = _batches(3)[0]
  dp = parallel.DataParallel('pmap', 8)
  train = dp.train_step(step_lib.make_train_step(model, tx, lr_fn, aux_weight=0.3))
  state, _ = train(dp.put_state(host_state), dp.put_batch(batch),
                   dp.put_replicated(host_state.rng))
  # Every replica holds the same state ...
  for leaf in jax.tree.leaves(state):
    shards = [np.asarray(s.data) for s in leaf.addressable_shards]
    for shard in shards[1:]:
      np.testing.assert_array_equal(shard, shards[0])
  # ... and its BatchNorm statistics are the mean of what each device saw alone.
  alone = jax.jit(step_lib.make_train_step(model, tx, lr_fn, aux_weight=0.3, axis_name=None))
  per_device = [jax.device_get(alone(host_state, {k: v[2 * i:2 * i + 2] for k, v in
                                                  batch.items()}, host_state.rng)[0].batch_stats)
                for i in range(8)]
  expected = jax.tree.map(lambda *xs: np.mean(xs, axis=0), *per_device)
  _assert_states_close(dp.get_state(state).batch_stats, expected, atol=1e-6)


def test_dropout_differs_per_device_and_per_step():
  key = jax.random.PRNGKey(0)
  per_device = jax.vmap(lambda i: step_lib.dropout_key(key, 3, 'b'), axis_name='b')(
      np.arange(4))
  keys = {tuple(np.asarray(k)) for k in per_device}
  assert len(keys) == 4
  assert tuple(np.asarray(step_lib.dropout_key(key, 3, None))) != tuple(
      np.asarray(step_lib.dropout_key(key, 4, None)))


def test_eval_sums_count_only_real_examples(with_bn):
  host_state, _ = with_bn
  model = TinyNet(use_bn=True, dropout_rate=0.5)
  rng = np.random.RandomState(2)
  batch = {'image': rng.randn(GLOBAL_BATCH, SIZE, SIZE, 3).astype(np.float32),
           'label': rng.randint(0, 10, GLOBAL_BATCH).astype(np.int32),
           'mask': np.arange(GLOBAL_BATCH) < 11}
  results = {}
  for mode in ('pmap', 'shard_map'):
    dp = parallel.DataParallel(mode, 8)
    sums = dp.eval_step(step_lib.make_eval_step(model))(dp.put_state(host_state),
                                                         dp.put_batch(batch))
    results[mode] = dp.to_host(sums)
  assert int(results['pmap']['count']) == int(results['shard_map']['count']) == 11
  # The same sums as one unmapped call on the 11 real examples.
  plain = step_lib.make_eval_step(model, axis_name=None)(
      host_state, {k: v[:11] for k, v in batch.items() if k != 'mask'})
  for mode in results:
    assert int(results[mode]['top1']) == int(plain['top1'])
    np.testing.assert_allclose(results[mode]['loss'], plain['loss'], rtol=1e-5)


@pytest.mark.parametrize('mode', ['pmap', 'shard_map'])
def test_put_batch_layout_and_prefetch_order(mode):
  dp = parallel.DataParallel(mode, 8)
  batches = _batches()
  out = list(dp.prefetch(iter(batches), size=2))
  assert len(out) == STEPS
  for host, dev in zip(batches, out):
    image = np.asarray(dev['image'])
    if mode == 'pmap':
      assert image.shape == (8, GLOBAL_BATCH // 8, SIZE, SIZE, 3)
      image = image.reshape(host['image'].shape)
    else:
      assert image.shape == host['image'].shape
      assert len(dev['image'].sharding.device_set) == 8
    np.testing.assert_array_equal(image, host['image'])


def test_prefetch_raises_a_producer_error_at_its_batch_and_stops_its_thread():
  """The background thread's exceptions surface in the loop, in order, and nothing lingers."""
  dp = parallel.DataParallel('pmap', 8)
  good = _batches()

  def source():
    yield from good[:2]
    yield {'image': good[0]['image'][:12], 'label': good[0]['label'][:12]}  # 12 over 8 devices
    yield from good

  seen = []
  with pytest.raises(UserError, match='a batch of 12 examples does not split over the 8 local'):
    for batch in dp.prefetch(source(), size=2):
      seen.append(np.asarray(batch['label']).reshape(-1))
  assert len(seen) == 2
  np.testing.assert_array_equal(seen[1], good[1]['label'])
  assert not [t for t in threading.enumerate() if t.name == 'inception_jax-prefetch']


def test_abandoned_prefetch_stops_its_thread_after_the_item_in_hand():
  dp = parallel.DataParallel('pmap', 8)
  pulled = []

  def endless():
    while True:
      pulled.append(len(pulled))
      yield _batches()[0]

  batches = dp.prefetch(endless(), size=2)
  next(batches)
  batches.close()
  assert not [t for t in threading.enumerate() if t.name == 'inception_jax-prefetch']
  count = len(pulled)
  assert count <= 1 + 2 + 1 + 1  # the one taken, the queue, one waiting to enter it, one in hand
  time.sleep(0.2)
  assert len(pulled) == count


def test_bad_parallel_settings_are_user_errors():
  with pytest.raises(UserError, match='parallel mode'):
    parallel.DataParallel('vmap')
  with pytest.raises(UserError, match='num_devices=99'):
    parallel.DataParallel('pmap', 99)


def test_single_process_does_not_initialize_distributed(monkeypatch):
  for name in ('JAX_COORDINATOR_ADDRESS', 'JAX_NUM_PROCESSES', 'JAX_PROCESS_ID',
               'TPU_WORKER_HOSTNAMES', 'MEGASCALE_COORDINATOR_ADDRESS', 'SLURM_NTASKS',
               'SLURM_STEP_NUM_TASKS', 'OMPI_COMM_WORLD_SIZE'):
    monkeypatch.delenv(name, raising=False)
  assert not parallel.launched_as_one_of_many()
  assert parallel.maybe_initialize_distributed() is False
  monkeypatch.setenv('SLURM_NTASKS', '4')
  assert parallel.launched_as_one_of_many()
  monkeypatch.setenv('SLURM_NTASKS', '1')
  monkeypatch.setenv('TPU_WORKER_HOSTNAMES', 'a,b')
  assert parallel.launched_as_one_of_many()
  monkeypatch.delenv('TPU_WORKER_HOSTNAMES')
  monkeypatch.setenv('JAX_NUM_PROCESSES', '2')
  with pytest.raises(UserError, match='coordinator_address'):
    parallel.maybe_initialize_distributed()
