"""Image preprocessing in TensorFlow: Inception crop, centre crop, flip, resize, normalisation.

Public because evaluation variants (10-crop, 144-crop) and the pipeline benchmark reuse them.
Every function takes either encoded image bytes (a scalar ``tf.string``: JPEG, PNG, GIF or BMP) or
a decoded ``uint8`` tensor [H, W, C] with C in {1, 3}, and returns ``float32`` [size, size, 3]
(``preprocess_for_*``: normalised) or ``uint8`` [size, size, 3] (``pixels_for_*``: the same view
before normalisation, which the jitted programs do on the device,
:func:`inception_jax.models.inputs.normalize_images`).

* JPEG bytes take the fast path: ``tf.image.decode_and_crop_jpeg`` decodes only the crop window
  (the TF-slim / Flax ImageNet trick, several times faster for small crops of large images).
  Other bytes are decoded in full with ``tf.io.decode_image`` and then cropped.
* All randomness comes from stateless ops driven by an explicit ``seed`` (int32/int64 [2]), so a
  parallel ``map`` produces bit-identical results whatever the thread schedule.
* Grey-scale images are converted to RGB (digits, MNIST) so every model sees 3 channels.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np
import tensorflow as tf

from inception_jax.config.schema import AUGMENTATIONS, NORMALIZATIONS  # the config's choices
from inception_jax.models.inputs import IMAGENET_MEAN, IMAGENET_STD, imagenet_scale_offset


def _get(config: Any, key: str, default: Any) -> Any:
  """Reads an optional field from a ConfigDict, a dict or an object."""
  if isinstance(config, Mapping):
    value = config.get(key, default)
  elif hasattr(config, 'get'):
    value = config.get(key, default)
  else:
    value = getattr(config, key, default)
  return default if value is None else value


def _is_bytes(image: tf.Tensor) -> bool:
  return image.dtype == tf.string


def _to_rgb(image: tf.Tensor) -> tf.Tensor:
  """[H, W, C] -> [H, W, 3]: grey (+alpha) to RGB, alpha dropped; static channels downstream."""
  image = tf.convert_to_tensor(image)
  channels = image.shape[-1]
  if channels == 3:
    return image
  if channels in (1, 2):
    return tf.image.grayscale_to_rgb(image[..., :1])
  if channels is not None and channels > 3:
    return image[..., :3]
  image = tf.cond(tf.shape(image)[-1] < 3, lambda: tf.image.grayscale_to_rgb(image[..., :1]),
                  lambda: image[..., :3])
  return tf.ensure_shape(image, [None, None, 3])


def _decode_full(image_bytes: tf.Tensor) -> tf.Tensor:
  """Decodes any supported format to uint8 RGB (first frame of a GIF)."""
  image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False,
                             dtype=tf.uint8)
  return tf.ensure_shape(image, [None, None, 3])


def decode_and_crop(image: tf.Tensor,
                    window_fn: Callable[[tf.Tensor], tf.Tensor]) -> tf.Tensor:
  """Decodes ``image`` and crops ``window_fn([height, width]) -> [y, x, h, w]`` out of it.

  JPEG bytes read only their header for the shape and decode only the window; other formats
  are decoded once in full and sliced. Decoded tensors are sliced directly.
  """
  def crop(full: tf.Tensor) -> tf.Tensor:
    window = tf.cast(window_fn(tf.shape(full)[:2]), tf.int32)
    return tf.slice(full, [window[0], window[1], 0], [window[2], window[3], 3])

  if not _is_bytes(image):
    return crop(_to_rgb(image))

  def jpeg() -> tf.Tensor:
    window = tf.cast(window_fn(tf.image.extract_jpeg_shape(image)[:2]), tf.int32)
    return tf.image.decode_and_crop_jpeg(image, window, channels=3)

  cropped = tf.cond(tf.io.is_jpeg(image), jpeg, lambda: crop(_decode_full(image)))
  return tf.ensure_shape(cropped, [None, None, 3])


def decode(image: tf.Tensor) -> tf.Tensor:
  """Encoded bytes or a decoded tensor -> uint8 [H, W, 3]."""
  return _decode_full(image) if _is_bytes(image) else _to_rgb(image)


def center_crop_window(shape: tf.Tensor, crop_fraction: float) -> tf.Tensor:
  """Square window of ``crop_fraction`` x the shorter side, centred (the 0.875 ImageNet rule)."""
  height, width = shape[0], shape[1]
  side = tf.cast(tf.minimum(height, width), tf.float32)
  crop = tf.maximum(tf.cast(tf.math.round(side * crop_fraction), tf.int32), 1)
  offset_y = (height - crop + 1) // 2
  offset_x = (width - crop + 1) // 2
  return tf.stack([offset_y, offset_x, crop, crop])


def inception_crop_window(shape: tf.Tensor, seed: tf.Tensor,
                          area_range: Sequence[float] = (0.08, 1.0),
                          aspect_ratio_range: Sequence[float] = (3 / 4, 4 / 3),
                          max_attempts: int = 10) -> tf.Tensor:
  """Random crop window [y, x, h, w] of the Inception papers (Szegedy et al. 2015, Sec. 6).

  Sampled by TF's ``stateless_sample_distorted_bounding_box`` with the whole image as the box and
  ``min_object_covered`` equal to the lower area bound (so the whole ``area_range`` is reachable;
  TF-slim passes 0.1). Each of ``max_attempts`` tries draws an aspect ratio (width / height)
  uniformly in ``aspect_ratio_range``, then a height uniformly (whole pixels) between the heights
  that give the smallest and the largest area of ``area_range`` at that ratio (capped by the image),
  and a uniform position; the first window whose area is in ``area_range`` is kept. The area is
  therefore not uniform in ``area_range``: uniform heights make large crops more frequent than
  torchvision's ``RandomResizedCrop`` (area uniform, ratio log-uniform) does.

  When no try succeeds the op returns the whole image. TF-slim (and the Cloud TPU reference) then
  train on the whole image, stretched to a square by the resize; this function returns instead
  the centred square of the shorter side (``center_crop_window(shape, 1.0)``; the Flax ImageNet
  example takes a 0.875 centre crop there). A sampled window equal to the whole image is treated
  the same way, since it cannot be told from a failure.
  """
  bbox = tf.constant([0.0, 0.0, 1.0, 1.0], dtype=tf.float32, shape=[1, 1, 4])
  begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
      tf.concat([shape, [3]], axis=0),
      bounding_boxes=bbox,
      seed=seed,
      min_object_covered=float(area_range[0]),
      aspect_ratio_range=tuple(float(a) for a in aspect_ratio_range),
      area_range=tuple(float(a) for a in area_range),
      max_attempts=max_attempts,
      use_image_if_no_bounding_boxes=True)
  window = tf.stack([begin[0], begin[1], size[0], size[1]])
  failed = tf.logical_and(tf.equal(size[0], shape[0]), tf.equal(size[1], shape[1]))
  return tf.cond(failed, lambda: center_crop_window(shape, 1.0), lambda: window)


def resize(image: tf.Tensor, image_size: int) -> tf.Tensor:
  """Bilinear resize to [image_size, image_size, 3] float32 on the 0..255 scale.

  The pixels are cast to float32 first: TF's bilinear kernel computes in float32 either way (the
  output is bit-identical), but reads float32 input faster than uint8, enough to outweigh the cast
  (benchmarks/RESULTS.md, input pipeline).
  """
  image = tf.image.resize(tf.cast(image, tf.float32), [image_size, image_size],
                          method='bilinear', antialias=False)
  return tf.ensure_shape(image, [image_size, image_size, 3])


def _imagenet_affine(shape: tuple[int, ...]) -> tuple[tf.Tensor, tf.Tensor]:
  """``(x - mean) / std`` as ``x * scale + offset``, constants of one image's [H, W, 3] shape.

  TF's elementwise ops run a slow broadcasting kernel for a [3] operand against [H, W, 3] (several
  times the cost of the arithmetic); operands of the image's own shape take the fast path (a batch
  of views broadcasts them over its leading axis). The device's constants
  (``models.inputs.imagenet_scale_offset``).
  """
  scale, offset = imagenet_scale_offset()
  if len(shape) >= 3 and all(d is not None for d in shape[-3:]):
    scale, offset = (np.broadcast_to(c, shape[-3:]) for c in (scale, offset))
  return tf.constant(scale, tf.float32), tf.constant(offset, tf.float32)


def normalize(image: tf.Tensor, normalization: str = 'inception') -> tf.Tensor:
  """0..255 float -> model input: 'inception' maps to [-1, 1] (TF-slim), 'imagenet' uses
  torchvision's mean/std on [0, 1].

  torchvision's pretrained GoogLeNet and Inception v3 run with ``transform_input=True``, which maps
  mean/std input back to ``2x - 1``: their converted weights want 'inception' (the converter
  records it in the checkpoint metadata). 'imagenet' is for weights trained on mean/std input; it
  is one multiply-add with per-pixel constants (equal to ``(x - mean) / std`` up to float32
  rounding), since the per-channel broadcast and the division cost more than the resize.
  """
  if normalization == 'inception':
    return image / 127.5 - 1.0
  if normalization == 'imagenet':
    image = tf.convert_to_tensor(image)
    scale, offset = _imagenet_affine(tuple(image.shape.as_list()))
    return image * scale + offset
  raise ValueError(f'unknown normalization {normalization!r}; use one of {NORMALIZATIONS}')


def to_pixels(image: tf.Tensor) -> tf.Tensor:
  """Float 0..255 -> uint8, rounded to the nearest integer (ties to even), so a pixel moves by at
  most 0.5 (half a quantisation step).

  For resized pixels only: bilinear and triangle-filter resizes weight their neighbours with
  non-negative weights summing to one, so values stay in [0, 255] up to float rounding, which the
  rounding absorbs; a clip would be a third pass over the image for nothing. The rounding is the
  whole difference from the float path.
  """
  return tf.cast(tf.round(image), tf.uint8)


def pad_and_crop(image: tf.Tensor, padding: int, seed: tf.Tensor) -> tf.Tensor:
  """A random translation by up to ``padding`` pixels each way: zero-pad every side by
  ``padding`` and cut a random window of the original size (He et al. 2016, §4.2, for 32 px
  CIFAR: 4 pixels). For small, centred images an area crop would cut the object, a shift keeps it.
  """
  if padding == 0:
    return image
  size = tf.shape(image)
  padded = tf.pad(image, [[padding, padding], [padding, padding], [0, 0]])
  return tf.image.stateless_random_crop(padded, size, seed)


def _train_seeds(seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
  """(crop seed, flip seed) of one training example's stateless ``seed``."""
  seed = tf.cast(seed, tf.int64)
  return tuple(tf.unstack(tf.random.experimental.stateless_split(seed, num=2)))


