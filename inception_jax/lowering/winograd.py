"""Winograd F(4x4, 3x3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016).

A 3x3 stride-1 convolution computed on 6x6 input tiles that overlap by 2: each tile and each
kernel is moved into a 36-point transform domain where the convolution is 36 independent
[tiles, C_in] x [C_in, C_out] matrix products, 4x fewer multiplications than the direct
convolution; an output transform maps each tile's 36 products to its 4x4 outputs. The transforms
are matrix products with fixed 36x36 / 16x36 / 36x9 matrices (Kronecker products of the paper's
B^T, A^T and G), so XLA runs them as dots, and autodiff of the whole function is again
Winograd-shaped (transposed transforms and the same kind of batched matrix products).

It differs from the direct convolution by float32 rounding (tests/test_layers.py bounds it), the
trade cuDNN and oneDNN make when they pick Winograd. bfloat16 layers run it in float32 and round
the result once, as XLA:CPU computes their direct convolutions, so they stay within one bf16
rounding; the products themselves cannot drop to bf16. Errors, speed, and where it pays per
layer: benchmarks/RESULTS.md, Lowering choices.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
Padding = tuple[tuple[int, int], tuple[int, int]]

# Input points 0, +-1, +-2 and infinity.
_BT = np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], np.float64)
_G = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
               [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], np.float64)
_AT = np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0],
                [0, 1, -1, 8, -8, 1]], np.float64)
# The transforms of a whole 6x6 tile (inputs, 3x3 kernels) and its 4x4 outputs, row-major.
_TO_INPUT = np.kron(_BT, _BT).astype(np.float32)    # 36 x 36
_TO_KERNEL = np.kron(_G, _G).astype(np.float32)     # 36 x 9
_TO_OUTPUT = np.kron(_AT, _AT).astype(np.float32)   # 16 x 36
# Winograd pays off once both channel counts are at least this: with fewer, the transforms'
# memory traffic outweighs the saved multiplications (benchmarks/RESULTS.md, Lowering choices:
# the per-convolution table).
MIN_CHANNELS = 64


def eligible(x: Array, kernel: Array, strides: tuple[int, int], padding: Padding) -> bool:
  """Whether :func:`winograd_conv3x3` computes this convolution (shapes and dtypes measured)."""
  return (kernel.shape[:2] == (3, 3) and tuple(strides) == (1, 1)
          and x.dtype in (jnp.float32, jnp.bfloat16) and kernel.dtype == x.dtype
          and min(kernel.shape[2:]) >= MIN_CHANNELS
          and all(p >= 0 for pair_ in padding for p in pair_))


def _overlapping_tiles(x: Array, axis: int, tiles: int) -> Array:
  """Splits ``axis`` (length 4 * tiles + 4) into ``tiles`` windows of 6 at stride 4 -> (tiles, 6).

  Built from two reshapes (rows 0-3 of each window, then rows 4-5 taken from the next block) so
  its transpose in the backward pass is reshapes, pads and one add, not 36 interior-padded
  scatters."""
  shape = x.shape
  blocks = lambda start: jax.lax.slice_in_dim(x, start, start + 4 * tiles, axis=axis).reshape(
      shape[:axis] + (tiles, 4) + shape[axis + 1:])
  head = blocks(0)
  tail = jax.lax.slice_in_dim(blocks(4), 0, 2, axis=axis + 1)
  return jnp.concatenate([head, tail], axis=axis + 1)


def winograd_conv3x3(x: Array, kernel: Array, padding: Padding) -> Array:
  """NHWC x HWIO 3x3 stride-1 convolution by Winograd F(4x4, 3x3), computed in float32 and
  returned in the input's dtype."""
  out_dtype = x.dtype
  x, kernel = x.astype(jnp.float32), kernel.astype(jnp.float32)
  batch, height, width, in_channels = x.shape
  out_channels = kernel.shape[3]
  (top, bottom), (left, right) = padding
  out_h, out_w = height + top + bottom - 2, width + left + right - 2
  tiles_h, tiles_w = -(-out_h // 4), -(-out_w // 4)
  xp = jnp.pad(x, ((0, 0), (top, 4 * tiles_h + 4 - height - top),
                   (left, 4 * tiles_w + 4 - width - left), (0, 0)))
  tiles = _overlapping_tiles(_overlapping_tiles(xp, 1, tiles_h), 3, tiles_w)  # n,th,6,tw,6,c
  tiles = tiles.transpose(2, 4, 0, 1, 3, 5).reshape(36, -1)
  hi = jax.lax.Precision.HIGHEST
  v = jnp.dot(_TO_INPUT, tiles, precision=hi).reshape(36, -1, in_channels)
  u = jnp.dot(_TO_KERNEL, kernel.reshape(9, -1), precision=hi).reshape(36, in_channels, -1)
  m = jax.lax.dot_general(v, u, (((2,), (1,)), ((0,), (0,))), precision=hi)
  y = jnp.dot(_TO_OUTPUT, m.reshape(36, -1), precision=hi)
  y = y.reshape(4, 4, batch, tiles_h, tiles_w, out_channels).transpose(2, 3, 0, 4, 1, 5)
  y = y.reshape(batch, 4 * tiles_h, 4 * tiles_w, out_channels)[:, :out_h, :out_w]
  return y.astype(out_dtype)


__all__ = ['MIN_CHANNELS', 'eligible', 'winograd_conv3x3']
