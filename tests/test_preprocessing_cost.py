"""The cheaper preprocessing gives the images of the direct formula, up to float rounding,
and the benchmark's decode-only floor decodes exactly the windows the recipes decode."""

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from inception_jax.data import preprocessing

GOOGLENET = {'image_size': 224, 'crop_area_range': (0.08, 1.0), 'normalization': 'imagenet'}
INCEPTION_V3 = {'image_size': 299, 'crop_area_range': (0.1, 1.0), 'normalization': 'inception'}
# |x * (1/std) + (-mean/std) - (x - mean) / std| for x in [0, 255] (outputs within [-2.2, 2.7]):
# a few float32 ulps.
TOLERANCE = 2e-6


def _jpeg(seed: int, size=(375, 500)) -> tf.Tensor:
  rng = np.random.default_rng(seed)
  smooth = np.asarray(Image.fromarray(rng.integers(0, 256, (12, 16, 3), np.uint8)).resize(
      size[::-1], Image.BICUBIC))
  out = io.BytesIO()
  Image.fromarray(smooth).save(out, 'JPEG', quality=90)
  return tf.constant(out.getvalue())


def _direct_normalize(image, normalization):
  """The direct formula: a per-channel broadcast and a division."""
  if normalization == 'inception':
    return image / 127.5 - 1.0
  mean = tf.constant(preprocessing.IMAGENET_MEAN, tf.float32) * 255.0
  std = tf.constant(preprocessing.IMAGENET_STD, tf.float32) * 255.0
  return (image - mean) / std


@pytest.mark.parametrize('config', [GOOGLENET, INCEPTION_V3], ids=['googlenet', 'inception_v3'])
def test_train_and_eval_views_match_the_direct_arithmetic(config):
  for i in range(4):
    image, seed = _jpeg(i), tf.constant([i, 3], tf.int64)
    new = preprocessing.preprocess_for_train(image, seed, config).numpy()
    # The same crop, resize and flip; only the normalisation is the direct formula.
    crop_seed, flip_seed = preprocessing._train_seeds(seed)  # pylint: disable=protected-access
    window = preprocessing.decode_for_train(image, seed, config)
    flipped = tf.image.stateless_random_flip_left_right(
        preprocessing.resize(window, config['image_size']), flip_seed)
    direct = _direct_normalize(flipped, config['normalization']).numpy()
    np.testing.assert_allclose(new, direct, rtol=0, atol=TOLERANCE)
    if config['normalization'] == 'inception':
      np.testing.assert_array_equal(new, direct)  # unchanged arithmetic: bit-exact
    del crop_seed
    new_eval = preprocessing.preprocess_for_eval(image, config).numpy()
    resized = preprocessing.resize(preprocessing.decode_for_eval(image, config),
                                   config['image_size'])
    direct_eval = _direct_normalize(resized, config['normalization']).numpy()
    np.testing.assert_allclose(new_eval, direct_eval, rtol=0, atol=TOLERANCE)


def test_imagenet_normalisation_matches_mean_std_at_every_level_and_shape():
  """Every 0..255 level, as one image (per-pixel constants), a batch of views (constants
  broadcast over the batch) and an image of unknown shape (per-channel constants)."""
  levels = np.arange(256, dtype=np.float32)
  image = np.broadcast_to(levels[:, None, None], (256, 4, 3)).copy()
  want = (image / 255 - np.array(preprocessing.IMAGENET_MEAN)) / np.array(
      preprocessing.IMAGENET_STD)
  np.testing.assert_allclose(preprocessing.normalize(image, 'imagenet'), want, atol=TOLERANCE)
  batch = np.stack([image, image[::-1]])
  np.testing.assert_allclose(preprocessing.normalize(batch, 'imagenet'),
                             np.stack([want, want[::-1]]), atol=TOLERANCE)
  unknown = tf.function(lambda x: preprocessing.normalize(x, 'imagenet'),
                        input_signature=[tf.TensorSpec([None, None, 3], tf.float32)])
  np.testing.assert_allclose(unknown(image), want, atol=TOLERANCE)


