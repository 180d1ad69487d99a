"""Keras ``applications.InceptionV3`` -> Flax: the switches, the file checks, and logit parity.

The parity test builds Keras's own network (``weights=None``: nothing is downloaded), perturbs
every weight and every batch-norm moving statistic (so each array's mapping matters), saves it as
``.keras`` and ``.weights.h5``, converts both with the command line's ``main`` and compares the
restored Flax model's logits with Keras's on one random batch.
"""

from __future__ import annotations

import zipfile

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inception_jax import models
from inception_jax.convert import common
from inception_jax.convert import keras as keras_convert
from inception_jax.errors import UserError
from inception_jax.tools import convert as convert_cli
from _parity import RTOL  # pylint: disable=g-bad-import-order

SIZE = 75            # Keras's smallest InceptionV3 input (include_top=True accepts it)
CLASSES = 10
# float32 on CPU at 75 px: max |diff| 9.5e-7, i.e. 8.4e-7 of max |logit| (torchvision's parity is
# 1.3e-6); the bound, _parity.RTOL, leaves room for other kernels. With count_include_pad=True it
# is 0.19.


def _param_count(**overrides) -> tuple[int, int]:
  """(parameters, batch-norm channels) of inception_v3 with ``overrides`` (abstract trace)."""
  model = models.create('inception_v3', **overrides)
  size = model.min_input_size()   # parameters do not depend on it; the trace is cheaper
  variables = jax.eval_shape(lambda: model.init(
      {'params': jax.random.PRNGKey(0), 'dropout': jax.random.PRNGKey(0)},
      jnp.zeros((1, size, size, 3)), train=True))
  flat = common.flatten(dict(variables['params']))
  bn_channels = sum(int(np.prod(s.shape)) for p, s in flat.items() if p[-2:-1] == ('bn',)
                    and p[-1] == 'bias')
  return sum(int(np.prod(s.shape)) for s in flat.values()), bn_channels


def test_switch_defaults_keep_the_released_parameter_counts():
  full, bn_channels = _param_count()
  assert full == 27_161_264
  assert _param_count(aux_logits=False)[0] == 23_834_568
  assert _param_count(bn_scale=False)[0] == full - bn_channels
  no_aux, no_aux_channels = _param_count(aux_logits=False)
  assert _param_count(aux_logits=False, bn_scale=False)[0] == 23_834_568 - no_aux_channels
  assert _param_count(aux_logits=False, avg_pool_count_include_pad=False)[0] == 23_834_568


def test_flax_layout_is_keras_order():
  """Every ConvBN of Keras's network appears once in Keras's creation order, and nothing else."""
  order = keras_convert.keras_order()
  layout = keras_convert.flax_layout(CLASSES)
  modules = {'/'.join(p[1:-2]) for p in layout if p[-2] in ('conv', 'bn')}
  assert len(order) == len(set(order)) == 94 and set(order) == modules
  assert not any(p[-1] == 'scale' for p in layout)
  assert layout[('params', 'fc', 'kernel')] == (2048, CLASSES)


def _cli(weights, out) -> dict:
  return convert_cli.main(['--from', 'keras', '--model', 'inception_v3', '--weights',
                           str(weights), '--out', str(out)])


def _h5(path, arrays: dict[str, tuple[int, ...]]) -> None:
  with h5py.File(path, 'w') as f:
    for name, shape in arrays.items():
      f.create_dataset(name, data=np.zeros(shape, np.float32))


