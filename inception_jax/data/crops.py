"""Multi-crop evaluation views: 1 crop, 10 crops (AlexNet) and 144 crops (GoogLeNet), in TensorFlow.

Every view function takes encoded image bytes (scalar ``tf.string``) or a decoded ``uint8`` [H, W, C]
tensor, like :mod:`inception_jax.data.preprocessing`, and returns [n, S, S, 3] views, ``S =
image_size``: uint8 pixels by default (:func:`make_views_fn`), normalised on the device.
Predictions are averaged over the ``n`` views as *softmax probabilities* (GoogLeNet paper, Szegedy
et al. 2015, Sec. 7: "the softmax probabilities are averaged over multiple crops").

* **1 crop** (:func:`one_crop`): exactly the input pipeline's evaluation view
  (:func:`~inception_jax.data.preprocessing.preprocess_for_eval`): a centre square of
  ``eval_crop_fraction`` of the shorter side, resized to ``S``.
* **10 crops** (:func:`ten_crop`), Krizhevsky et al. 2012, Sec. 4.1: the shorter side is resized to
  ``round(S / eval_crop_fraction)`` (256 for 224 px at 0.875), then the four corner ``S x S`` patches
  and the centre patch of the whole resized image, followed by the same five mirrored left-right
  (torchvision's ``Resize(256)`` + ``TenCrop(224)``).
* **144 crops** (:func:`googlenet_144_crop`), GoogLeNet paper Sec. 7 ("Testing methodology"): the
  shorter side is resized to 4 scales (256, 288, 320, 352 for 224 px); from each, 3 squares of that
  side are taken along the longer side (left / centre / right, or top / centre / bottom for portrait
  images); from each square the 4 corner and the centre ``S x S`` crops plus the whole square resized
  to ``S`` (6 views); and all of them mirrored: 4 x 3 x 6 x 2 = 144.

Mirrored views only where mirroring keeps the class: a config with ``random_flip=False`` (trained
without mirror images, e.g. the digits quick start, where a mirrored digit is another symbol, or
not a digit at all) gets no mirrored views, so the 10-crop protocol becomes 5 crops and the 144-crop
protocol 72 (:func:`num_views`, :func:`describe_views`).

The reference sizes are the 224 px network's. Other input sizes scale them proportionally
(:func:`googlenet_scales`): Inception v3 at 299 px uses ``round(s * 299 / 224)`` = 342, 384, 427,
470; a 16 px test network uses 18, 21, 23, 25. The scale list therefore always starts above ``S``
(256/224 = 1.14), so every crop lies inside the resized image whatever the input's size: small images
are upsampled, never rejected.

Geometry conventions (shared with the pipeline's centre crop): a centre offset is
``(L - S + 1) // 2`` (the extra pixel of an odd margin goes before the crop); a resized longer side is
``round(L * s / shorter)``. Resizes here are bilinear with anti-aliasing (they mostly shrink large
photos), whereas the 1-crop view keeps the pipeline's own resize. Order of the views: 10-crop =
[top-left, top-right, bottom-left, bottom-right, centre] then the same mirrored; 144-crop = for each
scale (ascending), for each square (left/top, centre, right/bottom): [4 corners as above, centre,
whole square], then those 6 mirrored. Without mirrors, the same order with the mirrored ones left
out.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import tensorflow as tf

from inception_jax.data import preprocessing
from inception_jax.errors import UserError

PROTOCOLS = (1, 10, 144)
# GoogLeNet paper, Sec. 7: shorter-side scales for its 224 px network.
GOOGLENET_SCALES = (256, 288, 320, 352)
REFERENCE_SIZE = 224


def _get(config: Any, key: str, default: Any) -> Any:
  if isinstance(config, Mapping) or hasattr(config, 'get'):
    value = config.get(key, default)
  else:
    value = getattr(config, key, default)
  return default if value is None else value


def check_protocol(crops: Any) -> int:
  """``crops`` as an int in :data:`PROTOCOLS`, else a one-line UserError."""
  try:
    value = int(crops)
  except (TypeError, ValueError):
    value = None
  if value not in PROTOCOLS or isinstance(crops, bool) or (
      isinstance(crops, float) and crops != value):
    raise UserError(f'--crops must be 1, 10 or 144, got {crops!r}')
  return value


def googlenet_scales(image_size: int) -> tuple[int, ...]:
  """The 144-crop shorter-side scales for ``image_size`` (256..352 at 224, scaled proportionally)."""
  return tuple(int(round(s * image_size / REFERENCE_SIZE)) for s in GOOGLENET_SCALES)


def ten_crop_side(image_size: int, crop_fraction: float) -> int:
  """Shorter side the 10-crop resizes to: ``round(image_size / eval_crop_fraction)``, at least S."""
  return max(int(image_size), int(round(image_size / float(crop_fraction))))


def _resize_shorter(image: tf.Tensor, side: int) -> tf.Tensor:
  """uint8/float [H, W, 3] -> float32 [h, w, 3] with ``min(h, w) == side`` (aspect ratio kept)."""
  shape = tf.shape(image)
  height, width = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
  shorter = tf.minimum(height, width)
  new_h = tf.maximum(tf.cast(tf.round(height * side / shorter), tf.int32), side)
  new_w = tf.maximum(tf.cast(tf.round(width * side / shorter), tf.int32), side)
  # Exactly `side` on the shorter dimension, whatever the rounding did.
  new_h = tf.where(height <= width, side, new_h)
  new_w = tf.where(height <= width, new_w, side)
  resized = tf.image.resize(tf.cast(image, tf.float32), tf.stack([new_h, new_w]),
                            method='bilinear', antialias=True)
  return tf.ensure_shape(resized, [None, None, 3])


def _crop(image: tf.Tensor, y: tf.Tensor, x: tf.Tensor, size: int) -> tf.Tensor:
  return tf.ensure_shape(tf.slice(image, tf.stack([y, x, 0]), [size, size, 3]),
                         [size, size, 3])


def five_crops(image: tf.Tensor, size: int) -> tf.Tensor:
  """[H, W, 3] -> [5, size, size, 3]: top-left, top-right, bottom-left, bottom-right, centre."""
  shape = tf.shape(image)
  dy, dx = shape[0] - size, shape[1] - size
  return tf.stack([
      _crop(image, 0, 0, size),
      _crop(image, 0, dx, size),
      _crop(image, dy, 0, size),
      _crop(image, dy, dx, size),
      _crop(image, (dy + 1) // 2, (dx + 1) // 2, size),
  ])


def three_squares(image: tf.Tensor, side: int) -> tf.Tensor:
  """[H, W, 3] with ``min(H, W) == side`` -> [3, side, side, 3] along the longer side.

  Landscape: left, centre, right; portrait: top, centre, bottom (GoogLeNet paper, Sec. 7).
  """
  shape = tf.shape(image)
  margin = tf.maximum(shape[0], shape[1]) - side
  offsets = tf.stack([0, (margin + 1) // 2, margin])
  landscape = shape[0] <= shape[1]
  return tf.stack([
      _crop(image, tf.where(landscape, 0, offsets[i]), tf.where(landscape, offsets[i], 0), side)
      for i in range(3)])


def _mirror(views: tf.Tensor) -> tf.Tensor:
  """[n, S, S, 3] -> [2n, S, S, 3]: the views, then each mirrored left-right."""
  return tf.concat([views, tf.reverse(views, axis=[2])], axis=0)


def ten_crop(image: tf.Tensor, image_size: int, crop_fraction: float, *,
             mirror: bool = True) -> tf.Tensor:
  """uint8 [H, W, C] -> float32 [10, S, S, 3] on the 0..255 scale (not yet normalised); [5, ...]
  without the mirrored views."""
  image = preprocessing.decode(image)
  resized = _resize_shorter(image, ten_crop_side(image_size, crop_fraction))
  views = five_crops(resized, image_size)
  return _mirror(views) if mirror else views


def googlenet_144_crop(image: tf.Tensor, image_size: int, *, mirror: bool = True) -> tf.Tensor:
  """uint8 [H, W, C] -> float32 [144, S, S, 3] on the 0..255 scale (GoogLeNet paper, Sec. 7);
  [72, ...] without the mirrored views."""
  image = preprocessing.decode(image)
  groups = []
  for side in googlenet_scales(image_size):
    squares = three_squares(_resize_shorter(image, side), side)
    for i in range(3):
      square = squares[i]
      whole = tf.image.resize(square, [image_size, image_size], method='bilinear',
                              antialias=True)
      views = tf.concat([five_crops(square, image_size), whole[None]], axis=0)
      groups.append(_mirror(views) if mirror else views)
  return tf.ensure_shape(tf.concat(groups, axis=0),
                         [144 if mirror else 72, image_size, image_size, 3])


def one_crop(image: tf.Tensor, config: Any) -> tf.Tensor:
  """The input pipeline's evaluation view as [1, S, S, 3] (normalised)."""
  return preprocessing.preprocess_for_eval(image, config)[None]


