"""Building blocks shared by GoogLeNet and Inception v3.

Every convolution of both families goes through :class:`ConvBN`, and :class:`ConvBN` creates its
convolution through one factory attribute (``conv``, ``nn.Conv`` by default). A model swaps the
convolution implementation for all of its layers at one place, the way Flax's ImageNet example
passes ``conv=partial(nn.Conv, ...)`` down its blocks.

:class:`FastConv` is the default factory: an ``nn.Conv`` with the same fields and parameters whose
lowering suits XLA's CPU backend (1x1 convolutions as matrix products; wide 3x3 convolutions by
Winograd's F(4x4, 3x3); the kernel gradient of wide convolutions as chunked im2col matrix products
when YNNPACK runs XLA's convolutions); on other backends it is ``nn.Conv``.
:class:`FastBatchNorm` (ConvBN's default ``norm``) is ``nn.BatchNorm`` with a hand-written
training gradient, and ``max_pool``'s gradient avoids XLA's select-and-scatter. All compute the
same functions as the plain versions (tests/test_layers.py compares values and gradients; exactly,
but for Winograd's float32 rounding, about 1e-5 relative, or one rounding in bfloat16); see
benchmarks/RESULTS.md for the gains.

The pooling helpers reproduce PyTorch's (and so torchvision's) semantics exactly, because weights
converted from torchvision must give the same logits: explicit symmetric padding, ``ceil_mode``
(the last window may overhang the input as long as it starts inside it) and average pooling that
counts the zero padding in the divisor (``count_include_pad=True``). Pooling works on NHWC arrays.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Callable, Sequence

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from inception_jax import xla_flags
from inception_jax.errors import UserError

Array = jax.Array
Dtype = Any
ModuleDef = Any
IntOrPair = int | tuple[int, int]

# Batch-norm settings of the released Inception networks (TF-slim and torchvision use eps 1e-3);
# momentum 0.9 means running = 0.9 * running + 0.1 * batch, i.e. PyTorch's default momentum 0.1.
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.9

# He initialisation (ReLU gain) keeps activations at unit scale through 22+ layers even without
# batch norm (the 2014 GoogLeNet); it is only the starting point for training from scratch.
conv_kernel_init = nn.initializers.variance_scaling(2.0, 'fan_in', 'truncated_normal')
dense_kernel_init = nn.initializers.variance_scaling(1.0, 'fan_in', 'truncated_normal')


def pair(value: IntOrPair) -> tuple[int, int]:
  """``3 -> (3, 3)``; a pair stays a pair (PyTorch's convention for sizes and paddings)."""
  if isinstance(value, int):
    return (value, value)
  return (int(value[0]), int(value[1]))


def scale_channels(channels: int, width_multiplier: float) -> int:
  """Channel count after ``width_multiplier`` (at least one channel; 1.0 leaves it exact)."""
  if width_multiplier == 1.0:
    return channels
  return max(1, int(round(channels * width_multiplier)))

# ---------------------------------------------------------------------------------------------
# Convolution lowered for speed (same numbers as nn.Conv).
#
# Measured on a 2-core AVX-512 CPU (benchmarks/RESULTS.md): the kernel gradient of a 1x1
# convolution runs 1.5-3x faster as a matrix product than as XLA's convolution, so 1x1 kernels
# are matrix products throughout. Larger kernels keep XLA's convolution, except for one case:
# when XLA:CPU hands convolutions to YNNPACK (jaxlib 0.10's default, which ``inception_jax``
# turns off at import; see ``xla_flags``), their kernel gradient runs at 10-35 GFLOP/s, 2-5x
# slower than the same contraction written as im2col + matrix product, so it is written that
# way. The im2col is built a few images at a time (a scan over the batch) so the patches stay in
# cache instead of materialising [batch, H, W, kh*kw*C] at once.

_NHWC = ('NHWC', 'HWIO', 'NHWC')
# With YNNPACK convolutions on, kernel gradients of convolutions whose input has at least this
# many channels use chunked im2col; with fewer (16-24-channel reductions) the patches are built
# from too-thin slices and XLA's own kernel gradient is as fast.
IM2COL_MIN_CHANNELS = 32
# ... and so do kernels of at least this many taps whatever their channels: GoogLeNet's 7x7/2 stem
# on 3 channels (147-wide patches) took 261 ms for forward + kernel gradient at batch 32, 224 px,
# against 302 ms with XLA's kernel gradient.
IM2COL_MIN_TAPS = 49
# Bytes of im2col patches per scan step (about the last-level cache of the measured CPU).
IM2COL_CHUNK_BYTES = 32 << 20
# Backends whose convolutions FastConv lowers itself. On a GPU, XLA's own convolutions (cuDNN)
# win: an H200 trained GoogLeNet (bf16, batch 256) at 7,701 img/s with nn.Conv against 6,557
# with these lowerings, and Inception v3 (batch 128) at 3,486 against 2,437
# (benchmarks/RESULTS.md), so elsewhere FastConv runs nn.Conv's code.
FAST_LOWERING_BACKENDS = ('cpu',)
# Backends on which FastBatchNorm uses its hand-written training gradient and max_pool its
# gather-form gradient; elsewhere they run nn.BatchNorm's code and autodiff of reduce_window. Both
# were written for and measured on the CPU; ``python -m inception_jax.bench --plain norm`` (or
# ``pool``) measures the plain versions on any backend.
FAST_NORM_BACKENDS = ('cpu', 'gpu', 'tpu')
FAST_POOL_BACKENDS = ('cpu', 'gpu', 'tpu')
# Backends (of FAST_POOL_BACKENDS) on which max_pool, when no gradient is taken (evaluation,
# prediction), takes the running maximum of its kh*kw strided slices instead of reduce_window,
# whose loop XLA:CPU does not vectorise: GoogLeNet's evaluation step ran 6-19 % faster (float32
# and bf16, five alternating pairs each), Inception v3's 2-11 %. Under differentiation it stays
# reduce_window: there XLA fused the sliced maximum into the transposing copy that the next 1x1
# kernel gradient reads, and GoogLeNet's training step ran 20 % slower (benchmarks/RESULTS.md).
SLICE_POOL_BACKENDS = ('cpu',)

Padding = tuple[tuple[int, int], tuple[int, int]]


def _lax_conv(x: Array, kernel: Array, strides: tuple[int, int], padding: Padding) -> Array:
  return jax.lax.conv_general_dilated(x, kernel, strides, padding, dimension_numbers=_NHWC)


def _pointwise(kernel: Array, strides: tuple[int, int], padding: Padding) -> bool:
  return (kernel.shape[:2] == (1, 1) and tuple(strides) == (1, 1)
          and all(tuple(p) == (0, 0) for p in padding))


def _taps(x: Array, kh: int, kw: int, strides: tuple[int, int], padding: Padding,
          out_hw: tuple[int, int], pad_value: float = 0.0) -> list[Array]:
  """The kh*kw shifted (and strided) views of the padded input that meet each kernel (or pooling
  window) tap, in row-major tap order."""
  xp = jnp.pad(x, ((0, 0), tuple(padding[0]), tuple(padding[1]), (0, 0)),
               constant_values=pad_value)
  (oh, ow), (sh, sw) = out_hw, strides
  return [jax.lax.slice(xp, (0, i, j, 0),
                        (xp.shape[0], i + (oh - 1) * sh + 1, j + (ow - 1) * sw + 1, xp.shape[3]),
                        (1, sh, sw, 1))
          for i in range(kh) for j in range(kw)]


def _kernel_grad_im2col(x: Array, g: Array, kernel_shape: Sequence[int],
                        strides: tuple[int, int], padding: Padding) -> Array:
  """d(loss)/d(kernel) as patches^T @ g, accumulated in float32 over chunks of the batch."""
  kh, kw, ci, co = kernel_shape
  batch, oh, ow = g.shape[:3]
  per_image = oh * ow * kh * kw * ci * x.dtype.itemsize
  chunk = max(1, min(batch, IM2COL_CHUNK_BYTES // max(per_image, 1)))
  while batch % chunk:
    chunk -= 1

  def partial_grad(xc, gc):
    patches = jnp.concatenate(_taps(xc, kh, kw, strides, padding, (oh, ow)), axis=-1)
    return jax.lax.dot_general(patches.reshape(-1, kh * kw * ci), gc.reshape(-1, co),
                               (((0,), (0,)), ((), ())), preferred_element_type=jnp.float32)

  if chunk == batch:
    grad = partial_grad(x, g)
  else:
    xs = x.reshape(batch // chunk, chunk, *x.shape[1:])
    gs = g.reshape(batch // chunk, chunk, *g.shape[1:])
    grad = jax.lax.scan(lambda acc, xg: (acc + partial_grad(*xg), None),
                        jnp.zeros((kh * kw * ci, co), jnp.float32), (xs, gs))[0]
  return grad.reshape(kh, kw, ci, co)


def _im2col_kernel_grad(in_channels: int, taps: int) -> bool:
  """Whether a kernel gradient is built as im2col (against YNNPACK's slow ones only)."""
  if not xla_flags.ynn_convolutions(os.environ.get('XLA_FLAGS', ''), xla_flags.jaxlib_version()):
    return False
  return in_channels >= IM2COL_MIN_CHANNELS or taps >= IM2COL_MIN_TAPS


# ---------------------------------------------------------------------------------------------
# Winograd F(4x4, 3x3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016).
#
# A 3x3 stride-1 convolution computed on 6x6 input tiles that overlap by 2: each tile and each
# kernel is moved into a 36-point transform domain where the convolution is 36 independent
# [tiles, C_in] x [C_in, C_out] matrix products, 4x fewer multiplications than the direct
# convolution's 9 per output pixel and channel pair; an output transform maps each tile's 36
# products to its 4x4 outputs. The transforms are matrix products with fixed 36x36 / 16x36 / 36x9
# matrices (Kronecker products of the paper's B^T, A^T and G), so XLA runs them as dots, and
# autodiff of the whole function is again Winograd-shaped (transposed transforms and the same
# kind of batched matrix products), which is where most of the gain is. In float32 it differs
# from the direct convolution by about 1e-5 relative (tests/test_layers.py bounds it), the same
# trade cuDNN and oneDNN make when they pick Winograd. bfloat16 layers run it in float32 and round
# the result once, as XLA:CPU computes their direct convolutions (in float32 too), so the numbers
# stay within one bf16 rounding. The products themselves cannot drop to bf16: rounding the
# transformed tiles gave errors of 6-8e-2 of the largest output, 21-27x the direct ones.

# Input points 0, +-1, +-2 and infinity.
_WINOGRAD_BT = np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                         [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]],
                        np.float64)
_WINOGRAD_G = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                        [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], np.float64)
_WINOGRAD_AT = np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0],
                         [0, 1, -1, 8, -8, 1]], np.float64)