def test_bad_inputs_are_one_line_user_errors(tmp_path):
  with pytest.raises(UserError, match=r"cannot convert 'googlenet_tv' from Keras; choose one of: "
                                      r'inception_v3'):
    convert_cli.main(['--from', 'keras', '--model', 'googlenet_tv', '--weights', 'w.keras',
                      '--out', str(tmp_path / 'o')])
  with pytest.raises(UserError, match='does not exist'):
    _cli(tmp_path / 'nope.keras', tmp_path / 'o')
  (tmp_path / 'w.pth').write_bytes(b'x')
  with pytest.raises(UserError, match=r'w\.pth is not a Keras file: expected a name ending in'):
    _cli(tmp_path / 'w.pth', tmp_path / 'o')

  # Another architecture (a small CNN, as Keras 3 lays out a .weights.h5).
  other = tmp_path / 'cnn.weights.h5'
  _h5(other, {'layers/conv2d/vars/0': (3, 3, 3, 16), 'layers/conv2d/vars/1': (16,),
              'layers/dense/vars/0': (16, 10), 'layers/dense/vars/1': (10,)})
  with pytest.raises(UserError, match=r'cnn\.weights\.h5 is not a Keras InceptionV3: it has 1 '
                                      r'dense kernels \[\(16, 10\)\]'):
    _cli(other, tmp_path / 'o')
  # Right classifier, wrong trunk.
  _h5(other, {'layers/conv2d/vars/0': (3, 3, 3, 32), 'layers/dense/vars/0': (2048, 10),
              'layers/dense/vars/1': (10,)})
  with pytest.raises(UserError, match=r'not a Keras InceptionV3: it has 1 convolution kernels, '
                                      r'InceptionV3 94'):
    _cli(other, tmp_path / 'o')

  # Truncated files: an HDF5 file and a .keras zip cut in half.
  whole = tmp_path / 'whole.h5'
  _h5(whole, {f'layers/d{i}/vars/0': (64, 64) for i in range(8)})
  data = whole.read_bytes()
  (tmp_path / 'cut.weights.h5').write_bytes(data[:len(data) // 2])
  with pytest.raises(UserError, match=r'cut\.weights\.h5 is truncated or not a Keras file'):
    _cli(tmp_path / 'cut.weights.h5', tmp_path / 'o')
  with zipfile.ZipFile(tmp_path / 'whole.keras', 'w') as archive:
    archive.writestr('config.json', '{}')
    archive.writestr('model.weights.h5', data)
  data = (tmp_path / 'whole.keras').read_bytes()
  (tmp_path / 'cut.keras').write_bytes(data[:len(data) // 2])
  with pytest.raises(UserError, match=r'cut\.keras is truncated or not a Keras file'):
    _cli(tmp_path / 'cut.keras', tmp_path / 'o')
  assert not (tmp_path / 'o').exists()


def _perturbed_keras_model(keras):
  """Keras's InceptionV3 with random weights, BN offsets and moving statistics."""
  keras.utils.set_random_seed(0)
  model = keras.applications.InceptionV3(weights=None, classifier_activation=None,
                                         input_shape=(SIZE, SIZE, 3), classes=CLASSES)
  rng = np.random.default_rng(0)
  for layer in model.layers:
    weights = layer.get_weights()
    if isinstance(layer, keras.layers.Conv2D):
      (kernel,) = weights
      fan_in = np.prod(kernel.shape[:3])
      weights = [rng.normal(0, np.sqrt(2 / fan_in), kernel.shape)]
    elif isinstance(layer, keras.layers.BatchNormalization):
      beta, mean, var = weights
      weights = [rng.normal(0, 0.2, beta.shape), rng.normal(0, 0.2, mean.shape),
                 rng.uniform(0.5, 2.0, var.shape)]
    elif weights:
      weights = [rng.normal(0, 0.05, w.shape) for w in weights]
    layer.set_weights([w.astype(np.float32) for w in weights])
  return model


@pytest.mark.slow
def test_logits_match_keras(tmp_path, capsys):
  keras = pytest.importorskip('keras')
  from inception_jax.inference import restore  # pylint: disable=g-import-not-at-top

  reference = _perturbed_keras_model(keras)
  reference.save(tmp_path / 'v3.keras')
  reference.save_weights(tmp_path / 'v3.weights.h5')
  images = np.random.default_rng(1).uniform(-1, 1, (2, SIZE, SIZE, 3)).astype(np.float32)
  expected = np.asarray(reference.predict(images, verbose=0), np.float64)

  meta = _cli(tmp_path / 'v3.keras', tmp_path / 'out')
  assert '--config.model_overrides.bn_scale=False' in capsys.readouterr().out
  assert meta['model_overrides'] == {'aux_logits': False, 'bn_scale': False,
                                     'avg_pool_count_include_pad': False}
  assert (meta['normalization'], meta['image_size'], meta['eval_crop_fraction'],
          meta['num_classes']) == ('inception', 299, 0.875, CLASSES)
  model, variables, _ = restore.load_for_inference(tmp_path / 'out')
  assert not model.bn_scale and not model.avg_pool_count_include_pad and not model.aux_logits

  def logits(m):
    return np.asarray(m.apply(variables, jnp.asarray(images), train=False).logits, np.float64)

  scale = np.max(np.abs(expected))
  err = np.max(np.abs(logits(model) - expected))
  assert scale > 0.1 and err / scale < RTOL, (err, err / scale)
  # The parity depends on every switch: the torchvision-style pool misses it by far.
  wrong = np.max(np.abs(logits(model.clone(avg_pool_count_include_pad=True)) - expected))
  assert wrong / scale > 1e3 * RTOL, wrong / scale

  # The weights-only file converts to the same arrays.
  _cli(tmp_path / 'v3.weights.h5', tmp_path / 'out2')
  _, again, _ = restore.load_for_inference(tmp_path / 'out2')
  jax.tree.map(np.testing.assert_array_equal, again, variables)