def mirrors(config: Any) -> bool:
  """Whether the multi-crop protocols add mirrored views: ``config.random_flip`` (default True),
  i.e. whether the model learned that a mirror image has the same class."""
  return bool(_get(config, 'random_flip', True))


def num_views(crops: int, config: Any) -> int:
  """Views per image of the protocol ``crops`` for ``config``: 1; 10 or 5; 144 or 72."""
  crops = check_protocol(crops)
  return crops if crops == 1 or mirrors(config) else crops // 2


def describe_views(crops: int, config: Any) -> str:
  """What the views of the protocol ``crops`` are, e.g. ``5 crops (4 corners + centre), no mirrors
  because config.random_flip=False``."""
  crops = check_protocol(crops)
  n = num_views(crops, config)
  if crops == 1:
    fraction = float(_get(config, 'eval_crop_fraction', 0.875))
    return f'1 crop (the centre, eval_crop_fraction={fraction:g})'
  what = ('4 corners + centre' if crops == 10 else
          f'{len(GOOGLENET_SCALES)} scales x 3 squares x (4 corners + centre + whole square)')
  if mirrors(config):
    return f'{n} crops ({what}, each also mirrored)'
  return f'{n} crops ({what}), no mirrors because config.random_flip=False'


def uint8_views(config: Any) -> bool:
  """Whether views leave the host as uint8 pixels, normalised on the device
  (``config.uint8_images``, default True), or as normalised float32 (the float path)."""
  return bool(_get(config, 'uint8_images', True))


