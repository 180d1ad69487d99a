"""Model tests: exact parameter counts, shapes, aux-head behaviour, switches and input validation.

Full-size models are only traced (``jax.eval_shape``); anything that runs uses a 1/16-width model
with numpy-filled variables (``model.init`` compiles one random-number generator per parameter,
which is slow on CPU and adds nothing here: its shapes are what eval_shape checks).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inception_jax import models
from inception_jax.errors import UserError
from inception_jax.models import googlenet as googlenet_lib
from inception_jax.models import inception_v3 as inception_v3_lib
from inception_jax.models import layers

TINY = 1 / 16
# Tiny models run in microseconds; XLA's CPU backend optimisations only cost compile time here.
fast_jit = functools.partial(jax.jit, compiler_options={'xla_backend_optimization_level': 0})


@functools.lru_cache(maxsize=None)  # modules are hashable by value; traces are reused
def init_shapes(model, size, channels=3, batch=1, train=False):
  x = jax.ShapeDtypeStruct((batch, *((size, size) if isinstance(size, int) else size), channels),
                           jnp.float32)
  return jax.eval_shape(lambda x: model.init(jax.random.PRNGKey(0), x, train=train), x)


def n_params(model, size):
  params = init_shapes(model, size)['params']
  return sum(math.prod(l.shape) for l in jax.tree_util.tree_leaves(params))


def apply_shapes(model, variables, size, batch=2, **kwargs):
  x = jax.ShapeDtypeStruct((batch, *((size, size) if isinstance(size, int) else size), 3),
                           jnp.float32)
  rngs = {'dropout': jax.random.PRNGKey(1)}
  if kwargs.get('train'):
    return jax.eval_shape(lambda v, x: model.apply(v, x, rngs=rngs, mutable=['batch_stats'],
                                                   **kwargs)[0], variables, x)
  return jax.eval_shape(lambda v, x: model.apply(v, x, rngs=rngs, **kwargs), variables, x)


def numpy_variables(model, size, seed=0):
  """Random variables with the shapes ``model.init`` gives, without compiling its initialisers."""
  rng = np.random.default_rng(seed)

  def fill(path, leaf):  # numpy float32 arrays: no device op (so no compilation) per shape
    name = path[-1].key
    if name == 'kernel':
      value = rng.normal(0, math.sqrt(2 / math.prod(leaf.shape[:-1])), leaf.shape)
    elif name in ('scale', 'var'):
      value = rng.uniform(0.5, 1.5, leaf.shape)
    else:  # bias, mean
      value = rng.normal(0, 0.1, leaf.shape)
    return value.astype(np.float32)

  return jax.tree_util.tree_map_with_path(fill, init_shapes(model, size))


def leaves_named(tree, name):
  return [l for p, l in jax.tree_util.tree_leaves_with_path(tree) if p[-1].key == name]


# -------------------------------------------------------------------------------------------
# Registry.


def test_without_aux_heads_nothing_is_returned():
  model = models.create('googlenet', num_classes=7, aux_logits=False)
  assert apply_shapes(model, init_shapes(model, 64), 64, train=True).aux_logits == {}


def test_registry_names_and_contract_attributes():
  assert {'googlenet', 'googlenet_tv', 'inception_v3'} <= set(models.available())
  for name in models.available():
    model = models.create(name, num_classes=10)
    assert model.num_classes == 10 and model.dtype == jnp.float32
    assert model.aux_logits is True and model.width_multiplier == 1.0
    assert isinstance(model.min_input_size(), int)
  tv, paper = models.create('googlenet_tv'), models.create('googlenet')
  assert (tv.branch5x5_kernel, tv.dropout_rate, tv.maxpool4_window) == (3, 0.2, 2)
  assert (paper.branch5x5_kernel, paper.dropout_rate, paper.maxpool4_window) == (5, 0.4, 3)
  assert paper.aux_dropout_rate == 0.7 and paper.use_bn
  assert not models.create('googlenet_2014').use_bn


@pytest.mark.parametrize('call, match', [
    (lambda: models.create('resnet50'),
     r"unknown model 'resnet50'; choose one of: googlenet, .*inception_v3"),
    (lambda: models.create('googlenet', num_clases=10),
     r"unknown override 'num_clases'.*num_classes"),
    (lambda: models.create('inception_v3', stem='5x5'), r"stem must be one of '3x3', '7x7'"),
    (lambda: models.create('googlenet', module_kind='wide'), r"module_kind must be one of"),
    (lambda: models.create('googlenet', branch5x5_kernel=7), r'branch5x5_kernel must be one of'),
    (lambda: models.create('googlenet', num_classes=0), r'num_classes >= 1 \(got 0\)'),
    (lambda: models.create('inception_v3', width_multiplier=0.0), r'width_multiplier > 0'),
])
def test_create_rejects_bad_names_and_settings(call, match):
  with pytest.raises(UserError, match=match):
    call()


# -------------------------------------------------------------------------------------------
# Exact parameter counts (torchvision's convention: BN running statistics are not parameters).


@pytest.mark.parametrize('name, aux, expected', [
    ('googlenet_tv', False, 6_624_904),
    ('googlenet_tv', True, 13_004_888),
    ('googlenet', False, 7_005_832),
    ('googlenet', True, 13_385_816),
    ('inception_v3', False, 23_834_568),
    ('inception_v3', True, 27_161_264),
])
def test_exact_parameter_counts(name, aux, expected):
  model = models.create(name, aux_logits=aux)
  assert n_params(model, 299 if name == 'inception_v3' else 224) == expected


def test_parameter_names_mirror_torchvision():
  g = init_shapes(models.create('googlenet_tv'), 224)
  assert set(g['params']) == {'conv1', 'conv2', 'conv3', 'aux1', 'aux2', 'fc',
                              *(spec.name for spec in googlenet_lib.TABLE1)}
  assert set(g['params']['inception3a']) == {
      'branch1', 'branch2_0', 'branch2_1', 'branch3_0', 'branch3_1', 'branch4_1'}
  assert set(g['params']['aux1']) == {'conv', 'fc1', 'fc2'}
  assert g['params']['inception3a']['branch3_1']['conv']['kernel'].shape == (3, 3, 16, 32)
  assert g['params']['aux1']['fc1']['kernel'].shape == (2048, 1024)
  assert set(g['batch_stats']['conv1']['bn']) == {'mean', 'var'}
  assert 'bias' not in g['params']['conv1']['conv']  # no conv bias in front of BN
  v = init_shapes(models.create('inception_v3'), 299)['params']
  assert set(v) == {'Conv2d_1a_3x3', 'Conv2d_2a_3x3', 'Conv2d_2b_3x3', 'Conv2d_3b_1x1',
                    'Conv2d_4a_3x3', 'AuxLogits', 'fc',
                    *(name for name, _, _ in inception_v3_lib.LAYOUT)}
  assert set(v['Mixed_7b']) == {'branch1x1', 'branch3x3_1', 'branch3x3_2a', 'branch3x3_2b',
                                'branch3x3dbl_1', 'branch3x3dbl_2', 'branch3x3dbl_3a',
                                'branch3x3dbl_3b', 'branch_pool'}
  assert set(v['Mixed_7a']) == {'branch3x3_1', 'branch3x3_2', 'branch7x7x3_1', 'branch7x7x3_2',
                                'branch7x7x3_3', 'branch7x7x3_4'}
  assert set(v['AuxLogits']) == {'conv0', 'conv1', 'fc'}
  assert v['Mixed_6b']['branch7x7_2']['conv']['kernel'].shape == (1, 7, 128, 128)


# -------------------------------------------------------------------------------------------
# Every switch changes the graph, by exactly the parameters it should.


def _googlenet_diff(**overrides):
  base = models.create('googlenet', aux_logits=False)
  return n_params(base.clone(**overrides), 224) - n_params(base, 224)


def test_googlenet_branch5x5_kernel_difference_is_the_kernel_area():
  expected = sum((25 - 9) * s.ch5x5red * s.ch5x5 for s in googlenet_lib.TABLE1)
  assert -_googlenet_diff(branch5x5_kernel=3) == expected


def test_googlenet_factorize_5x5_is_two_3x3_of_the_5x5_width():
  # BN-Inception style r -> c (3x3) -> c (3x3): with GoogLeNet's widths (c = 2-4 r) this ADDS
  # parameters (9rc + 9c^2 > 25rc), unlike the equal-width argument of the v3 paper's Fig. 1.
  expected = sum(9 * s.ch5x5red * s.ch5x5 + 9 * s.ch5x5 ** 2 + 2 * s.ch5x5
                 - 25 * s.ch5x5red * s.ch5x5 for s in googlenet_lib.TABLE1)
  assert _googlenet_diff(factorize_5x5=True) == expected > 0


def test_googlenet_without_bn_swaps_bn_for_conv_biases_and_adds_lrn():
  model = models.create('googlenet')
  bn_channels = sum(l.shape[0] for l in leaves_named(init_shapes(model, 224)['params'], 'scale'))
  no_bn = init_shapes(models.create('googlenet_2014'), 224)
  assert n_params(model, 224) - n_params(models.create('googlenet_2014'), 224) == bn_channels
  assert 'batch_stats' not in no_bn
  assert no_bn['params']['conv1']['conv']['bias'].shape == (64,)


def test_googlenet_aux_heads_are_exactly_the_aux_parameters():
  def head(c_in, classes):  # 1x1 conv 128 + BN, FC 2048 -> 1024, FC 1024 -> classes
    return c_in * 128 + 2 * 128 + 2048 * 1024 + 1024 + 1024 * classes + classes
  for name in ('googlenet', 'googlenet_tv'):
    on, off = models.create(name, num_classes=10), models.create(name, num_classes=10,
                                                                aux_logits=False)
    assert n_params(on, 224) - n_params(off, 224) == head(512, 10) + head(528, 10)


def test_naive_module_shapes_and_cost():
  spec = googlenet_lib.TABLE1[0]  # 3a: 192 -> 64 + 128 + 32 + pool
  conv = layers.conv_block(True, 1.0, jnp.float32)
  x = jax.ShapeDtypeStruct((1, 28, 28, 192), jnp.float32)
  out, count = {}, {}
  for kind in ('naive', 'reduced'):
    module = googlenet_lib.InceptionV1Module(*spec[1:], conv_block=conv, kind=kind)
    variables = jax.eval_shape(lambda x: module.init(jax.random.PRNGKey(0), x), x)
    out[kind] = jax.eval_shape(module.apply, variables, x).shape
    count[kind] = sum(math.prod(l.shape) for l in jax.tree_util.tree_leaves(variables['params']))
  assert out['naive'] == (1, 28, 28, 64 + 128 + 32 + 192)  # the pool passes all 192 through
  assert out['reduced'] == (1, 28, 28, 64 + 128 + 32 + 32)
  assert count['naive'] == 192 * (64 + 9 * 128 + 25 * 32) + 2 * (64 + 128 + 32)
  assert count['reduced'] == (192 * (64 + 96 + 16 + 32) + 9 * 96 * 128 + 25 * 16 * 32
                              + 2 * (64 + 96 + 128 + 16 + 32 + 32))
  naive_net = models.create('googlenet', module_kind='naive', aux_logits=False)
  assert n_params(naive_net, 224) > 3 * n_params(models.create('googlenet', aux_logits=False), 224)
  assert apply_shapes(naive_net, init_shapes(naive_net, 64), 64).logits.shape == (2, 1000)


def _v3_diff(**overrides):
  base = models.create('inception_v3')
  return n_params(base.clone(**overrides), 299) - n_params(base, 299)


def test_inception_v3_7x7_stem():
  three = 3 * 32 * 9 + 32 * 32 * 9 + 32 * 64 * 9 + 2 * (32 + 32 + 64)
  seven = 3 * 64 * 49 + 2 * 64
  assert _v3_diff(stem='7x7') == seven - three
  model = models.create('inception_v3', stem='7x7')
  assert 'Conv2d_1a_7x7' in init_shapes(model, 299)['params']
  assert model.min_input_size() == 299 and model.trunk_min_size() == 75


def test_inception_v3_factorize_5x5():
  single = 64 * 96 * 25 + 2 * 96
  double = 64 * 96 * 9 + 96 * 96 * 9 + 2 * (96 + 96)
  assert _v3_diff(factorize_5x5=False) == 3 * (single - double) > 0  # Mixed_5b, 5c, 5d


def test_inception_v3_asymmetric_7x7():
  def c_module(c7, asym):
    if asym:
      pair_a = 7 * c7 * c7 + 7 * c7 * 192 + 2 * (c7 + 192)
      dbl = 7 * (3 * c7 * c7 + c7 * 192) + 2 * (3 * c7 + 192)
    else:
      pair_a = 49 * c7 * 192 + 2 * 192
      dbl = 49 * (c7 * c7 + c7 * 192) + 2 * (c7 + 192)
    return pair_a + dbl
  d_asym = 2 * 7 * 192 * 192 + 2 * (2 * 192)
  d_full = 49 * 192 * 192 + 2 * 192
  expected = sum(c_module(c7, False) - c_module(c7, True) for c7 in (128, 160, 160, 192))
  assert _v3_diff(asymmetric_7x7=False) == expected + d_full - d_asym > 0


def test_inception_v3_expanded_3x3():
  bank = 2 * (384 * 384 * 3 + 2 * 384)
  plain = 384 * 768 * 9 + 2 * 768
  assert _v3_diff(expanded_3x3=False) == 2 * 2 * (plain - bank) > 0  # 2 modules x 2 branches


def test_inception_v3_bn_auxiliary_and_aux_switches():
  assert _v3_diff(bn_auxiliary=False) == 768 - 2 * 768  # conv bias instead of BN scale+bias
  aux = 768 * 128 + 2 * 128 + 128 * 768 * 25 + 2 * 768 + 768 * 1000 + 1000
  assert _v3_diff(aux_logits=False) == -aux
  assert _v3_diff(aux_adaptive=True) == 0
  assert models.create('inception_v3', aux_adaptive=True).min_input_size() == 75
  assert models.create('inception_v3', aux_logits=False).min_input_size() == 75


def test_width_multiplier_scales_channels():
  half = models.create('googlenet', width_multiplier=0.5, aux_logits=False)
  params = init_shapes(half, 64)['params']
  assert params['conv1']['conv']['kernel'].shape == (7, 7, 3, 32)
  assert params['inception3a']['branch3_0']['conv']['kernel'].shape == (1, 1, 96, 8)
  assert params['fc']['kernel'].shape == (512, 1000)  # classes are never scaled
  tiny = models.create('inception_v3', width_multiplier=0.01)
  assert init_shapes(tiny, 299)['params']['Conv2d_1a_3x3']['conv']['kernel'].shape[-1] == 1


# -------------------------------------------------------------------------------------------
# Shapes at several sizes, and when the aux heads appear.


@pytest.mark.slow  # traces full-size networks at several sizes, six traces each
@pytest.mark.parametrize('name, overrides, sizes', [
    ('googlenet_tv', {}, [15, 224, (97, 150)]),
    ('googlenet', {}, [31, 64]),
    ('googlenet', dict(use_bn=False, factorize_5x5=True), [33]),
    ('inception_v3', dict(aux_adaptive=True), [75, 120]),
    ('inception_v3', {}, [299, (320, 300)]),
])
def test_output_shapes_and_aux_only_in_training(name, overrides, sizes):
  model = models.create(name, num_classes=7, **overrides)
  aux_names = {'aux1', 'aux2'} if 'googlenet' in name else {'aux'}
  variables = init_shapes(model, sizes[0])  # parameter shapes do not depend on the size
  for size in sizes:
    out = apply_shapes(model, variables, size)
    assert out.logits.shape == (2, 7) and out.logits.dtype == jnp.float32
    assert out.aux_logits == {}
  size = sizes[0]
  out = apply_shapes(model, variables, size, train=True)
  assert set(out.aux_logits) == aux_names
  assert all(a.shape == (2, 7) and a.dtype == jnp.float32 for a in out.aux_logits.values())
  assert set(apply_shapes(model, variables, size, return_aux=True).aux_logits) == aux_names
  assert apply_shapes(model, variables, size, train=True, return_aux=False).aux_logits == {}


@pytest.mark.slow  # traces three full-size networks
def test_stage_grids_match_torchvision():
  """Grid sides torchvision documents in its forward comments (224 / 299 px)."""
  grids = {}

  def record(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    if context.method_name == '__call__' and len(context.module.path) == 1:
      grids[context.module.path[0]] = out.shape[1:] if hasattr(out, 'shape') else None
    return out

  import flax.linen as nn
  with nn.intercept_methods(record):
    init_shapes.__wrapped__(models.create('googlenet_tv'), 224)
  assert grids['conv1'] == (112, 112, 64) and grids['conv3'] == (56, 56, 192)
  assert grids['inception3b'] == (28, 28, 480) and grids['inception4e'] == (14, 14, 832)
  assert grids['inception5b'] == (7, 7, 1024)
  with nn.intercept_methods(record):
    init_shapes.__wrapped__(models.create('inception_v3'), 299)
  assert grids['Conv2d_1a_3x3'] == (149, 149, 32) and grids['Conv2d_4a_3x3'] == (71, 71, 192)
  assert grids['Mixed_5d'] == (35, 35, 288) and grids['Mixed_6e'] == (17, 17, 768)
  assert grids['Mixed_7a'] == (8, 8, 1280) and grids['Mixed_7c'] == (8, 8, 2048)
  with nn.intercept_methods(record):
    init_shapes.__wrapped__(models.create('inception_v3', stem='7x7'), 299)
  assert grids['Conv2d_1a_7x7'] == (147, 147, 64) and grids['Mixed_7c'] == (8, 8, 2048)


# -------------------------------------------------------------------------------------------
# Inputs the architectures cannot take.


@pytest.mark.parametrize('name, overrides, size, match', [
    ('inception_v3', dict(aux_logits=False), 74, r'at least 75x75 pixels \(got 74x74\)'),
    ('inception_v3', dict(aux_adaptive=True), (75, 74), r'at least 75x75 pixels \(got 75x74\)'),
    ('inception_v3', {}, 298,
     r'auxiliary head needs images of at least 299x299.*; use images of at least 299 pixels, '
     r'or set aux_adaptive=True'),
    ('inception_v3', dict(stem='7x7'), 298, r'at least 299x299'),
    ('googlenet_tv', {}, 14, r'at least 15x15 pixels \(got 14x14\); use larger images'),
    ('googlenet', {}, 30, r'at least 31x31 pixels'),
])
def test_too_small_inputs_raise_with_the_minimum(name, overrides, size, match):
  model = models.create(name, **overrides)
  with pytest.raises(UserError, match=match):
    init_shapes(model, size)


@pytest.mark.slow  # traces full-size networks, Inception v3 at 299 px three times
def test_minimum_sizes_are_tight():
  """One pixel more than the minimum traces; the arithmetic agrees with the layer shapes."""
  cases = [('googlenet_tv', {}, 15), ('googlenet', {}, 31), ('inception_v3', {}, 299),
           ('inception_v3', dict(aux_logits=False), 75)]
  for name, overrides, minimum in cases:
    model = models.create(name, **overrides)
    assert model.min_input_size() == minimum
    init_shapes(model, minimum)
  # The released aux head only constrains training: eval at 75 px is fine once initialised.
  model = models.create('inception_v3')
  assert apply_shapes(model, init_shapes(model, 299), 75).logits.shape == (2, 1000)
  with pytest.raises(UserError, match='299x299'):
    apply_shapes(model, init_shapes(model, 299), 298, train=True)


@pytest.mark.parametrize('name', ['googlenet', 'inception_v3'])
@pytest.mark.parametrize('channels', [1, 4])
def test_channels_other_than_three_raise(name, channels):
  with pytest.raises(UserError, match=rf'3-channel RGB images \(got {channels} channels'):
    init_shapes(models.create(name), 299, channels=channels)


def test_bad_settings_raise_at_trace_time_too():
  with pytest.raises(UserError, match='num_classes >= 1'):
    init_shapes(googlenet_lib.GoogLeNet(num_classes=0), 64)
  with pytest.raises(UserError, match='width_multiplier > 0'):
    init_shapes(inception_v3_lib.InceptionV3(width_multiplier=-1.0), 299)
  with pytest.raises(UserError, match='NHWC'):
    jax.eval_shape(lambda x: models.create('googlenet').init(jax.random.PRNGKey(0), x),
                   jax.ShapeDtypeStruct((64, 64, 3), jnp.float32))


# -------------------------------------------------------------------------------------------
# Running tiny models: eval determinism, dropout, aux gradients, bf16, no NaN at the minimum.


def _ce(logits, labels):
  return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], axis=1))


def _run_family(model, size, with_eval=True):
  """Two compilations: an eval forward and a training forward + aux-loss gradient."""
  variables = numpy_variables(model, size)
  rng = np.random.default_rng(0)
  x = rng.normal(size=(4, size, size, 3)).astype(np.float32)
  labels = np.arange(4) % model.num_classes

  @fast_jit
  def evaluate(variables, x, key):
    return model.apply(variables, x, rngs={'dropout': key}, return_aux=True)

  @fast_jit
  def train(variables, x, key):
    def aux_loss(params):
      out, updates = model.apply({**variables, 'params': params}, x, train=True,
                                 rngs={'dropout': key}, mutable=['batch_stats'])
      return sum(_ce(a, labels) for a in out.aux_logits.values()), (out, updates)
    (_, (out, updates)), grads = jax.value_and_grad(aux_loss, has_aux=True)(variables['params'])
    return out, updates, grads

  # 'rbg' keys: the dropout masks compile much faster on CPU than with the default threefry.
  k1, k2 = jax.random.key(1, impl='rbg'), jax.random.key(2, impl='rbg')
  other = np.concatenate([x[:1], rng.normal(size=(3, size, size, 3)).astype(np.float32)])
  out = {}
  if with_eval:
    out.update(eval_k1=evaluate(variables, x, k1), eval_k2=evaluate(variables, x, k2),
               eval_other=evaluate(variables, other, k1))
  out['train_k1'], out['updates'], out['grads'] = train(variables, x, k1)
  out['train_k2'], _, _ = train(variables, x, k2)
  out['x'] = x
  return variables, out


@pytest.fixture(scope='module')
def googlenet_run():
  model = models.create('googlenet_tv', num_classes=5, width_multiplier=TINY)
  return model, *_run_family(model, 15)  # its minimum size


@pytest.fixture(scope='module')
def inception_v3_run():
  model = models.create('inception_v3', num_classes=5, width_multiplier=TINY, aux_adaptive=True)
  # Eval semantics live in the shared ConvBN/Dropout code and are checked on GoogLeNet.
  return model, *_run_family(model, 75, with_eval=False)  # its minimum size


@pytest.mark.slow  # compiles forward and gradient programs of the full-depth networks
@pytest.mark.parametrize('family, stem, downstream', [
    ('googlenet_run', 'conv1', ('inception4e', 'inception5a', 'inception5b', 'fc')),
    ('inception_v3_run', 'Conv2d_1a_3x3', ('Mixed_7a', 'Mixed_7b', 'Mixed_7c', 'fc')),
])
def test_tiny_model_behaviour(request, family, stem, downstream):
  model, variables, out = request.getfixturevalue(family)
  train1, train2 = out['train_k1'], out['train_k2']
  # Finite at the architecture's minimum input size.
  for o in (train1, out.get('eval_k1', train1)):
    assert np.isfinite(np.asarray(o.logits)).all()
    assert o.aux_logits and all(np.isfinite(np.asarray(a)).all() for a in o.aux_logits.values())
  if 'eval_k1' in out:
    # Eval: no dropout (the key does not matter) and BN running statistics (an image's logits
    # do not depend on the rest of the batch).
    ev1, ev2, other = out['eval_k1'], out['eval_k2'], out['eval_other']
    np.testing.assert_array_equal(ev1.logits, ev2.logits)
    np.testing.assert_allclose(other.logits[0], ev1.logits[0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(other.logits[1:], ev1.logits[1:])
  # Training: the dropout key matters (GoogLeNet's aux heads have dropout 0.7 too; Inception
  # v3's has none) and BN statistics are updated.
  assert not np.allclose(train1.logits, train2.logits)
  for name in train1.aux_logits:
    same = np.allclose(train1.aux_logits[name], train2.aux_logits[name])
    assert same == (getattr(model, 'aux_dropout_rate', 0.0) == 0.0), name
  old = np.asarray(leaves_named(variables['batch_stats'], 'mean')[0])
  new = np.asarray(leaves_named(out['updates']['batch_stats'], 'mean')[0])
  assert not np.allclose(old, new)
  # The aux loss alone trains the stem but reaches nothing after the last aux head.
  grads = out['grads']
  assert np.abs(np.asarray(grads[stem]['conv']['kernel'])).max() > 0
  for name in downstream:
    assert all(np.all(np.asarray(g) == 0) for g in jax.tree_util.tree_leaves(grads[name])), name


@pytest.mark.slow  # compiles a full-depth network (and shares googlenet_run)
def test_bfloat16_compute_keeps_float32_params(googlenet_run):
  model, variables, out = googlenet_run
  half = model.clone(dtype=jnp.bfloat16)
  shapes = init_shapes(half, 15)
  assert {l.dtype for l in jax.tree_util.tree_leaves(shapes)} == {jnp.dtype(jnp.float32)}
  f32 = out['eval_k1'].logits
  bf16 = fast_jit(half.apply)(variables, out['x']).logits
  assert bf16.dtype == jnp.float32 and np.isfinite(np.asarray(bf16)).all()
  scale = float(jnp.max(jnp.abs(f32)))
  assert float(jnp.max(jnp.abs(bf16 - f32))) < 0.05 * scale + 1e-3
  assert not np.array_equal(np.asarray(bf16), np.asarray(f32))  # really computed in bf16


# -------------------------------------------------------------------------------------------
# Pooling and LRN follow PyTorch's definitions (checked against direct numpy loops).


def _np_pool(x, k, s, p, ceil_mode, op, count_include_pad=True):
  n, h, w, c = x.shape
  oh = layers.pool_output_size(h, k, s, p, ceil_mode)
  ow = layers.pool_output_size(w, k, s, p, ceil_mode)
  y = np.zeros((n, oh, ow, c), np.float32)
  for i in range(oh):
    for j in range(ow):
      h0, w0 = i * s - p, j * s - p
      h1, w1 = min(h0 + k, h + p), min(w0 + k, w + p)   # window clipped to the padded input
      area = (h1 - h0) * (w1 - w0)
      hs, ws, he, we = max(h0, 0), max(w0, 0), min(h1, h), min(w1, w)
      win = x[:, hs:he, ws:we, :]
      if op == 'max':
        y[:, i, j] = win.max(axis=(1, 2))
      else:
        count = area if count_include_pad else win.shape[1] * win.shape[2]
        y[:, i, j] = win.sum(axis=(1, 2)) / count
  return y


def test_pool_output_size_matches_torch():
  # (size, window, stride, pad, ceil) -> torch's output length
  cases = {(112, 3, 2, 0, True): 56, (14, 2, 2, 0, True): 7, (14, 3, 2, 0, True): 7,
           (2, 3, 2, 0, True): 1, (1, 3, 2, 0, True): 0, (1, 2, 2, 0, True): 1,
           (147, 3, 2, 0, False): 73, (17, 5, 3, 0, False): 5, (16, 5, 3, 0, False): 4,
           (5, 3, 2, 1, True): 3, (6, 3, 2, 1, True): 4}
  for args, expected in cases.items():
    assert layers.pool_output_size(*args) == expected, args


@pytest.mark.parametrize('h, w, k, s, p, ceil_mode', [
    (8, 7, 3, 2, 0, True), (7, 7, 3, 1, 1, True), (9, 6, 5, 3, 0, False), (6, 6, 3, 2, 1, True),
    (2, 3, 3, 2, 0, True),
])
def test_pools_match_torch_definitions(h, w, k, s, p, ceil_mode):
  x = np.random.default_rng(0).normal(size=(2, h, w, 3)).astype(np.float32)
  np.testing.assert_allclose(layers.max_pool(jnp.asarray(x), k, s, p, ceil_mode),
                             _np_pool(x, k, s, p, ceil_mode, 'max'), rtol=1e-6)
  for include in (True, False):
    np.testing.assert_allclose(
        layers.avg_pool(jnp.asarray(x), k, s, p, ceil_mode, count_include_pad=include),
        _np_pool(x, k, s, p, ceil_mode, 'avg', include), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('size, out', [(14, 4), (17, 5), (8, 4), (3, 5), (1, 4)])
def test_adaptive_avg_pool_matches_torch_definition(size, out):
  x = np.random.default_rng(1).normal(size=(2, size, size + 1, 3)).astype(np.float32)
  expected = np.zeros((2, out, out, 3), np.float32)
  for i in range(out):
    for j in range(out):
      hs, he = (i * size) // out, -(-((i + 1) * size) // out)
      ws, we = (j * (size + 1)) // out, -(-((j + 1) * (size + 1)) // out)
      expected[:, i, j] = x[:, hs:he, ws:we].mean(axis=(1, 2))
  np.testing.assert_allclose(layers.adaptive_avg_pool(jnp.asarray(x), out), expected,
                             rtol=1e-5, atol=1e-6)


def test_local_response_norm_matches_caffe_formula():
  x = np.random.default_rng(2).normal(size=(1, 2, 2, 9)).astype(np.float32) * 30
  expected = np.empty_like(x)
  for c in range(9):
    lo, hi = max(0, c - 2), min(9, c + 3)
    expected[..., c] = x[..., c] / (1 + 1e-4 / 5 * (x[..., lo:hi] ** 2).sum(-1)) ** 0.75
  np.testing.assert_allclose(layers.local_response_norm(jnp.asarray(x)), expected, rtol=1e-5)
