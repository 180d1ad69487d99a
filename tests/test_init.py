"""init_variables: model.init's tree, shapes, dtypes and distributions, deterministic in the key."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inception_jax import models
from inception_jax.models import init_variables


def _reference(model, size):
  """model.init's abstract variables (shapes and dtypes; no compute)."""
  return jax.eval_shape(lambda: model.init(
      {'params': jax.random.PRNGKey(0), 'dropout': jax.random.PRNGKey(0)},
      jnp.zeros((2, size, size, 3)), train=True))


def test_same_tree_and_constants_as_model_init():
  model = models.create('googlenet', num_classes=10, width_multiplier=0.25)
  fast = init_variables(model, jax.random.PRNGKey(0), 64)
  ref = _reference(model, 64)
  assert jax.tree.structure(fast) == jax.tree.structure(ref)
  for a, b in zip(jax.tree.leaves(fast), jax.tree.leaves(ref)):
    assert a.shape == b.shape and a.dtype == b.dtype
  # Constant initialisers are exact: BN scale/offset, running statistics, dense biases.
  for path, value in ((('params', 'conv1', 'bn', 'scale'), 1.0),
                      (('params', 'conv1', 'bn', 'bias'), 0.0),
                      (('batch_stats', 'conv1', 'bn', 'mean'), 0.0),
                      (('batch_stats', 'conv1', 'bn', 'var'), 1.0),
                      (('params', 'fc', 'bias'), 0.0)):
    a = fast
    for k in path:
      a = a[k]
    np.testing.assert_array_equal(a, np.full(a.shape, value, np.float32))


@pytest.mark.slow  # compiles the initialiser of a half-width Inception v3
def test_kernels_follow_their_initialisers_distribution():
  model = models.create('inception_v3', num_classes=10, width_multiplier=0.5, aux_logits=False)
  v = init_variables(model, jax.random.PRNGKey(1), 75)
  k = np.asarray(v['params']['Mixed_7c']['branch3x3dbl_1']['conv']['kernel'])  # 1x1, fan_in 1024
  fan_in = np.prod(k.shape[:-1])
  np.testing.assert_allclose(k.std(), np.sqrt(2.0 / fan_in), rtol=0.05)   # He, truncated normal
  assert np.abs(k).max() <= 2 * np.sqrt(2.0 / fan_in) / 0.87962566103423978 + 1e-6
  fc = np.asarray(v['params']['fc']['kernel'])
  np.testing.assert_allclose(fc.std(), np.sqrt(1.0 / fc.shape[0]), rtol=0.1)


@pytest.mark.slow  # compiles three initialisers of a whole GoogLeNet
def test_deterministic_in_the_key_and_keys_differ():
  model = models.create('googlenet', num_classes=5, width_multiplier=0.125)
  a = init_variables(model, jax.random.PRNGKey(3), 32)
  b = init_variables(model, jax.random.PRNGKey(3), 32)
  c = init_variables(model, jax.random.key(4, impl='rbg'), 32)
  jax.tree.map(np.testing.assert_array_equal, a, b)
  assert not np.array_equal(a['params']['conv1']['conv']['kernel'],
                            c['params']['conv1']['conv']['kernel'])
  # Different layers get different draws (no two kernels of equal shape are equal).
  k1 = a['params']['inception3a']['branch1']['conv']['kernel']
  k2 = a['params']['inception3a']['branch2_0']['conv']['kernel']
  assert k1.shape != k2.shape or not np.array_equal(k1, k2)


class _OddInit(nn.Module):
  """An initialiser init_variables does not recognise: it is called under the same jit."""

  @nn.compact
  def __call__(self, x, train=False):
    return nn.Dense(3, bias_init=nn.initializers.constant(0.5))(x.reshape(x.shape[0], -1))


class _OwnState(nn.Module):
  """A variable of the module's own (and a param without an ``*_init`` attribute)."""

  @nn.compact
  def __call__(self, x, train=False):
    count = self.variable('counters', 'n', lambda: jnp.full((), 7, jnp.int32))
    w = self.param('w', lambda key, shape: jnp.full(shape, 2.0), (3,))
    return nn.Dense(2)(x.reshape(x.shape[0], -1)) * count.value + w.sum()


def test_unrecognised_initialiser_is_called():
  v = init_variables(_OddInit(), jax.random.PRNGKey(0), 4, channels=1)
  np.testing.assert_array_equal(v['params']['Dense_0']['bias'], np.full(3, 0.5, np.float32))
  assert v['params']['Dense_0']['kernel'].shape == (16, 3)


def test_unattributable_variables_fall_back_to_model_init():
  v = init_variables(_OwnState(), jax.random.PRNGKey(0), 4, channels=1)
  assert int(v['counters']['n']) == 7
  np.testing.assert_array_equal(v['params']['w'], np.full(3, 2.0, np.float32))
  assert v['params']['Dense_0']['kernel'].shape == (16, 2)
