"""The training step, losses, schedules and config validation.

GoogLeNet tests compile one train step (width 1/8, 32 px) and reuse it: the auxiliary weight and
the learning rate are traced arguments rather than constants, and the parameters are filled from
``jax.eval_shape`` with numpy instead of compiling the initialiser.
"""

import functools
import importlib.util
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _training_helpers import TinyNet, numpy_train_state, tiny_config

from inception_jax import models
from inception_jax.errors import UserError
from inception_jax.training import losses, metrics, optimizers
from inception_jax.config import schema
from inception_jax.training import state as state_lib
from inception_jax.training import step as step_lib

SIZE = 32  # GoogLeNet's smallest input is 31 px


def _digits_batch(batch_size, image_size):
  from inception_jax.data import input_pipeline  # pylint: disable=g-import-not-at-top
  config = tiny_config(image_size=image_size, global_batch_size=batch_size)
  return next(input_pipeline.create_train_iterator(config, start_step=0, process_index=0,
                                                   process_count=1))


@pytest.fixture(scope='module')
def googlenet():
  model = models.create('googlenet', num_classes=10, width_multiplier=0.125)
  tx = optax.inject_hyperparams(optax.sgd)(learning_rate=1.0)
  state = numpy_train_state(model, tx, image_size=SIZE)

  # Unoptimised machine code compiles in about half the time; these tests check numbers, not speed.
  @functools.partial(jax.jit, compiler_options={'xla_backend_optimization_level': 0})
  def train_step(state, batch, aux_weight):
    step_fn = step_lib.make_train_step(model, tx, lambda s: 0.0, aux_weight=aux_weight,
                                       axis_name=None)
    return step_fn(state, batch, state.rng)

  return state, train_step


def _with_lr(state, lr):
  hyper = dict(state.opt_state.hyperparams, learning_rate=np.asarray(lr, np.float32))
  return state.replace(opt_state=state.opt_state._replace(hyperparams=hyper))


@pytest.mark.slow  # compiles and runs GoogLeNet's training step
def test_aux_weight_changes_gradients_below_the_aux_heads_only(googlenet):
  state, train_step = googlenet
  state = _with_lr(state, 1.0)  # plain SGD, lr 1: the parameter change is minus the gradient
  batch = _digits_batch(8, SIZE)
  grads = {}
  for w in (0.0, 0.3):
    new, _ = train_step(state, batch, w)
    grads[w] = jax.tree.map(lambda a, b: np.asarray(a) - np.asarray(b), state.params,
                            jax.device_get(new.params))

  def differ(layer):
    a, b = jax.tree.leaves(grads[0.0][layer]), jax.tree.leaves(grads[0.3][layer])
    return max(float(np.abs(x - y).max()) for x, y in zip(a, b))

  # Below aux1 (after 4a) and aux2 (after 4d): the aux losses reach these layers.
  for layer in ('conv1', 'conv3', 'inception3a', 'inception4a', 'inception4d'):
    assert differ(layer) > 1e-6, layer
  # Above both heads: bit-for-bit the same gradient whatever the aux weight.
  for layer in ('inception4e', 'inception5a', 'inception5b', 'fc'):
    assert differ(layer) == 0.0, layer
  # The heads themselves learn only from their own loss.
  for head in ('aux1', 'aux2'):
    assert all(np.all(g == 0) for g in jax.tree.leaves(grads[0.0][head]))
    assert differ(head) > 1e-6


@pytest.mark.slow  # trains GoogLeNet for six steps
def test_loss_goes_down_on_digits_in_a_few_steps(googlenet):
  state, train_step = googlenet
  state = _with_lr(state, 0.05)
  batch = _digits_batch(8, SIZE)  # the batch shape of the test above: no second compilation
  seen = []
  for _ in range(6):
    state, m = train_step(state, batch, 0.3)
    seen.append((float(m['loss']), float(m['main_loss'])))
  assert int(state.step) == 6 and int(state.nonfinite_step) == -1
  (first, first_main), (last, last_main) = seen[0], seen[-1]
  assert last < 0.8 * first and last_main < first_main, seen