def make_views_fn(crops: int, config: Any) -> Callable[[tf.Tensor], tf.Tensor]:
  """``image -> [n, S, S, 3]`` views for the protocol ``crops``, ``n =`` :func:`num_views` (the
  mirrored views only when ``config.random_flip``, default True): uint8 pixels
  (``preprocessing.to_pixels``) for :func:`inception_jax.models.inputs.normalize_images` to
  normalise on the device, or with ``uint8_images=False`` float32 normalised here.

  Reads ``image_size``, ``eval_crop_fraction`` (1 and 10 crops), ``normalization``,
  ``random_flip`` and ``uint8_images`` from ``config`` (a ConfigDict, dict or object).
  """
  crops = check_protocol(crops)
  image_size = int(_get(config, 'image_size', 224))
  fraction = float(_get(config, 'eval_crop_fraction', 0.875))
  normalization = _get(config, 'normalization', 'inception')
  mirror = mirrors(config)
  if uint8_views(config):
    finish = preprocessing.to_pixels
  else:
    finish = lambda views: preprocessing.normalize(views, normalization)
  if crops == 1:
    return lambda image: finish(preprocessing.eval_view(image, config)[None])
  if crops == 10:
    return lambda image: finish(ten_crop(image, image_size, fraction, mirror=mirror))
  return lambda image: finish(googlenet_144_crop(image, image_size, mirror=mirror))


__all__ = ['GOOGLENET_SCALES', 'PROTOCOLS', 'check_protocol', 'describe_views', 'five_crops',
           'googlenet_144_crop', 'googlenet_scales', 'make_views_fn', 'mirrors', 'num_views',
           'one_crop', 'ten_crop', 'ten_crop_side', 'three_squares', 'uint8_views']