# The transforms of a whole 6x6 tile (inputs, 3x3 kernels) and its 4x4 outputs, row-major.
_WINOGRAD_TO_INPUT = np.kron(_WINOGRAD_BT, _WINOGRAD_BT).astype(np.float32)    # 36 x 36
_WINOGRAD_TO_KERNEL = np.kron(_WINOGRAD_G, _WINOGRAD_G).astype(np.float32)     # 36 x 9
_WINOGRAD_TO_OUTPUT = np.kron(_WINOGRAD_AT, _WINOGRAD_AT).astype(np.float32)   # 16 x 36
# Winograd pays off once both channel counts are at least this: with fewer, the transforms'
# memory traffic outweighs the saved multiplications (at batch 32, GoogLeNet's 16->32 and 32->128
# 3x3s ran 1.2-3x slower; 96->128 at 28 px ran 1.2x faster forward and 1.8x backward).
WINOGRAD_MIN_CHANNELS = 64
# Backends on which FastConv uses Winograd for eligible float32 and bfloat16 3x3 convolutions
# (measured on the CPU only; cuDNN picks its own algorithms on a GPU).
FAST_WINOGRAD_BACKENDS = ('cpu',)


def winograd_eligible(x: Array, kernel: Array, strides: tuple[int, int],
                      padding: Padding) -> bool:
  """Whether :class:`FastConv` computes this convolution with :func:`winograd_conv3x3`."""
  return (jax.default_backend() in FAST_WINOGRAD_BACKENDS and kernel.shape[:2] == (3, 3)
          and tuple(strides) == (1, 1) and x.dtype in (jnp.float32, jnp.bfloat16)
          and kernel.dtype == x.dtype
          and min(kernel.shape[2:]) >= WINOGRAD_MIN_CHANNELS
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
  returned in the input's dtype; see above."""
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
  v = jnp.dot(_WINOGRAD_TO_INPUT, tiles, precision=hi).reshape(36, -1, in_channels)
  u = jnp.dot(_WINOGRAD_TO_KERNEL, kernel.reshape(9, -1), precision=hi).reshape(36, in_channels, -1)
  m = jax.lax.dot_general(v, u, (((2,), (1,)), ((0,), (0,))), precision=hi)
  y = jnp.dot(_WINOGRAD_TO_OUTPUT, m.reshape(36, -1), precision=hi)
  y = y.reshape(4, 4, batch, tiles_h, tiles_w, out_channels).transpose(2, 3, 0, 4, 1, 5)
  y = y.reshape(batch, 4 * tiles_h, 4 * tiles_w, out_channels)[:, :out_h, :out_w]
  return y.astype(out_dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv2d(x: Array, kernel: Array, strides: tuple[int, int], padding: Padding) -> Array:
  """NHWC x HWIO convolution (no dilation, no groups) with CPU-friendly lowerings.

  Same function as ``lax.conv_general_dilated(x, kernel, strides, padding,
  dimension_numbers=('NHWC', 'HWIO', 'NHWC'))``: 1x1 kernels run as a matrix product over the
  channel axis; others use XLA's convolution forward. The backward pass is hand-written
  (see ``_conv2d_bwd``). ``strides`` and ``padding`` ((lo, hi), (lo, hi)) must be hashable tuples.
  """
  if _pointwise(kernel, strides, padding):
    return _dot_rounded(x, kernel[0, 0], ((3,), (0,)))
  return _lax_conv(x, kernel, strides, padding)


def _dot_rounded(a: Array, b: Array,
                 contracting: tuple[tuple[int, ...], tuple[int, ...]]) -> Array:
  """A matrix product accumulated in float32 and rounded once to the operands' dtype.

  For bfloat16 operands this is the form XLA:CPU runs on the AVX512_BF16 instructions (1.6-2x
  float32's speed); asked for a bf16 result it converts the operands to float32 first."""
  return jax.lax.dot_general(a, b, (contracting, ((), ())),
                             preferred_element_type=jnp.float32).astype(a.dtype)


def _conv2d_fwd(x, kernel, strides, padding):
  return conv2d(x, kernel, strides, padding), (x, kernel)


def _conv2d_bwd(strides, padding, residuals, g):
  x, kernel = residuals
  if _pointwise(kernel, strides, padding):
    dx = _dot_rounded(g, kernel[0, 0], ((3,), (1,)))
    dk = jax.lax.dot_general(x, g, (((0, 1, 2), (0, 1, 2)), ((), ())),
                             preferred_element_type=jnp.float32)
    return dx, dk.reshape(kernel.shape).astype(kernel.dtype)
  # The input gradient is XLA's transposed convolution (fast on CPU).
  dx = jax.vjp(lambda x_: _lax_conv(x_, kernel, strides, padding), x)[1](g)[0]
  if _im2col_kernel_grad(x.shape[3], kernel.shape[0] * kernel.shape[1]):
    dk = _kernel_grad_im2col(x, g, kernel.shape, strides, padding).astype(kernel.dtype)
  else:
    dk = jax.vjp(lambda k_: _lax_conv(x, k_, strides, padding), kernel)[1](g)[0]
  return dx, dk


conv2d.defvjp(_conv2d_fwd, _conv2d_bwd)


def _explicit_padding(padding: Any, in_hw: Sequence[int], kernel_hw: tuple[int, int],
                      strides: tuple[int, int]) -> Padding | None:
  """nn.Conv's padding forms as ((lo, hi), (lo, hi)); None for forms FastConv leaves to nn.Conv."""
  if isinstance(padding, str):
    if padding.upper() not in ('SAME', 'VALID'):
      return None
    pads = jax.lax.padtype_to_pads(tuple(in_hw), kernel_hw, strides, padding.upper())
    return tuple((int(lo), int(hi)) for lo, hi in pads)
  if isinstance(padding, int):
    return ((padding, padding), (padding, padding))
  pads = tuple((p, p) if isinstance(p, int) else tuple(p) for p in padding)
  if len(pads) != 2 or any(len(p) != 2 for p in pads):
    return None
  return tuple((int(lo), int(hi)) for lo, hi in pads)


class FastConv(nn.Conv):
  """``nn.Conv`` (same fields, same ``kernel`` [kh, kw, in, out] and ``bias`` parameters, same
  numbers) computed with :func:`conv2d`, or :func:`winograd_conv3x3` where
  :func:`winograd_eligible` (equal to float32 rounding, or one bfloat16 rounding), for 2-D NHWC
  convolutions without dilation or groups.

  Anything else (1-D/3-D, dilation, groups, a mask, an explicit ``precision``, circular padding,
  unbatched input), and every convolution on a backend outside ``FAST_LOWERING_BACKENDS`` (the
  GPU's cuDNN convolutions are faster), runs ``nn.Conv``'s own code, so it is a drop-in
  replacement. ``summary`` counts its MACs as any ``nn.Conv``.
  """

  def __call__(self, inputs: Array) -> Array:
    kernel_size = ((self.kernel_size,) * 2 if isinstance(self.kernel_size, int)
                   else tuple(self.kernel_size))
    strides = self.strides if self.strides is not None else 1
    strides = (strides,) * len(kernel_size) if isinstance(strides, int) else tuple(strides)
    padding = None
    if (jax.default_backend() in FAST_LOWERING_BACKENDS and inputs.ndim == 4
        and len(kernel_size) == 2 and self.feature_group_count == 1
        and self.input_dilation in (None, 1, (1, 1)) and self.kernel_dilation in (None, 1, (1, 1))
        and self.mask is None and len(strides) == 2 and self.precision is None
        and self.conv_general_dilated is None and self.conv_general_dilated_cls is None):
      padding = _explicit_padding(self.padding, inputs.shape[1:3], kernel_size, strides)
    if padding is None:
      return super().__call__(inputs)
    return self._fast(inputs, kernel_size, strides, padding)

  @nn.compact
  def _fast(self, inputs: Array, kernel_size: tuple[int, int], strides: tuple[int, int],
            padding: Padding) -> Array:
    kernel = self.param('kernel', self.kernel_init,
                        (*kernel_size, inputs.shape[-1], self.features), self.param_dtype)
    bias = (self.param('bias', self.bias_init, (self.features,), self.param_dtype)
            if self.use_bias else None)
    inputs, kernel, bias = self.promote_dtype(inputs, kernel, bias, dtype=self.dtype)
    if winograd_eligible(inputs, kernel, strides, padding):
      with jax.named_scope('winograd'):
        y = winograd_conv3x3(inputs, kernel, padding)
    else:
      y = conv2d(inputs, kernel, strides, padding)
    if bias is not None:
      y = y + bias
    return y


# ---------------------------------------------------------------------------------------------
# Batch norm with a hand-written training gradient (same numbers as nn.BatchNorm).


def _batch_axes(x: Array) -> tuple[int, ...]:
  return tuple(range(x.ndim - 1))


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def batch_norm_train(x: Array, scale: Array, bias: Array, epsilon: float,
                     out_dtype: Any) -> tuple[Array, Array, Array]:
  """Training-mode batch norm over all axes but the last, as ``nn.BatchNorm`` computes it.

  Statistics in float32 with the fast variance ``E[x^2] - E[x]^2`` clipped at 0 (Flax's
  defaults); returns ``(y, batch_mean, batch_var)``. The backward pass is the textbook formula
  ``dx = scale * rstd * (dy - mean(dy) - xhat * mean(dy * xhat))`` (plus the terms of the
  mean/var outputs), which XLA fuses into one reduction and one elementwise pass.
  """
  y, mean, var, _ = _batch_norm_forward(x, scale, bias, epsilon, out_dtype)
  return y, mean, var


def _batch_norm_forward(x, scale, bias, epsilon, out_dtype):
  xf = x.astype(jnp.float32)
  axes = _batch_axes(x)
  mean = jnp.mean(xf, axes)
  var = jnp.maximum(0.0, jnp.mean(xf * xf, axes) - mean * mean)
  rstd = jax.lax.rsqrt(var + epsilon)
  y = (xf - mean) * (rstd * scale.astype(jnp.float32)) + bias.astype(jnp.float32)
  return y.astype(out_dtype), mean, var, rstd


def _batch_norm_fwd(x, scale, bias, epsilon, out_dtype):
  y, mean, var, rstd = _batch_norm_forward(x, scale, bias, epsilon, out_dtype)
  return (y, mean, var), (x, scale, mean, rstd)


def _batch_norm_bwd(epsilon, out_dtype, residuals, cotangents):
  del epsilon, out_dtype
  x, scale, mean, rstd = residuals
  g_y, g_mean, g_var = cotangents
  n = x.size // x.shape[-1]
  axes = _batch_axes(x)
  centered = x.astype(jnp.float32) - mean
  xhat = centered * rstd
  g = g_y.astype(jnp.float32)
  d_bias = jnp.sum(g, axes)
  d_scale = jnp.sum(g * xhat, axes)
  dx = ((scale.astype(jnp.float32) * rstd) * (g - d_bias / n - xhat * (d_scale / n))
        + g_mean / n + (2.0 / n) * g_var * centered)
  return dx.astype(x.dtype), d_scale.astype(scale.dtype), d_bias.astype(scale.dtype)


batch_norm_train.defvjp(_batch_norm_fwd, _batch_norm_bwd)


class FastBatchNorm(nn.BatchNorm):
  """``nn.BatchNorm`` (same fields, parameters ``scale``/``bias``, statistics ``mean``/``var``,
  same numbers) whose training mode uses :func:`batch_norm_train`.

  Measured on the 2-core CPU: 3% less CPU time per GoogLeNet training step than autodiff of
  ``nn.BatchNorm``. Backends outside ``FAST_NORM_BACKENDS``, and configurations other than the
  Inception layers' (feature axis last, scale and bias, no cross-device axis, no mask, fast
  variance, float32 reductions), run ``nn.BatchNorm``'s own code.
  """

  def __call__(self, x: Array, use_running_average: bool | None = None, *,
               mask: Array | None = None) -> Array:
    if (jax.default_backend() not in FAST_NORM_BACKENDS
        or mask is not None or self.axis not in (-1, x.ndim - 1) or self.axis_name is not None
        or not (self.use_scale and self.use_bias and self.use_fast_variance)
        or not self.force_float32_reductions or x.ndim < 2):
      return super().__call__(x, use_running_average, mask=mask)
    return self._fast(x, nn.merge_param('use_running_average', self.use_running_average,
                                        use_running_average))

  @nn.compact
  def _fast(self, x: Array, use_running_average: bool) -> Array:
    features = (x.shape[-1],)
    ra_mean = self.variable('batch_stats', 'mean', lambda s: jnp.zeros(s, jnp.float32), features)
    ra_var = self.variable('batch_stats', 'var', lambda s: jnp.ones(s, jnp.float32), features)
    scale = self.param('scale', self.scale_init, features, self.param_dtype)
    bias = self.param('bias', self.bias_init, features, self.param_dtype)
    out_dtype = jnp.dtype(self.dtype or jnp.result_type(x, scale, bias))
    if use_running_average:
      mul = jax.lax.rsqrt(ra_var.value + self.epsilon) * scale
      y = (x.astype(jnp.float32) - ra_mean.value) * mul + bias
      return y.astype(out_dtype)
    y, mean, var = batch_norm_train(x, scale, bias, self.epsilon, out_dtype)
    if not self.is_initializing():
      ra_mean.value = self.momentum * ra_mean.value + (1 - self.momentum) * mean
      ra_var.value = self.momentum * ra_var.value + (1 - self.momentum) * var
    return y


class ConvBN(nn.Module):
  """Convolution + BatchNorm + ReLU, torchvision's ``BasicConv2d``.

  With ``use_bn`` the convolution has no bias (BN's offset replaces it) and BN uses eps 1e-3 as in
  the released GoogLeNet/Inception v3 weights. ``use_bn=False`` is the 2014 GoogLeNet layer: a
  convolution with bias followed by ReLU. ``padding`` is PyTorch's explicit symmetric padding.
  ``features`` is the published filter count; ``width_multiplier`` scales it here, once, so the
  model code reads exactly like the papers' tables.

  Parameter layout: ``conv/kernel`` [kh, kw, in, out] (``conv/bias`` without BN) and ``bn/scale``,
  ``bn/bias`` with running statistics ``bn/mean``, ``bn/var`` in ``batch_stats``.

  ``conv`` (default :class:`FastConv`; ``nn.Conv`` gives XLA's plain lowering) is called with
  ``nn.Conv``'s keyword arguments (features, kernel_size, strides,
  padding as ((lo, hi), (lo, hi)), use_bias, dtype, kernel_init, name='conv'); a replacement (e.g.
  a matmul for 1x1 kernels) must accept them and keep the ``conv/kernel`` layout so checkpoints and
  converted weights still load. ``summary`` counts MACs of ``nn.Conv``/``nn.Dense`` calls only.

  ``norm_momentum`` is the running statistics' decay (``running = m * running + (1 - m) *
  batch``; TF's batch-norm ``decay``). ``norm_axis_name`` (training only) averages the batch statistics over that named device axis:
  synchronised batch norm, for per-device batches too small for statistics of their own.
  """

  features: int
  kernel_size: IntOrPair
  strides: IntOrPair = 1
  padding: IntOrPair = 0
  use_bn: bool = True
  width_multiplier: float = 1.0
  dtype: Dtype = jnp.float32
  conv: ModuleDef = FastConv
  norm: ModuleDef = FastBatchNorm
  norm_axis_name: str | None = None
  norm_momentum: float = BN_MOMENTUM
  activation: Callable[[Array], Array] = nn.relu

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    ph, pw = pair(self.padding)
    x = self.conv(
        features=scale_channels(self.features, self.width_multiplier),
        kernel_size=pair(self.kernel_size),
        strides=pair(self.strides),
        padding=((ph, ph), (pw, pw)),
        use_bias=not self.use_bn,
        dtype=self.dtype,
        kernel_init=conv_kernel_init,
        name='conv')(x)
    if self.use_bn:
      x = self.norm(
          use_running_average=not train,
          momentum=self.norm_momentum,
          epsilon=BN_EPSILON,
          dtype=self.dtype,
          axis_name=self.norm_axis_name,
          name='bn')(x)
    return self.activation(x)


# ---------------------------------------------------------------------------------------------
# Pooling with PyTorch semantics.


def pool_output_size(size: int, window: int, stride: int, padding: int = 0,
                     ceil_mode: bool = False) -> int:
  """Output length of a pooling window along one axis, exactly as PyTorch computes it.

  Returns a value < 1 when the input is too small (PyTorch raises there; callers validate).
  """
  span = size + 2 * padding - window
  if span < 0 and not ceil_mode:
    return 0
  out = (-(-span // stride) if ceil_mode else span // stride) + 1
  # PyTorch: with ceil_mode the last window must start inside the input or its left padding.
  if ceil_mode and (out - 1) * stride >= size + padding:
    out -= 1
  return out


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
  """Output length of a convolution along one axis (floor division, as every framework)."""
  span = size + 2 * padding - kernel
  return span // stride + 1 if span >= 0 else 0


def _pool_geometry(shape: Sequence[int], window: tuple[int, int], stride: tuple[int, int],
                   padding: tuple[int, int], ceil_mode: bool):
  """Output sizes and (lo, hi) paddings that make a VALID reduce_window reproduce PyTorch."""
  outs, pads = [], []
  for size, k, s, p in zip(shape, window, stride, padding):
    out = pool_output_size(size, k, s, p, ceil_mode)
    if out < 1:
      raise ValueError(f'pooling window {k} does not fit an input of size {size}')
    hi = max(0, (out - 1) * s + k - size - p)
    outs.append(out)
    pads.append((p, hi))
  return outs, pads


def max_pool(x: Array, window: IntOrPair, stride: IntOrPair | None = None,
             padding: IntOrPair = 0, ceil_mode: bool = False) -> Array:
  """``torch.nn.MaxPool2d`` on NHWC: padding and ceil-mode overhang never win the max.

  On the backends of ``FAST_POOL_BACKENDS`` the gradient goes to the first maximum of each
  window in row-major order, as PyTorch's CPU kernel does; it is written as kh*kw masked slices
  of the stride-dilated output gradient, which XLA fuses into one loop (autodiff of
  ``reduce_window`` lowers to a select-and-scatter that measured several times slower on CPU).
  Elsewhere it is autodiff of ``reduce_window``. Where no gradient is taken, the backends of
  ``SLICE_POOL_BACKENDS`` compute the same maximum from strided slices (faster there).
  """
  window, padding = pair(window), pair(padding)
  stride = pair(stride) if stride is not None else window
  (oh, ow), (pad_h, pad_w) = _pool_geometry(x.shape[1:3], window, stride, padding, ceil_mode)
  pads = (tuple(pad_h), tuple(pad_w))
  if jax.default_backend() not in FAST_POOL_BACKENDS:
    return _max_pool_plain(x, window, stride, pads, (oh, ow))
  sliced = jax.default_backend() in SLICE_POOL_BACKENDS
  return _max_pool(x, window, stride, pads, (oh, ow), sliced)


def _max_pool_plain(x: Array, window: tuple[int, int], stride: tuple[int, int],
                    pads: tuple[tuple[int, int], tuple[int, int]], out: tuple[int, int]) -> Array:
  # In float32 for bfloat16 input: XLA:CPU rounds every pairwise maximum back to bf16 otherwise,
  # which keeps the loop from vectorising (3x slower); the maximum itself is exact either way.
  acc_dtype = jnp.promote_types(x.dtype, jnp.float32)
  y = jax.lax.reduce_window(
      x.astype(acc_dtype), np.array(-np.inf, acc_dtype), jax.lax.max, (1, *window, 1),
      (1, *stride, 1), ((0, 0), *pads, (0, 0)))
  return y[:, :out[0], :out[1], :].astype(x.dtype)


def _max_pool_slices(x: Array, window: tuple[int, int], stride: tuple[int, int],
                     pads: tuple[tuple[int, int], tuple[int, int]],
                     out: tuple[int, int]) -> Array:
  """The same maximum as a running maximum of the window's strided slices (one fused loop)."""
  acc_dtype = jnp.promote_types(x.dtype, jnp.float32)
  taps = _taps(x.astype(acc_dtype), *window, stride, pads, out, pad_value=-jnp.inf)
  return functools.reduce(jnp.maximum, taps).astype(x.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3, 4, 5))
def _max_pool(x, window, stride, pads, out, sliced):
  # JAX calls this only where no gradient is taken; under differentiation, _max_pool_fwd.
  pool = _max_pool_slices if sliced else _max_pool_plain
  return pool(x, window, stride, pads, out)


def _max_pool_fwd(x, window, stride, pads, out, sliced):
  del sliced
  y = _max_pool_plain(x, window, stride, pads, out)
  return y, (x, y)


def _max_pool_bwd(window, stride, pads, out, sliced, residuals, g):
  del sliced
  x, y = residuals
  batch, h, w, c = x.shape
  (lo_h, _), (lo_w, _) = pads  # the high sides follow from the geometry below
  (oh, ow), (sh, sw), (kh, kw) = out, stride, window
  # Compare and add in float32: XLA:CPU has no native bf16 arithmetic (the conversion is exact,
  # so the comparisons are unchanged; the sums have at most kh*kw terms).
  acc_dtype = jnp.promote_types(g.dtype, jnp.float32)
  taps = _taps(x.astype(acc_dtype), kh, kw, stride, pads, out, pad_value=-jnp.inf)
  y = y.astype(acc_dtype)
  # Which tap t = i*kw + j holds each window's first maximum, row-major (one int8 pass).
  index_dtype = jnp.int8 if kh * kw < 128 else jnp.int32
  first = jnp.full(y.shape, -1, index_dtype)
  for t in reversed(range(kh * kw)):
    first = jnp.where(taps[t] == y, jnp.asarray(t, index_dtype), first)
  # Gather form: input row p (unpadded) receives, through tap row i, the output at row
  # (p + lo - i) / stride when that is whole. Dilating g and ``first`` by the stride (interior
  # padding) and padding their edges once turns every tap into a plain slice, so the kh*kw
  # masked additions fuse into one loop that writes dx once (no scatter, no phase interleave).
  lead_h, lead_w = kh - 1 - lo_h, kw - 1 - lo_w
  span_h, span_w = (oh - 1) * sh + 1, (ow - 1) * sw + 1
  config = ((0, 0, 0), (lead_h, kh - 1 + h - lead_h - span_h, sh - 1),
            (lead_w, kw - 1 + w - lead_w - span_w, sw - 1), (0, 0, 0))
  zero = jnp.zeros((), acc_dtype)
  g_spread = jax.lax.pad(g.astype(acc_dtype), zero, config)
  first_spread = jax.lax.pad(first, jnp.asarray(-1, index_dtype), config)
  dx = None
  for t in range(kh * kw):
    i, j = divmod(t, kw)
    start, limit = (0, kh - 1 - i, kw - 1 - j, 0), (batch, kh - 1 - i + h, kw - 1 - j + w, c)
    part = jnp.where(jax.lax.slice(first_spread, start, limit) == t,
                     jax.lax.slice(g_spread, start, limit), zero)
    dx = part if dx is None else dx + part
  return (dx.astype(g.dtype),)


_max_pool.defvjp(_max_pool_fwd, _max_pool_bwd)


def avg_pool(x: Array, window: IntOrPair, stride: IntOrPair | None = None,
             padding: IntOrPair = 0, ceil_mode: bool = False,
             count_include_pad: bool = True) -> Array:
  """``torch.nn.functional.avg_pool2d`` on NHWC.

  The divisor follows PyTorch exactly: with ``count_include_pad`` it counts the zero padding but
  not a ceil-mode overhang beyond it; without, it counts only input pixels.
  """
  window, padding = pair(window), pair(padding)
  stride = pair(stride) if stride is not None else window
  (oh, ow), (pad_h, pad_w) = _pool_geometry(x.shape[1:3], window, stride, padding, ceil_mode)
  # Summed in float32 whatever the compute dtype (as PyTorch accumulates bf16), rounded once.
  acc_dtype = jnp.promote_types(x.dtype, jnp.float32)
  total = jax.lax.reduce_window(
      x.astype(acc_dtype), 0.0, jax.lax.add, (1, *window, 1), (1, *stride, 1),
      ((0, 0), pad_h, pad_w, (0, 0)))[:, :oh, :ow, :]
  counts = []
  for size, k, s, p, lo, hi, out in zip(x.shape[1:3], window, stride, padding,
                                       (pad_h[0], pad_w[0]), (pad_h[1], pad_w[1]), (oh, ow)):
    # In padded coordinates the input occupies [p, p + size); PyTorch's divisor covers the
    # padding on both sides too ([0, size + 2p)) when count_include_pad, never the overhang.
    valid = np.zeros(lo + size + hi, np.float32)
    if count_include_pad:
      valid[:size + 2 * p] = 1.0
    else:
      valid[p:p + size] = 1.0
    counts.append(np.array([valid[i * s:i * s + k].sum() for i in range(out)], np.float32))
  divisor = np.outer(counts[0], counts[1])[None, :, :, None]
  return (total / jnp.asarray(divisor, acc_dtype)).astype(x.dtype)


def _adaptive_matrix(size: int, out: int) -> np.ndarray:
  """[out, size] averaging matrix of PyTorch's adaptive pooling: start=floor, end=ceil."""
  m = np.zeros((out, size), np.float32)
  for i in range(out):
    start = (i * size) // out
    end = -(-((i + 1) * size) // out)
    m[i, start:end] = 1.0 / (end - start)
  return m


def adaptive_avg_pool(x: Array, output_size: IntOrPair) -> Array:
  """``torch.nn.functional.adaptive_avg_pool2d`` on NHWC (works for any input >= 1 pixel).

  Cell i averages rows ``floor(i*H/out) .. ceil((i+1)*H/out)``; an input smaller than the output
  repeats pixels, as PyTorch does.
  """
  oh, ow = pair(output_size)
  h, w = x.shape[1:3]
  if (oh, ow) == (1, 1):
    return jnp.mean(x, axis=(1, 2), keepdims=True)
  if h % oh == 0 and w % ow == 0:
    b, c = x.shape[0], x.shape[3]
    return x.reshape(b, oh, h // oh, ow, w // ow, c).mean(axis=(2, 4))
  mh = jnp.asarray(_adaptive_matrix(h, oh), x.dtype)
  mw = jnp.asarray(_adaptive_matrix(w, ow), x.dtype)
  return jnp.einsum('ih,jw,bhwc->bijc', mh, mw, x)


def global_avg_pool(x: Array) -> Array:
  """Average over the spatial grid: [B, H, W, C] -> [B, C]."""
  return jnp.mean(x, axis=(1, 2))


def local_response_norm(x: Array, size: int = 5, alpha: float = 1e-4, beta: float = 0.75,
                        k: float = 1.0) -> Array:
  """Cross-channel local response normalisation as in Caffe's GoogLeNet (and torch's LRN).

  ``x / (k + alpha/size * sum_{size neighbouring channels} x^2) ** beta``; the GoogLeNet paper
  (Table 1 / Fig. 3, "LocalRespNorm") uses size 5, alpha 1e-4, beta 0.75 in the stem.
  """
  squared = jnp.square(x.astype(jnp.float32))
  summed = jax.lax.reduce_window(
      squared, 0.0, jax.lax.add, (1, 1, 1, size), (1, 1, 1, 1),
      ((0, 0), (0, 0), (0, 0), (size // 2, (size - 1) // 2)))
  denom = jnp.power(k + (alpha / size) * summed, beta)
  return (x.astype(jnp.float32) / denom).astype(x.dtype)


# ---------------------------------------------------------------------------------------------
# Model plumbing shared by both families.


def dense(features: int, dtype: Dtype, name: str, use_bias: bool = True) -> nn.Dense:
  """A fully connected layer with the shared initialiser (params float32, compute ``dtype``)."""
  return nn.Dense(features, use_bias=use_bias, dtype=dtype, kernel_init=dense_kernel_init,
                  name=name)


def conv_block(use_bn: bool, width_multiplier: float, dtype: Dtype,
               conv: ModuleDef = FastConv, norm_axis_name: str | None = None,
               norm_momentum: float = BN_MOMENTUM) -> ModuleDef:
  """The one ConvBN factory a model hands to all of its blocks."""
  return functools.partial(ConvBN, use_bn=use_bn, width_multiplier=width_multiplier,
                           dtype=dtype, conv=conv, norm_axis_name=norm_axis_name,
                           norm_momentum=norm_momentum)


@flax.struct.dataclass
class ModelOutput:
  """What every model returns: main logits and the auxiliary heads' logits by name.

  ``aux_logits`` is empty unless the aux heads ran (training, or ``return_aux=True``); names are
  ``aux1``/``aux2`` (GoogLeNet, after 4a/4d) and ``aux`` (Inception v3, after Mixed_6e).
  All logits are float32 whatever the compute dtype.
  """

  logits: Array
  aux_logits: dict[str, Array]


def check_config(model_name: str, num_classes: int, width_multiplier: float) -> None:
  """Reject settings no input could fix (raised at trace time, so also under eval_shape)."""
  if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
    raise UserError(f'{model_name} needs num_classes >= 1 (got {num_classes!r})')
  if not width_multiplier > 0:
    raise UserError(f'{model_name} needs width_multiplier > 0 (got {width_multiplier!r}); '
                    '1.0 is the published architecture')


def check_choice(model_name: str, field: str, value: Any, choices: Sequence[Any]) -> None:
  """Reject a switch value outside its documented choices."""
  if value not in choices:
    raise UserError(f'{model_name}: {field} must be one of '
                    f'{", ".join(repr(c) for c in choices)} (got {value!r})')


def check_images(model_name: str, images: Array, min_size: int, fix: str) -> None:
  """Raise a UserError, naming the minimum, for inputs the architecture cannot take."""
  if images.ndim != 4:
    raise UserError(f'{model_name} takes NHWC image batches [batch, height, width, 3] '
                    f'(got shape {tuple(images.shape)})')
  h, w, c = images.shape[1:]
  if c != 3:
    raise UserError(f'{model_name} takes 3-channel RGB images (got {c} channels in NHWC shape '
                    f'{tuple(images.shape)}); convert the images to RGB')
  if h < min_size or w < min_size:
    raise UserError(f'{model_name} needs images of at least {min_size}x{min_size} pixels '
                    f'(got {h}x{w}); {fix}')


__all__ = [
    'ConvBN', 'FastBatchNorm', 'FastConv', 'ModelOutput', 'adaptive_avg_pool', 'avg_pool',
    'batch_norm_train', 'check_choice', 'check_config', 'check_images', 'conv2d', 'conv_block',
    'conv_output_size', 'dense', 'global_avg_pool', 'local_response_norm', 'max_pool', 'pair',
    'pool_output_size', 'scale_channels',
]