@pytest.mark.slow  # compiles a whole GoogLeNet's initialiser
def test_create_train_state_matches_the_abstract_state():
  model = models.create('googlenet', num_classes=10, width_multiplier=0.125)
  tx = optimizers.create_optimizer(tiny_config(), lambda s: 0.1)
  state = state_lib.create_train_state(model, tx, image_size=SIZE, seed=3, ema=True)
  abstract = jax.eval_shape(state_lib.make_init_fn(model, tx, image_size=SIZE, ema=True),
                            jax.random.PRNGKey(3))
  assert jax.tree.structure(state) == jax.tree.structure(abstract)
  for x, a in zip(jax.tree.leaves(state), jax.tree.leaves(abstract)):
    assert isinstance(x, np.ndarray) and x.shape == a.shape and x.dtype == a.dtype
  # Aux heads are initialised too, and the state is a pure function of the seed.
  assert {'aux1', 'aux2'} <= set(state.params)
  again = state_lib.create_train_state(model, tx, image_size=SIZE, seed=3, ema=True)
  assert all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(state), jax.tree.leaves(again)))
  np.testing.assert_array_equal(state.rng, jax.random.split(jax.random.PRNGKey(3))[1])


@pytest.fixture(scope='module')
def tiny():
  model = TinyNet()
  config = tiny_config(learning_rate=0.1, lr_schedule='constant', ema_decay=0.99)
  lr_fn = optimizers.create_learning_rate_fn(config, 10, 100)
  tx = optimizers.create_optimizer(config, lr_fn)
  state = numpy_train_state(model, tx, image_size=12, ema=True)
  step = jax.jit(step_lib.make_train_step(model, tx, lr_fn, aux_weight=0.3, ema_decay=0.99,
                                          axis_name=None))
  rng = np.random.RandomState(0)
  batch = {'image': rng.randn(8, 12, 12, 3).astype(np.float32),
           'label': rng.randint(0, 10, 8).astype(np.int32)}
  return state, step, batch


