"""uint8 pixels from the host, normalised on the device, against the host's float path.

The only difference is the rounding of resized pixels to uint8 (``preprocessing.to_pixels``): at
most 0.5 on the 0..255 scale, so at most 0.5 / 127.5 per normalised value ('inception') and
0.5 / (255 * min(std)) ('imagenet'), plus float32 rounding.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
import tensorflow as tf

from inception_jax import models
from inception_jax.data import crops
from inception_jax.data import preprocessing
from inception_jax.inference import evaluation
from inception_jax.inference import prediction
from inception_jax.models.inputs import IMAGENET_STD, normalize_images

# Largest difference per normalised value: half a pixel level, plus float32 rounding.
BOUND = {'inception': 0.5 / 127.5 + 1e-5, 'imagenet': 0.5 / (255 * min(IMAGENET_STD)) + 1e-5}


def _photo() -> tf.Tensor:
  with open(prediction.asset_path('example_photo.jpg'), 'rb') as f:
    return tf.constant(f.read())


@pytest.mark.parametrize('normalization', ['inception', 'imagenet'])
def test_device_normalisation_equals_the_hosts_on_whole_pixels(normalization):
  """On integer pixels the two paths differ by float32 rounding only, and in bfloat16 the
  device's result is the host's float32 result rounded once."""
  pixels = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1).repeat(3, axis=-1)
  host = preprocessing.normalize(tf.constant(pixels, tf.float32), normalization).numpy()
  device = np.asarray(jax.jit(lambda x: normalize_images(x, normalization))(pixels))
  assert device.dtype == np.float32
  np.testing.assert_allclose(device, host, rtol=0, atol=1e-6)
  half = np.asarray(normalize_images(jnp.asarray(pixels), normalization, jnp.bfloat16))
  assert half.dtype == ml_dtypes.bfloat16
  np.testing.assert_array_equal(
      half.astype(np.float32),
      np.asarray(normalize_images(jnp.asarray(pixels), normalization)).astype(
          ml_dtypes.bfloat16).astype(np.float32))
  floats = jnp.asarray(host)  # already normalised: passed through
  assert normalize_images(floats, normalization) is floats


@pytest.mark.parametrize('normalization', ['inception', 'imagenet'])
def test_train_view_within_half_a_pixel_of_the_float_path(normalization):
  config = {'image_size': 64, 'normalization': normalization}
  for i in range(4):
    seed = tf.constant([7, i])
    pixels = preprocessing.pixels_for_train(_photo(), seed, config).numpy()
    assert pixels.dtype == np.uint8
    floats = preprocessing.preprocess_for_train(_photo(), seed, config).numpy()
    diff = np.abs(np.asarray(normalize_images(pixels, normalization)) - floats)
    assert diff.max() <= BOUND[normalization]
    assert diff.max() > 0  # the resize makes fractional pixels: the bound is what is tested


@pytest.mark.parametrize('n', [1, 10, 144])
def test_eval_views_within_half_a_pixel_of_the_float_path(n):
  config = {'image_size': 32, 'eval_crop_fraction': 0.875, 'normalization': 'inception'}
  pixels = crops.make_views_fn(n, config)(_photo()).numpy()
  floats = crops.make_views_fn(n, {**config, 'uint8_images': False})(_photo()).numpy()
  assert pixels.dtype == np.uint8 and floats.dtype == np.float32
  assert pixels.shape == floats.shape == (n, 32, 32, 3)
  diff = np.abs(np.asarray(normalize_images(pixels, 'inception')) - floats)
  assert diff.max() <= BOUND['inception']


def test_model_outputs_of_the_two_paths_agree():
  """The same images through a network: logits within a small multiple of the input's change
  (a random-weight GoogLeNet, whose logits are O(1)); the classifier normalises uint8 itself."""
  model = models.create('googlenet', num_classes=10, width_multiplier=0.125)
  variables = models.init_variables(model, jax.random.PRNGKey(0), 64, train=False)
  config = {'image_size': 64, 'eval_crop_fraction': 0.875, 'normalization': 'inception'}
  pixels = crops.make_views_fn(10, config)(_photo()).numpy()
  floats = crops.make_views_fn(10, {**config, 'uint8_images': False})(_photo()).numpy()
  apply = jax.jit(lambda x: model.apply(variables, normalize_images(x, 'inception'),
                                        train=False).logits)
  a, b = np.asarray(apply(pixels)), np.asarray(apply(floats))
  scale = np.abs(b).max()
  assert np.abs(a - b).max() <= 1e-2 * max(scale, 1.0), (np.abs(a - b).max(), scale)
  clf = evaluation.Classifier(model, variables, normalization='inception')
  np.testing.assert_allclose(clf(pixels), clf(floats), atol=1e-3)
  np.testing.assert_allclose(clf(pixels), np.asarray(jax.nn.softmax(a)), atol=1e-6)