def _train_window_fn(crop_seed: tf.Tensor, config: Any) -> Callable[[tf.Tensor], tf.Tensor]:
  area_range = tuple(_get(config, 'crop_area_range', (0.08, 1.0)))
  aspect_ratio_range = tuple(_get(config, 'aspect_ratio_range', (3 / 4, 4 / 3)))
  return lambda shape: inception_crop_window(shape, crop_seed, area_range, aspect_ratio_range)


def decode_for_train(image: tf.Tensor, seed: tf.Tensor, config: Any) -> tf.Tensor:
  """The decoding :func:`preprocess_for_train` does for ``seed``, and nothing after it: the
  Inception crop's window decoded (the same window), or the whole image for other augments.

  The pipeline benchmark's floor: what a training image costs before crop-independent work.
  """
  if _get(config, 'augment', 'inception_crop') != 'inception_crop':
    return decode(image)
  return decode_and_crop(image, _train_window_fn(_train_seeds(seed)[0], config))


def decode_for_eval(image: tf.Tensor, config: Any) -> tf.Tensor:
  """The decoding :func:`preprocess_for_eval` does (its centre window), and nothing after it."""
  fraction = float(_get(config, 'eval_crop_fraction', 0.875))
  return decode_and_crop(image, lambda shape: center_crop_window(shape, fraction))