def test_train_step_metrics_and_ema(tiny):
  state, step, batch = tiny
  new, m = step(state, batch, state.rng)
  assert set(m) == set(step_lib.TRAIN_METRICS)
  np.testing.assert_allclose(m['loss'], m['main_loss'] + 0.3 * m['aux_loss'], rtol=1e-6)
  assert float(m['learning_rate']) == pytest.approx(0.1 * 16 / 16)
  assert int(new.step) == 1
  # EMA with TF's num_updates warm-up: decay min(0.99, 1/10) = 0.1 at the first step.
  expected = jax.tree.map(lambda e, p: 0.1 * e + 0.9 * p, state.ema_params,
                          jax.device_get(new.params))
  for a, b in zip(jax.tree.leaves(new.ema_params), jax.tree.leaves(expected)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_nonfinite_batch_is_skipped_and_sticky(tiny):
  state, step, batch = tiny
  good, _ = step(state, batch, state.rng)
  poisoned = dict(batch, image=np.where(np.arange(8)[:, None, None, None] == 3, np.inf,
                                        batch['image']).astype(np.float32))
  after, m = step(good, poisoned, state.rng)
  assert not np.isfinite(float(m['loss']))
  assert int(after.nonfinite_step) == 2
  assert int(after.nonfinite_what) == state_lib.NONFINITE_LOSS | state_lib.NONFINITE_GRADS
  for name in ('step', 'params', 'batch_stats', 'opt_state', 'ema_params'):
    for a, b in zip(jax.tree.leaves(getattr(after, name)), jax.tree.leaves(getattr(good, name))):
      np.testing.assert_array_equal(a, b, err_msg=name)
  # Sticky: a good batch afterwards changes nothing either, and the first bad step is kept.
  later, _ = step(after, batch, state.rng)
  assert int(later.nonfinite_step) == 2
  for a, b in zip(jax.tree.leaves(later.params), jax.tree.leaves(good.params)):
    np.testing.assert_array_equal(a, b)
  assert state_lib.describe_nonfinite(int(after.nonfinite_what)) == 'loss and gradients'


def test_half_precision_computes_in_bfloat16_with_float32_params():
  model = TinyNet(dtype=jnp.bfloat16)
  config = tiny_config(lr_schedule='constant')
  lr_fn = optimizers.create_learning_rate_fn(config, 10, 100)
  tx = optimizers.create_optimizer(config, lr_fn)
  state = numpy_train_state(model, tx, image_size=12)
  step = jax.jit(step_lib.make_train_step(model, tx, lr_fn, aux_weight=0.3, axis_name=None))
  rng = np.random.RandomState(0)
  batch = {'image': rng.randn(8, 12, 12, 3).astype(np.float32),
           'label': rng.randint(0, 10, 8).astype(np.int32)}
  new, m = step(state, batch, state.rng)
  assert np.isfinite(float(m['loss'])) and int(new.step) == 1
  assert {x.dtype for x in jax.tree.leaves(new.params)} == {jnp.dtype(jnp.float32)}
  out = jax.eval_shape(lambda v, x: model.apply(v, x, train=False),
                       {'params': new.params, 'batch_stats': new.batch_stats}, batch['image'])
  assert out.logits.dtype == jnp.float32
  # Inside, the convolutions compute in bfloat16.
  jaxpr = jax.make_jaxpr(lambda v, x: model.apply(v, x, train=False))(
      {'params': new.params, 'batch_stats': new.batch_stats}, batch['image'])
  convs = [e for e in jaxpr.eqns if e.primitive.name == 'conv_general_dilated']
  assert convs and all(e.outvars[0].aval.dtype == jnp.bfloat16 for e in convs)


def test_image_too_small_is_one_line_before_compiling(tmp_path):
  from inception_jax.training import loop  # pylint: disable=g-import-not-at-top
  config = _load_config('default')
  config.image_size = 16
  with pytest.raises(UserError, match='image_size=16 is too small for googlenet: it needs at '
                                      'least 31 px') as e:
    loop.train_and_evaluate(config, str(tmp_path), loop.LoopOptions(show_progress=False))
  assert '\n' not in str(e.value)


def test_cross_entropy_with_label_smoothing():
  logits = jnp.array([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
  labels = jnp.array([0, 2])
  logp = jax.nn.log_softmax(logits)
  eps = 0.1
  targets = jax.nn.one_hot(labels, 3) * (1 - eps) + eps / 3
  expected = -(targets * logp).sum(-1)
  np.testing.assert_allclose(losses.cross_entropy(logits, labels, label_smoothing=eps), expected,
                             rtol=1e-6)
  plain = -logp[jnp.arange(2), labels]
  np.testing.assert_allclose(losses.cross_entropy(logits, labels), plain, rtol=1e-6)
  total, (main, aux) = losses.inception_loss(
      logits, {'aux1': logits, 'aux2': logits * 0}, labels, aux_weight=0.3)
  np.testing.assert_allclose(aux, plain.mean() + math.log(3), rtol=1e-6)
  np.testing.assert_allclose(total, main + 0.3 * aux, rtol=1e-6)


def test_topk_correct():
  logits = jnp.array([[0.1, 0.5, 0.2, 0.9, 0.0, 0.3], [1.0, 0.5, 0.4, 0.3, 0.2, 0.1]])
  labels = jnp.array([2, 5])
  np.testing.assert_array_equal(losses.topk_correct(logits, labels, 1), [0.0, 0.0])
  np.testing.assert_array_equal(losses.topk_correct(logits, labels, 4), [1.0, 0.0])
  np.testing.assert_array_equal(losses.topk_correct(logits[:, :3], jnp.array([2, 1]), 5),
                                [1.0, 1.0])  # k capped at the number of classes
  # Exact ties count in the label's favour.
  np.testing.assert_array_equal(losses.topk_correct(jnp.zeros((1, 6)), jnp.array([4]), 1), [1.0])
  nan_logits = jnp.full((1, 6), jnp.nan)
  np.testing.assert_array_equal(losses.topk_correct(nan_logits, jnp.array([0]), 5), [0.0])


def _schedule_config(**kw):
  c = schema.base_config()
  c.update(kw)
  return c


def test_learning_rate_scaling_and_schedules():
  c = _schedule_config(learning_rate=0.045, base_batch_size=32, global_batch_size=128,
                       lr_schedule='staircase_exponential', decay_rate=0.94, decay_epochs=2.0)
  assert optimizers.scaled_learning_rate(c) == pytest.approx(0.18)
  lr = optimizers.create_learning_rate_fn(c, steps_per_epoch=10, total_steps=100)
  assert float(lr(0)) == pytest.approx(0.18)
  assert float(lr(19)) == pytest.approx(0.18)
  assert float(lr(20)) == pytest.approx(0.18 * 0.94)
  assert float(lr(45)) == pytest.approx(0.18 * 0.94**2)
  c = _schedule_config(learning_rate=0.1, base_batch_size=64, global_batch_size=64,
                       lr_schedule='cosine', warmup_epochs=1.0)
  lr = optimizers.create_learning_rate_fn(c, steps_per_epoch=10, total_steps=110)
  assert float(lr(0)) == pytest.approx(0.01)       # warm-up: (step + 1) / 10
  assert float(lr(9)) == pytest.approx(0.1)
  assert float(lr(60)) == pytest.approx(0.05)      # half way through the decay
  assert float(lr(110)) == pytest.approx(0.0, abs=1e-9)
  assert optimizers.num_train_steps(_schedule_config(num_epochs=2.5, global_batch_size=64),
                                    1437) == 55
  assert optimizers.num_train_steps(_schedule_config(num_train_steps=7), 1437) == 7


def test_optimizers_follow_their_recipes():
  params = {'conv': {'kernel': jnp.ones((3, 3)), 'bias': jnp.ones((3,))}}
  grads = jax.tree.map(jnp.zeros_like, params)
  # Weight decay reaches kernels only (an L2 penalty wd/2 |w|^2: gradient wd * w).
  c = _schedule_config(optimizer='sgd', momentum=0.0, weight_decay=0.1, learning_rate=1.0,
                       base_batch_size=256, global_batch_size=256)
  tx = optimizers.create_optimizer(c, lambda s: 1.0)
  updates, _ = tx.update(grads, tx.init(params), params)
  np.testing.assert_allclose(updates['conv']['kernel'], -0.1 * np.ones((3, 3)))
  np.testing.assert_allclose(updates['conv']['bias'], np.zeros(3))
  # RMSProp as TF: the mean square starts at 1 and eps sits inside the square root, so a first
  # gradient g gives lr * g / sqrt(0.9 + 0.1 g^2 + eps).
  c = _schedule_config(optimizer='rmsprop', rmsprop_decay=0.9, rmsprop_epsilon=1.0, momentum=0.9,
                       weight_decay=0.0, grad_clip_norm=0.0)
  tx = optimizers.create_optimizer(c, lambda s: 0.5)
  g = {'w': jnp.array([2.0])}
  updates, _ = tx.update(g, tx.init(g), g)
  np.testing.assert_allclose(updates['w'], [-0.5 * 2.0 / math.sqrt(0.9 + 0.4 + 1.0)], rtol=1e-6)
  # Clipping by global norm.
  c = _schedule_config(optimizer='sgd', momentum=0.0, weight_decay=0.0, grad_clip_norm=2.0)
  tx = optimizers.create_optimizer(c, lambda s: 1.0)
  updates, _ = tx.update({'w': jnp.array([30.0, 40.0])}, tx.init({'w': jnp.zeros(2)}))
  np.testing.assert_allclose(updates['w'], [-1.2, -1.6], rtol=1e-6)


def _load_config(name):
  path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'configs',
                      f'{name}.py')
  spec = importlib.util.spec_from_file_location(f'config_{name}', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


@pytest.mark.parametrize('key,value,message', [
    ('model', 'resnet50', "unknown model 'resnet50'"),
    ('global_batch_size', 0, 'global_batch_size must be positive'),
    ('eval_batch_size', -8, 'eval_batch_size must be positive'),
    ('learning_rate', -0.1, 'learning_rate must be positive'),
    ('learning_rate', 0.0, 'learning_rate must be positive'),
    ('num_train_steps', -5, 'num_train_steps must be non-negative'),
    ('image_size', 0, 'image_size must be positive'),
    ('optimizer', 'lamb', "unknown optimizer 'lamb'"),
    ('lr_schedule', 'poly', "unknown lr_schedule 'poly'"),
    ('parallel', 'vmap', "unknown parallel 'vmap'"),
    ('label_smoothing', 1.5, r'label_smoothing must be in \[0, 1\)'),
    ('ema_decay', 1.0, r'ema_decay must be in \[0, 1\)'),
    ('keep_checkpoints', 0, 'keep_checkpoints must be positive'),
    ('checkpoint_every_steps', -1, 'checkpoint_every_steps must be non-negative'),
    ('aux_weight', -0.3, 'aux_weight must be non-negative'),
])
def test_validate_config_one_line_errors(key, value, message):
  config = _load_config('default')
  schema.validate_config(config)  # the quick start itself is valid
  with config.unlocked():
    config[key] = value
  with pytest.raises(UserError, match=message) as e:
    schema.validate_config(config)
  assert '\n' not in str(e.value)


def test_validate_config_classes_and_length():
  config = tiny_config()
  config.model_overrides.num_classes = 0
  with pytest.raises(UserError, match='num_classes must be positive'):
    schema.validate_config(config, check_model=False)
  config = tiny_config(num_train_steps=0, num_epochs=0.0)
  with pytest.raises(UserError, match='num_epochs or config.num_train_steps'):
    schema.validate_config(config, check_model=False)


def test_batches_must_split_over_devices_and_processes_and_fit_the_train_split():
  config = tiny_config(global_batch_size=16, eval_batch_size=20)
  share = lambda key, **counts: schema.local_batch_size(config, key, **counts)
  assert share('global_batch_size', num_processes=2, num_devices=8) == 8
  with pytest.raises(UserError, match='eval_batch_size=20 is not divisible by the 8 devices'):
    share('eval_batch_size', num_processes=1, num_devices=8)
  with pytest.raises(UserError, match='eval_batch_size=20 is not divisible by the 3 processes'):
    share('eval_batch_size', num_processes=3)
  assert schema.steps_per_epoch(config, 100, num_processes=2) == 6  # (100 // 2) // (16 // 2)
  with pytest.raises(UserError, match=r'global_batch_size=16 is larger than the train split '
                                      r'\(15 examples\)'):
    schema.steps_per_epoch(config, 15, num_processes=1)


@pytest.mark.parametrize('name', ['default', 'googlenet_imagenet', 'inception_v3_imagenet'])
def test_configs_are_valid_and_follow_their_recipes(name):
  config = _load_config(name)
  schema.validate_config(config)
  assert set(schema.base_config().keys()) == set(config.keys())
  if name == 'googlenet_imagenet':  # MindCV's googlenet_ascend.yaml (72.89 % top-1 at 256)
    assert (config.optimizer, config.momentum, config.lr_schedule, config.learning_rate,
            config.base_batch_size, config.aux_weight, config.image_size) == (
                'sgd', 0.9, 'cosine', 0.045, 256, 0.3, 224)
    assert config.recipe_verified_batch_size == 256 and config.augment == 'inception_crop'
  if name == 'inception_v3_imagenet':  # the Cloud TPU reference run at batch 1024
    assert (config.optimizer, config.rmsprop_decay, config.rmsprop_epsilon, config.momentum,
            config.learning_rate, config.base_batch_size, config.decay_rate,
            config.decay_epochs, config.grad_clip_norm, config.label_smoothing,
            config.aux_weight, config.image_size, config.ema_decay) == (
                'rmsprop', 0.9, 1.0, 0.9, 0.165, 256, 0.94, 3.0, 0.0, 0.1, 0.4, 299, 0.995)
    assert schema.model_overrides(config)['bn_auxiliary']
    assert schema.model_overrides(config)['bn_momentum'] == 0.996  # BATCH_NORM_DECAY
    assert config.recipe_verified_batch_size == 1024
  if name == 'default':
    assert config.model == 'googlenet' and config.dataset == 'digits'
    assert config.aux_weight == 0.3 and not config.random_flip
    assert config.image_size >= models.create('googlenet').min_input_size()


@pytest.mark.parametrize('appendable', [True, False])
def test_metrics_writer_truncates_lines_past_the_resume_step(tmp_path, appendable):
  writer = metrics.MetricsWriter(str(tmp_path), tensorboard=False)
  writer._local = appendable  # False: the object-store path (rewrite at flush), on a local dir
  for step in (2, 4, 6):
    writer.write(step, 'train', {'loss': np.float32(1.5), 'top1': 0.5, 'nan': float('nan')})
  writer.write(4, 'eval', {'loss': 1.0, 'num_examples': 360})
  writer.flush()
  with open(writer.path, 'a') as f:
    f.write('{"step": 8, "kind": "tr')  # a line torn by a kill
  if not appendable:
    writer = metrics.MetricsWriter(str(tmp_path), tensorboard=False)
    writer._local = False
  writer.truncate_after(4)
  writer.close()
  with open(writer.path) as f:
    lines = [json.loads(l) for l in f]
  assert [(l['step'], l['kind']) for l in lines] == [(2, 'train'), (4, 'train'), (4, 'eval')]
  assert lines[0]['loss'] == 1.5 and lines[0]['nan'] == 'nan'
