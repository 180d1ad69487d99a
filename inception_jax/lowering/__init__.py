"""How the models' layers are lowered on each backend: one value, :class:`Lowering`.

The paper's layers (``models.layers``) say *what* is computed; a :class:`Lowering` says which code
computes it. Every lowering here computes the same function as Flax/XLA's own layers
(tests/test_layers.py compares values and gradients: exactly, but for Winograd's float32
rounding), so the choice changes speed, never the parameters or the numbers a model learns.

:data:`CHOICES` is the choice per (backend, network), each part only where it was measured faster
there (benchmarks/RESULTS.md, Lowering choices); a backend it does not name runs :func:`plain`.
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


# The networks the table knows, by their models' ``label``.
NETWORKS = ('googlenet', 'inception_v3')

_CPU = Lowering(conv=FastConv, winograd=True, norm=FastBatchNorm,
                max_pool=max_pool_lib.gather_gradient, sliced_eval_pool=True)
_GPU = Lowering(norm=FastBatchNorm, max_pool=max_pool_lib.gather_gradient)

# (backend, network) -> (the lowering, why). Every entry is measured: benchmarks/RESULTS.md,
# Lowering choices (each part against its plain counterpart, ``bench --plain``).
CHOICES: dict[tuple[str, str], tuple[Lowering, str]] = {
    ('cpu', 'googlenet'): (
        _CPU, '1x1 convolutions as matrix products, Winograd 3x3s, the hand-written batch-norm '
              'and max-pool gradients and sliced evaluation pools each train or evaluate faster'),
    ('cpu', 'inception_v3'): (
        dataclasses.replace(_CPU, conv=nn.Conv, winograd=False),
        "GoogLeNet's choice but XLA's own convolutions: FastConv (and so Winograd) gives this "
        'network no training gain and slows its evaluation'),
    ('gpu', 'googlenet'): (
        _GPU, 'the hand-written batch-norm and max-pool gradients train faster; FastConv loses '
              "to XLA's own (cuDNN) convolutions; sliced evaluation pools not measured"),
    ('gpu', 'inception_v3'): (
        _GPU, "GoogLeNet's GPU choice: the two gradients are no slower for this network"),
}


def for_backend(backend: str | None = None, *, network: str) -> Lowering:
  """The lowering :data:`CHOICES` gives ``network`` (a model's ``label``, one of
  :data:`NETWORKS`) on ``backend`` (default ``jax.default_backend()``).

  A backend with no entry (TPU, or any other) runs :func:`plain` for every network: nothing was
  measured there. A network not in :data:`NETWORKS` raises ValueError: its lowering is measured
  and added to the table, or it passes ``lowering.plain()`` itself.
  """
  if network not in NETWORKS:
    raise ValueError(f'no lowering chosen for network {network!r} (the table has '
                     f'{", ".join(NETWORKS)}); pass a Lowering, e.g. lowering.plain()')
  backend = backend or jax.default_backend()
  chosen = CHOICES.get((backend, network))
  return chosen[0] if chosen is not None else plain()


__all__ = ['CHOICES', 'FastBatchNorm', 'FastConv', 'Lowering', 'NETWORKS', 'for_backend', 'plain']