def preprocess_for_train(image: tf.Tensor, seed: tf.Tensor, config: Any) -> tf.Tensor:
  """Training view of one image, normalised on the host (the float path): see
  :func:`train_view`; reads ``normalization`` too."""
  return normalize(train_view(image, seed, config), _get(config, 'normalization', 'inception'))


def pixels_for_train(image: tf.Tensor, seed: tf.Tensor, config: Any) -> tf.Tensor:
  """Training view of one image as uint8 pixels: ``to_pixels(train_view(...))``, flipped after
  the rounding (a uint8 image is a quarter of the bytes to move; flip and rounding commute)."""
  crop_seed, flip_seed = _train_seeds(seed)
  return _random_flip(to_pixels(_cropped_and_resized(image, crop_seed, config)), flip_seed,
                      config)


def train_view(image: tf.Tensor, seed: tf.Tensor, config: Any) -> tf.Tensor:
  """Training view of one image, float32 0..255: random crop (or none), resize, random flip;
  ``pad_and_crop`` resizes first and then shifts.

  The flip comes after the resize: the half-pixel-centred bilinear resize is symmetric under a
  left-right mirror, so this equals flipping the crop first up to float rounding
  (``tests/test_preprocessing_cost.py``), and the resized image is usually the smaller one.

  Args:
    image: encoded bytes (scalar tf.string) or uint8 [H, W, C].
    seed: stateless seed, int32/int64 [2]; the same seed gives the same output.
    config: reads ``image_size``, ``augment``, ``crop_area_range``, ``aspect_ratio_range``,
      ``crop_padding``, ``random_flip``.
  """
  crop_seed, flip_seed = _train_seeds(seed)
  return _random_flip(_cropped_and_resized(image, crop_seed, config), flip_seed, config)


