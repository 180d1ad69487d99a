"""``nn.Conv`` lowered for XLA:CPU: same fields, same parameters, same numbers.

1x1 convolutions run as matrix products over the channel axis, both ways: their kernel gradient
is faster as a matrix product than as XLA's convolution on the CPU, and in bfloat16 a product
asked for a float32 result runs on the AVX512_BF16 instructions (measured: benchmarks/RESULTS.md,
Lowering choices). Other kernels keep XLA's convolution and its gradients. With ``winograd``,
wide 3x3 stride-1 convolutions take
:func:`~inception_jax.lowering.winograd.winograd_conv3x3`.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from inception_jax.lowering import winograd

Array = jax.Array
Padding = tuple[tuple[int, int], tuple[int, int]]

_NHWC = ('NHWC', 'HWIO', 'NHWC')


def _lax_conv(x: Array, kernel: Array, strides: tuple[int, int], padding: Padding) -> Array:
  return jax.lax.conv_general_dilated(x, kernel, strides, padding, dimension_numbers=_NHWC)


def _pointwise(kernel: Array, strides: tuple[int, int], padding: Padding) -> bool:
  return (kernel.shape[:2] == (1, 1) and tuple(strides) == (1, 1)
          and all(tuple(p) == (0, 0) for p in padding))


def _dot_rounded(a: Array, b: Array,
                 contracting: tuple[tuple[int, ...], tuple[int, ...]]) -> Array:
  """A matrix product accumulated in float32 and rounded once to the operands' dtype (the form
  XLA:CPU runs on the AVX512_BF16 instructions; asked for a bf16 result it converts the operands
  to float32 first)."""
  return jax.lax.dot_general(a, b, (contracting, ((), ())),
                             preferred_element_type=jnp.float32).astype(a.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv2d(x: Array, kernel: Array, strides: tuple[int, int], padding: Padding) -> Array:
  """NHWC x HWIO convolution (no dilation, no groups): ``lax.conv_general_dilated``'s function
  with 1x1 kernels as matrix products, forward and backward. ``strides`` and ``padding``
  ((lo, hi), (lo, hi)) must be hashable tuples."""
  if _pointwise(kernel, strides, padding):
    return _dot_rounded(x, kernel[0, 0], ((3,), (0,)))
  return _lax_conv(x, kernel, strides, padding)


def _conv2d_fwd(x, kernel, strides, padding):
  return conv2d(x, kernel, strides, padding), (x, kernel)


def _conv2d_bwd(strides, padding, residuals, g):
  x, kernel = residuals
  if _pointwise(kernel, strides, padding):
    dx = _dot_rounded(g, kernel[0, 0], ((3,), (1,)))
    dk = jax.lax.dot_general(x, g, (((0, 1, 2), (0, 1, 2)), ((), ())),
                             preferred_element_type=jnp.float32)
    return dx, dk.reshape(kernel.shape).astype(kernel.dtype)
  dx = jax.vjp(lambda x_: _lax_conv(x_, kernel, strides, padding), x)[1](g)[0]
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
  numbers) computed with :func:`conv2d`, and with ``winograd`` by Winograd where
  :func:`~inception_jax.lowering.winograd.eligible` (equal to float32 rounding, or one bfloat16
  rounding), for 2-D NHWC convolutions without dilation or groups.

  Anything else (1-D/3-D, dilation, groups, a mask, an explicit ``precision``, circular padding,
  unbatched input) runs ``nn.Conv``'s own code, so it is a drop-in replacement. ``summary``
  counts its MACs as any ``nn.Conv``'s.
  """

  winograd: bool = False

  def __call__(self, inputs: Array) -> Array:
    kernel_size = ((self.kernel_size,) * 2 if isinstance(self.kernel_size, int)
                   else tuple(self.kernel_size))
    strides = self.strides if self.strides is not None else 1
    strides = (strides,) * len(kernel_size) if isinstance(strides, int) else tuple(strides)
    padding = None
    if (inputs.ndim == 4 and len(kernel_size) == 2 and self.feature_group_count == 1
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
    if self.winograd and winograd.eligible(inputs, kernel, strides, padding):
      with jax.named_scope('winograd'):
        y = winograd.winograd_conv3x3(inputs, kernel, padding)
    else:
      y = conv2d(inputs, kernel, strides, padding)
    if bias is not None:
      y = y + bias
    return y


__all__ = ['FastConv', 'conv2d']
