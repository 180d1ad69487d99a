"""The papers' building blocks, shared by GoogLeNet and Inception v3.

:class:`ConvBN` is every convolution of both families (conv + batch norm + ReLU, torchvision's
``BasicConv2d``); the pools reproduce PyTorch's (and so torchvision's) semantics exactly, because
weights converted from torchvision must give the same logits: explicit symmetric padding,
``ceil_mode`` (the last window may overhang the input as long as it starts inside it) and average
pooling that counts the zero padding in the divisor (``count_include_pad=True``). Pooling works
on NHWC arrays.

Which code computes a convolution, a batch norm or a max pool is not decided here: the layers
take an already chosen :class:`~inception_jax.lowering.Lowering`, which never changes the numbers.
A network chooses its own once (``lowering.for_backend(network=label)``) and hands it to every
layer; a layer used on its own runs ``lowering.plain()``, Flax and XLA as they come, never a
network's backend choice.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from inception_jax import lowering as lowering_lib
from inception_jax.lowering import Lowering

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


# What a layer used on its own runs (a frozen value, safe to share as a default).
PLAIN = lowering_lib.plain()


def check_lowering(lowering: Any, where: str) -> Lowering:
  """``lowering`` if it is a :class:`Lowering`; TypeError otherwise (None included: a layer
  never looks a lowering up itself)."""
  if not isinstance(lowering, Lowering):
    raise TypeError(f'{where}: lowering must be an inception_jax.lowering.Lowering, got '
                    f'{lowering!r} (the network chooses one: lowering.for_backend(network=...); '
                    'on its own, lowering.plain())')
  return lowering


class ConvBN(nn.Module):
  """Convolution + BatchNorm + ReLU, torchvision's ``BasicConv2d``.

  With ``use_bn`` the convolution has no bias (BN's offset replaces it) and BN uses eps 1e-3 as in
  the released GoogLeNet/Inception v3 weights. ``use_bn=False`` is the 2014 GoogLeNet layer
  (GoogLeNet paper, Table 1): a convolution with bias followed by ReLU. ``padding`` is PyTorch's
  explicit symmetric padding. ``features`` is the published filter count; ``width_multiplier``
  scales it here, once, so the model code reads exactly like the papers' tables.

  Parameter layout: ``conv/kernel`` [kh, kw, in, out] (``conv/bias`` without BN) and ``bn/scale``,
  ``bn/bias`` with running statistics ``bn/mean``, ``bn/var`` in ``batch_stats``, whatever the
  ``lowering``: its modules keep ``nn.Conv``'s and ``nn.BatchNorm``'s parameters, so checkpoints
  and converted weights load under any of them. ``lowering`` is the one its network chose;
  the default, for a ConvBN on its own, is ``lowering.plain()`` (``nn.Conv``, ``nn.BatchNorm``).

  ``norm_momentum`` is the running statistics' decay (``running = m * running + (1 - m) *
  batch``; TF's batch-norm ``decay``). ``norm_use_scale=False`` drops BN's learned scale (no
  ``bn/scale``): TF-slim's and Keras's Inception v3 (``BatchNormalization(scale=False)``; a
  positive scale passes through the ReLU into the next convolution, Keras's docs say).
  ``norm_axis_name`` (training only) averages the batch statistics over that named device axis:
  synchronised batch norm, for per-device batches too small for statistics of their own.
  """

  features: int
  kernel_size: IntOrPair
  strides: IntOrPair = 1
  padding: IntOrPair = 0
  use_bn: bool = True
  width_multiplier: float = 1.0
  dtype: Dtype = jnp.float32
  lowering: Lowering = PLAIN
  norm_axis_name: str | None = None
  norm_momentum: float = BN_MOMENTUM
  norm_use_scale: bool = True
  activation: Callable[[Array], Array] = nn.relu

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    lowering = check_lowering(self.lowering, 'ConvBN')
    ph, pw = pair(self.padding)
    x = lowering.conv_factory()(
        features=scale_channels(self.features, self.width_multiplier),
        kernel_size=pair(self.kernel_size),
        strides=pair(self.strides),
        padding=((ph, ph), (pw, pw)),
        use_bias=not self.use_bn,
        dtype=self.dtype,
        kernel_init=conv_kernel_init,
        name='conv')(x)
    if self.use_bn:
      x = lowering.norm(
          use_running_average=not train,
          momentum=self.norm_momentum,
          epsilon=BN_EPSILON,
          use_scale=self.norm_use_scale,
          dtype=self.dtype,
          axis_name=self.norm_axis_name,
          name='bn')(x)
    return self.activation(x)


def conv_block(use_bn: bool, width_multiplier: float, dtype: Dtype,
               lowering: Lowering = PLAIN, norm_axis_name: str | None = None,
               norm_momentum: float = BN_MOMENTUM, norm_use_scale: bool = True) -> ModuleDef:
  """The one ConvBN factory a model hands to all of its blocks, with the model's lowering."""
  return functools.partial(ConvBN, use_bn=use_bn, width_multiplier=width_multiplier,
                           dtype=dtype, lowering=lowering, norm_axis_name=norm_axis_name,
                           norm_momentum=norm_momentum, norm_use_scale=norm_use_scale)


def dense(features: int, dtype: Dtype, name: str, use_bias: bool = True) -> nn.Dense:
  """A fully connected layer with the shared initialiser (params float32, compute ``dtype``)."""
  return nn.Dense(features, use_bias=use_bias, dtype=dtype, kernel_init=dense_kernel_init,
                  name=name)


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
             padding: IntOrPair = 0, ceil_mode: bool = False, *,
             lowering: Lowering = PLAIN) -> Array:
  """``torch.nn.MaxPool2d`` on NHWC: padding and ceil-mode overhang never win the max.

  The GoogLeNet paper's pools (Table 1) use Caffe's ``ceil_mode``, Inception v3's floor mode.
  ``lowering.max_pool`` computes the maximum (and its gradient) from the geometry worked out here
  (the network's choice; on its own ``lowering.plain()``'s ``reduce_window``).
  """
  window, padding = pair(window), pair(padding)
  stride = pair(stride) if stride is not None else window
  (oh, ow), (pad_h, pad_w) = _pool_geometry(x.shape[1:3], window, stride, padding, ceil_mode)
  lowering = check_lowering(lowering, 'max_pool')
  return lowering.max_pool(x, window, stride, (tuple(pad_h), tuple(pad_w)), (oh, ow),
                           lowering.sliced_eval_pool)


def avg_pool(x: Array, window: IntOrPair, stride: IntOrPair | None = None,
             padding: IntOrPair = 0, ceil_mode: bool = False,
             count_include_pad: bool = True) -> Array:
  """``torch.nn.functional.avg_pool2d`` on NHWC.

  Inception v3's pool branches (Figs. 5-7; 3x3/1, padding 1) count the padding, as released.
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

  torchvision's aux heads use it in place of the papers' fixed pools (GoogLeNet Section 5).
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
  """Average over the spatial grid, [B, H, W, C] -> [B, C]: GoogLeNet's "avg pool 7x7/1" and
  Inception v3's "pool 8x8" (Table 1 of each paper) at any input size."""
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


__all__ = [
    'BN_EPSILON', 'BN_MOMENTUM', 'PLAIN', 'ConvBN', 'adaptive_avg_pool', 'avg_pool',
    'check_lowering', 'conv_block', 'conv_output_size', 'dense', 'global_avg_pool',
    'local_response_norm', 'max_pool', 'pair', 'pool_output_size', 'scale_channels',
]