def _cropped_and_resized(image: tf.Tensor, crop_seed: tf.Tensor, config: Any) -> tf.Tensor:
  """:func:`train_view` before its flip: float32 [image_size, image_size, 3]."""
  image_size = int(_get(config, 'image_size', 224))
  augment = _get(config, 'augment', 'inception_crop')
  if augment == 'pad_and_crop':
    # Resized first, so crop_padding counts output pixels (the CIFAR convention).
    return pad_and_crop(resize(decode(image), image_size), int(_get(config, 'crop_padding', 4)),
                        crop_seed)
  if augment == 'inception_crop':
    return resize(decode_and_crop(image, _train_window_fn(crop_seed, config)), image_size)
  if augment == 'resize':
    return resize(decode(image), image_size)
  raise ValueError(f'unknown augment {augment!r}; use one of {AUGMENTATIONS}')


def _random_flip(image: tf.Tensor, flip_seed: tf.Tensor, config: Any) -> tf.Tensor:
  if not _get(config, 'random_flip', True):
    return image
  return tf.image.stateless_random_flip_left_right(image, flip_seed)


def preprocess_for_eval(image: tf.Tensor, config: Any) -> tf.Tensor:
  """Evaluation view: centre crop of ``eval_crop_fraction`` of the shorter side, resize, normalise.

  Args:
    image: encoded bytes (scalar tf.string) or uint8 [H, W, C].
    config: reads ``image_size``, ``eval_crop_fraction`` (default 0.875), ``normalization``.
  """
  return normalize(eval_view(image, config), _get(config, 'normalization', 'inception'))


def pixels_for_eval(image: tf.Tensor, config: Any) -> tf.Tensor:
  """:func:`preprocess_for_eval`'s view as uint8 pixels (:func:`to_pixels`), not normalised."""
  return to_pixels(eval_view(image, config))


def eval_view(image: tf.Tensor, config: Any) -> tf.Tensor:
  """The centre-crop view, resized, float32 0..255."""
  return resize(decode_for_eval(image, config), int(_get(config, 'image_size', 224)))
