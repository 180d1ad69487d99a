"""Max pooling's forward and gradient as the CPU runs them fastest (same numbers as XLA's).

Both functions take the geometry ``layers.max_pool`` derives from PyTorch's arguments: ``pads``
((lo, hi), (lo, hi)) for a VALID ``reduce_window`` and the output size ``out`` (oh, ow).

* :func:`reduce_window`: plain XLA, ``reduce_window`` and its autodiff (select-and-scatter).
* :func:`gather_gradient`: the same forward with a gradient written in gather form, kh*kw masked
  slices of the stride-dilated output gradient that XLA fuses into one loop. The gradient goes
  to the first maximum of each window in row-major order, as PyTorch's CPU kernel does. With
  ``sliced_eval`` it takes, where no gradient is taken, the running maximum of the window's
  strided slices, which XLA:CPU vectorises and ``reduce_window`` it does not; under
  differentiation the forward stays ``reduce_window``, because there XLA fuses the sliced maximum
  into the next layer's transposing copy, which is slower.

Where each pays, measured: benchmarks/RESULTS.md, Lowering choices.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
Pads = tuple[tuple[int, int], tuple[int, int]]


def taps(x: Array, kh: int, kw: int, strides: tuple[int, int], padding: Pads,
         out_hw: tuple[int, int], pad_value: float = 0.0) -> list[Array]:
  """The kh*kw shifted (and strided) views of the padded input that meet each window tap, in
  row-major tap order."""
  xp = jnp.pad(x, ((0, 0), tuple(padding[0]), tuple(padding[1]), (0, 0)),
               constant_values=pad_value)
  (oh, ow), (sh, sw) = out_hw, strides
  return [jax.lax.slice(xp, (0, i, j, 0),
                        (xp.shape[0], i + (oh - 1) * sh + 1, j + (ow - 1) * sw + 1, xp.shape[3]),
                        (1, sh, sw, 1))
          for i in range(kh) for j in range(kw)]


def reduce_window(x: Array, window: tuple[int, int], stride: tuple[int, int], pads: Pads,
                  out: tuple[int, int], sliced_eval: bool = False) -> Array:
  """``reduce_window`` max, differentiated by autodiff (``sliced_eval`` must be False)."""
  if sliced_eval:
    raise ValueError('reduce_window has no separate evaluation forward')
  # In float32 for bfloat16 input: XLA:CPU rounds every pairwise maximum back to bf16 otherwise,
  # which keeps the loop from vectorising ("CPU: bfloat16 on the fast paths"); the maximum
  # itself is exact either way.
  acc_dtype = jnp.promote_types(x.dtype, jnp.float32)
  y = jax.lax.reduce_window(
      x.astype(acc_dtype), np.array(-np.inf, acc_dtype), jax.lax.max, (1, *window, 1),
      (1, *stride, 1), ((0, 0), *pads, (0, 0)))
  return y[:, :out[0], :out[1], :].astype(x.dtype)


def _sliced(x: Array, window: tuple[int, int], stride: tuple[int, int], pads: Pads,
            out: tuple[int, int]) -> Array:
  """The same maximum as a running maximum of the window's strided slices (one fused loop)."""
  acc_dtype = jnp.promote_types(x.dtype, jnp.float32)
  views = taps(x.astype(acc_dtype), *window, stride, pads, out, pad_value=-jnp.inf)
  return functools.reduce(jnp.maximum, views).astype(x.dtype)


def gather_gradient(x: Array, window: tuple[int, int], stride: tuple[int, int], pads: Pads,
                    out: tuple[int, int], sliced_eval: bool = False) -> Array:
  """``reduce_window``'s maximum with the gather-form gradient; see the module docstring."""
  return _max_pool(x, window, stride, pads, out, sliced_eval)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3, 4, 5))
def _max_pool(x, window, stride, pads, out, sliced):
  # JAX calls this only where no gradient is taken; under differentiation, _max_pool_fwd.
  if sliced:
    return _sliced(x, window, stride, pads, out)
  return reduce_window(x, window, stride, pads, out)


def _max_pool_fwd(x, window, stride, pads, out, sliced):
  del sliced
  y = reduce_window(x, window, stride, pads, out)
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
  views = taps(x.astype(acc_dtype), kh, kw, stride, pads, out, pad_value=-jnp.inf)
  y = y.astype(acc_dtype)
  # Which tap t = i*kw + j holds each window's first maximum, row-major (one int8 pass).
  index_dtype = jnp.int8 if kh * kw < 128 else jnp.int32
  first = jnp.full(y.shape, -1, index_dtype)
  for t in reversed(range(kh * kw)):
    first = jnp.where(views[t] == y, jnp.asarray(t, index_dtype), first)
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


__all__ = ['gather_gradient', 'reduce_window', 'taps']