@pytest.mark.parametrize('size', [224, 299, 40])  # downscaled and upscaled
def test_resize_of_float_pixels_is_tfs_resize_of_the_uint8_pixels_bit_for_bit(size):
  """The cheaper resize (cast to float32 first) is TF's bilinear resize of the uint8 pixels."""
  for i in range(3):
    pixels = tf.image.decode_jpeg(_jpeg(i, size=(300 + 20 * i, 250)))
    want = tf.image.resize(pixels, [size, size], method='bilinear', antialias=False)
    np.testing.assert_array_equal(preprocessing.resize(pixels, size).numpy(), want.numpy())


@pytest.mark.parametrize('size', [224, 299, 40])
def test_flipping_after_the_resize_equals_flipping_before_it_up_to_float_rounding(size):
  """The training view flips the resized image; the half-pixel-centred bilinear resize is
  mirror-symmetric, so that is the mirrored crop resized, up to float rounding of the sample
  positions (measured: at most 0.007 of 255 on photographs), and the uint8 pixels agree to 1."""
  for i in range(3):
    window = tf.image.decode_jpeg(_jpeg(i, size=(300 + 20 * i, 250)))[5:200, 10:240]
    after = tf.reverse(preprocessing.resize(window, size), [1]).numpy()
    before = preprocessing.resize(tf.reverse(window, [1]), size).numpy()
    np.testing.assert_allclose(after, before, rtol=0, atol=0.01)
    pixels = [preprocessing.to_pixels(x).numpy().astype(int) for x in (after, before)]
    assert np.abs(pixels[0] - pixels[1]).max() <= 1


def test_uint8_training_view_is_the_rounded_float_view():
  """pixels_for_train flips after rounding, train_view before: the same pixels, bit for bit."""
  for config in (GOOGLENET, INCEPTION_V3, {**GOOGLENET, 'augment': 'pad_and_crop'}):
    for i in range(4):
      image, seed = _jpeg(i), tf.constant([i, 5], tf.int64)
      np.testing.assert_array_equal(
          preprocessing.pixels_for_train(image, seed, config).numpy(),
          preprocessing.to_pixels(preprocessing.train_view(image, seed, config)).numpy())


def test_train_view_is_bit_exact_run_to_run():
  image, seed = _jpeg(7), tf.constant([1, 2], tf.int64)
  runs = [preprocessing.preprocess_for_train(image, seed, GOOGLENET).numpy() for _ in range(2)]
  np.testing.assert_array_equal(*runs)


def test_the_decode_only_floor_decodes_the_recipes_windows():
  """decode_for_train is the crop preprocess_for_train resizes (same seed, same window), and
  decode_for_eval its centre window: checked pixel for pixel against decode_and_crop_jpeg of
  the window computed here (a full decode differs near the window's edges: chroma upsampling)."""
  image = _jpeg(3)
  full = tf.io.decode_jpeg(image, channels=3).numpy()

  def decoded(window):
    return tf.image.decode_and_crop_jpeg(image, window, channels=3).numpy()

  for i in range(5):
    seed = tf.constant([i, 9], tf.int64)
    crop_seed, _ = preprocessing._train_seeds(seed)  # pylint: disable=protected-access
    y, x, h, w = preprocessing.inception_crop_window(
        tf.shape(full)[:2], crop_seed, GOOGLENET['crop_area_range']).numpy()
    window = preprocessing.decode_for_train(image, seed, GOOGLENET).numpy()
    assert window.shape == (h, w, 3)
    np.testing.assert_array_equal(window, decoded([y, x, h, w]))
  centre = preprocessing.center_crop_window(tf.shape(full)[:2], 0.875).numpy()
  np.testing.assert_array_equal(preprocessing.decode_for_eval(image, GOOGLENET).numpy(),
                                decoded(centre))
