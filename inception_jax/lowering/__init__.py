"""How the models' layers are lowered on each backend: one value, :class:`Lowering`.

The paper's layers (``models.layers``) say *what* is computed; a :class:`Lowering` says which code
computes it. Every lowering here computes the same function as Flax/XLA's own layers
(tests/test_layers.py compares values and gradients: exactly, but for Winograd's float32
rounding), so the choice changes speed, never the parameters or the numbers a model learns.

A backend gets a lowering only where it was measured faster there (:func:`for_backend`, with the
benchmarks/RESULTS.md section of each measurement), for each network where the two networks
measured differently; elsewhere it runs :func:`plain`.
``python -m inception_jax.tools.bench --plain conv|winograd|norm|pool`` measures the plain part
against the backend's choice.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import flax.linen as nn
import jax

from inception_jax.lowering import max_pool as max_pool_lib
from inception_jax.lowering.batch_norm import FastBatchNorm
from inception_jax.lowering.conv import FastConv

ModuleDef = Any
# (x, window, stride, pads, out, sliced_eval) -> y; see lowering/max_pool.py.
MaxPool = Callable[..., jax.Array]


@dataclasses.dataclass(frozen=True, repr=False)
class Lowering:
  """Which implementation each layer uses; the defaults are Flax/XLA as they come (:func:`plain`).

  Attributes:
    conv: the convolution module class ConvBN creates, called with ``nn.Conv``'s keyword
      arguments (``nn.Conv``, or :class:`FastConv`: 1x1 kernels as matrix products).
    winograd: :class:`FastConv` computes wide 3x3 stride-1 convolutions by Winograd
      F(4x4, 3x3) (needs ``conv`` to be a :class:`FastConv`).
    norm: the batch-norm module class (``nn.BatchNorm``, or :class:`FastBatchNorm`: a
      hand-written training gradient).
    max_pool: ``max_pool.reduce_window`` (autodiff of ``reduce_window``) or
      ``max_pool.gather_gradient`` (a gather-form gradient).
    sliced_eval_pool: where no gradient is taken, max pools as a running maximum of strided
      slices (needs ``max_pool.gather_gradient``, whose custom gradient tells the two apart).
  """

  conv: ModuleDef = nn.Conv
  winograd: bool = False
  norm: ModuleDef = nn.BatchNorm
  max_pool: MaxPool = max_pool_lib.reduce_window
  sliced_eval_pool: bool = False

  def __post_init__(self):
    if self.winograd and not (isinstance(self.conv, type) and issubclass(self.conv, FastConv)):
      raise ValueError(f'winograd=True needs conv=FastConv (got conv={self.conv!r})')
    if self.sliced_eval_pool and self.max_pool is not max_pool_lib.gather_gradient:
      raise ValueError('sliced_eval_pool=True needs max_pool=max_pool.gather_gradient')

  def __repr__(self) -> str:  # names, not addresses: the same in every process
    name = lambda value: getattr(value, '__qualname__', repr(value))
    parts = (f'{f.name}={name(getattr(self, f.name))}' for f in dataclasses.fields(self))
    return f'Lowering({", ".join(parts)})'

  def conv_factory(self) -> ModuleDef:
    """What ConvBN calls, with ``nn.Conv``'s keyword arguments, to build its convolution."""
    if self.winograd:
      return functools.partial(self.conv, winograd=True)
    return self.conv


def plain() -> Lowering:
  """Flax and XLA as they come: ``nn.Conv``, ``nn.BatchNorm``, ``reduce_window`` max pools."""
  return Lowering()


def for_backend(backend: str | None = None, network: str | None = None) -> Lowering:
  """The lowering measured fastest on ``backend`` (default ``jax.default_backend()``) for
  ``network`` (a model's ``label``: ``'googlenet'`` or ``'inception_v3'``; None = GoogLeNet's).

  Each choice below names the benchmarks/RESULTS.md section that measured it (the numbers live
  there); a part never measured on a backend stays plain there.
  """
  backend = backend or jax.default_backend()
  if backend == 'cpu':
    chosen = Lowering(
        # 1x1 kernels as matrix products: "CPU: 2-core AMD EPYC ..., with YNNPACK convolutions
        # off" (kernel gradients; FastConv against --plain conv) and "CPU: bfloat16 on the fast
        # paths" (float32-result products).
        conv=FastConv,
        # "CPU: Winograd F(4x4, 3x3) for the wide 3x3 convolutions" (A/B against --plain
        # winograd, and per convolution) and, in bfloat16, "CPU: bfloat16 on the fast paths".
        winograd=True,
        # "What the CPU work bought" (listed there; the A/B is not recorded in RESULTS.md).
        norm=FastBatchNorm,
        # "CPU: ... with YNNPACK convolutions off", **Max-pool gradient** (profile of the step).
        max_pool=max_pool_lib.gather_gradient,
        # "CPU: evaluation's max pools as sliced maxima" (in-process A/B of the evaluation step).
        sliced_eval_pool=True)
    if network == 'inception_v3':
      # "Inception v3's convolutions on the Zen 5 EPYC": there FastConv (and so Winograd) gave
      # no training gain over XLA's own convolutions and slowed evaluation, in runs alternated
      # over two sessions. (On the AVX-512 EPYC of sessions 1-7 Winograd had paid for v3; that
      # machine is gone, and this is the CPU in use.) GoogLeNet keeps both: they pay for its
      # training on both machines (the same section, GoogLeNet's A/B).
      chosen = dataclasses.replace(chosen, conv=nn.Conv, winograd=False)
    return chosen
  if backend == 'gpu':
    # "GPU: one NVIDIA H200, bfloat16", lowering variants: GoogLeNet ran slower with plain
    # nn.BatchNorm and with the plain max-pool gradient (Inception v3 no faster), so both
    # hand-written gradients stay; FastConv's lowerings lost to XLA's own (cuDNN) convolutions
    # (the paragraph under that table), so conv stays nn.Conv and Winograd, a FastConv lowering,
    # off. The sliced evaluation pool was never measured there. (Measured on CUDA; JAX names
    # ROCm 'gpu' too.)
    return Lowering(norm=FastBatchNorm, max_pool=max_pool_lib.gather_gradient)
  # TPU and anything else: nothing was measured there.
  return plain()


__all__ = ['FastBatchNorm', 'FastConv', 'Lowering', 'for_backend', 'plain']
