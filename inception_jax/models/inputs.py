"""Model inputs from uint8 pixels: the normalisation every caller of a model shares.

The host pipelines end at uint8 pixels (a quarter of float32's bytes to copy, no per-pixel
arithmetic on the host's CPU); the jitted programs that feed a model (training, evaluation,
prediction) call :func:`normalize_images` first, on the device. One function, so every program
gives the model the same numbers.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

NORMALIZATIONS = ('inception', 'imagenet')
# torchvision's ImageNet statistics, on [0, 1] pixels.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_scale_offset() -> tuple[np.ndarray, np.ndarray]:
  """``(x - 255 mean) / (255 std)`` as ``x * scale + offset`` on 0..255 pixels, per channel:
  computed in float64 and rounded once to float32, so host and device use the same constants."""
  mean = np.asarray(IMAGENET_MEAN, np.float64) * 255.0
  std = np.asarray(IMAGENET_STD, np.float64) * 255.0
  return (1.0 / std).astype(np.float32), (-mean / std).astype(np.float32)


def normalize_images(images: jax.Array, normalization: str, dtype: Any = jnp.float32
                     ) -> jax.Array:
  """uint8 pixels [..., 3] -> model input in ``dtype``; floating images pass through unchanged.

  'inception' maps 0..255 to [-1, 1] (``x / 127.5 - 1``, TF-slim); 'imagenet' is torchvision's
  mean/std on [0, 1] pixels, as one multiply-add. The arithmetic is float32 and the result is
  rounded once to ``dtype`` (bfloat16 cannot hold 127.5 or the ImageNet constants exactly), so
  it equals the host's float32 normalisation cast to the model's dtype. Floating images are
  taken as already normalised (the float pipeline, a SavedModel's ``serving_default``).
  """
  if normalization not in NORMALIZATIONS:
    raise ValueError(f'unknown normalization {normalization!r}; use one of {NORMALIZATIONS}')
  if jnp.issubdtype(images.dtype, jnp.floating):
    return images
  if images.dtype != jnp.uint8:
    raise TypeError(f'images must be uint8 pixels or normalised floats, got {images.dtype}')
  x = images.astype(jnp.float32)
  if normalization == 'inception':
    x = x / 127.5 - 1.0
  else:
    scale, offset = imagenet_scale_offset()
    x = x * scale + offset
  return x.astype(dtype)


__all__ = ['IMAGENET_MEAN', 'IMAGENET_STD', 'NORMALIZATIONS', 'imagenet_scale_offset',
           'normalize_images']
