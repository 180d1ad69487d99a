"""``nn.BatchNorm`` with a hand-written training gradient: same parameters, same numbers.

Autodiff of ``nn.BatchNorm`` differentiates the statistics term by term; the textbook formula is
one reduction and one elementwise pass, which XLA fuses. Measured: benchmarks/RESULTS.md,
Lowering choices.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array


def _batch_axes(x: Array) -> tuple[int, ...]:
  return tuple(range(x.ndim - 1))


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def batch_norm_train(x: Array, scale: Array, bias: Array, epsilon: float,
                     out_dtype: Any) -> tuple[Array, Array, Array]:
  """Training-mode batch norm over all axes but the last, as ``nn.BatchNorm`` computes it.

  Statistics in float32 with the fast variance ``E[x^2] - E[x]^2`` clipped at 0 (Flax's
  defaults); returns ``(y, batch_mean, batch_var)``. The backward pass is
  ``dx = scale * rstd * (dy - mean(dy) - xhat * mean(dy * xhat))`` plus the terms of the
  mean/var outputs.
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

  Configurations other than the Inception layers' (feature axis last, scale and bias, no
  cross-device axis, no mask, fast variance, float32 reductions) run ``nn.BatchNorm``'s own code.
  """

  def __call__(self, x: Array, use_running_average: bool | None = None, *,
               mask: Array | None = None) -> Array:
    if (mask is not None or self.axis not in (-1, x.ndim - 1) or self.axis_name is not None
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


__all__ = ['FastBatchNorm', 'batch_norm_train']
