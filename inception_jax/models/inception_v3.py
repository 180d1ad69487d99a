"""Inception v3: Szegedy et al., "Rethinking the Inception Architecture for Computer Vision", 2016.

The released network (TF-slim, ported by torchvision) is the paper's Table 1 with the details of
the public checkpoint: a stem of 3x3 convolutions, three Fig. 5 modules on the 35x35 grid
(``Mixed_5b``-``5d``), a grid reduction (``Mixed_6a``), four Fig. 6 modules on the 17x17 grid
(``Mixed_6b``-``6e``), a second reduction (``Mixed_7a``), two Fig. 7 modules on the 8x8 grid
(``Mixed_7b``, ``7c``), global average pooling, dropout and a linear classifier, plus one
auxiliary classifier on ``Mixed_6e`` (Section 7, Fig. 8). Defaults reproduce it; the switches undo
one design decision each so the paper's ablations (Table 3) can be rerun.

Parameter names mirror torchvision's module names, so converting weights is mechanical
(torchvision ``Mixed_5b.branch5x5_1.conv.weight`` is ``params/Mixed_5b/branch5x5_1/conv/kernel``):

* ``Conv2d_1a_3x3``, ``Conv2d_2a_3x3``, ``Conv2d_2b_3x3``, ``Conv2d_3b_1x1``, ``Conv2d_4a_3x3``
  (``Conv2d_1a_7x7`` replaces the first three with ``stem='7x7'``).
* ``Mixed_5b`` .. ``Mixed_7c`` with torchvision's branch names (``branch1x1``, ``branch5x5_1``,
  ``branch3x3dbl_1``, ``branch_pool``, ``branch7x7_1``, ``branch7x7dbl_1``, ``branch3x3_2a``,
  ``branch7x7x3_1``, ...); non-released switches rename only the layers they change (see each
  block).
* ``AuxLogits`` with ``conv0``, ``conv1`` (ConvBN) and ``fc``; the classifier ``fc``.
* Every ConvBN holds ``conv/kernel`` [kh, kw, in, out] (torch weight transposed (2, 3, 1, 0)) and
  ``bn/scale``, ``bn/bias`` (+ ``batch_stats`` ``bn/mean``, ``bn/var``); Dense kernels are
  [in, out] (torch weight transposed). Both flattens act on 1x1 maps, so no permutation is needed.

Pooling follows torchvision exactly: max pools without padding in floor mode, the ``branch_pool``
average pools 3x3/1 with padding 1 counting the padding (``count_include_pad=True``). Keras's
``applications.InceptionV3`` is the same network but for two switches (``bn_scale=False``,
``avg_pool_count_include_pad=False``) and no aux head; see ``convert/keras.py``.
"""

from __future__ import annotations

from typing import Any, Literal

import flax.linen as nn
import jax.numpy as jnp

from inception_jax.errors import UserError
from inception_jax.lowering import Lowering
from inception_jax.models import contract
from inception_jax.models import layers
from inception_jax.models import registry
from inception_jax.models.contract import ModelOutput
from inception_jax.models.layers import Array, ModuleDef

Stem = Literal['3x3', '7x7']


class InceptionA(nn.Module):
  """35x35 module (``Mixed_5b``-``5d``), Fig. 5: the 5x5 factorised into two 3x3.

  The released module keeps a 1x1 -> 5x5 branch (``branch5x5_*``) *and* has the factorised
  1x1 -> 3x3 -> 3x3 branch (``branch3x3dbl_*``). ``factorize_5x5=False`` undoes the
  factorisation: the double-3x3 branch becomes a single 5x5 of the same width, named
  ``branch5x5b_1`` (1x1, 64) -> ``branch5x5b_2`` (5x5, 96); the module's output width is unchanged.
  """

  pool_features: int
  conv_block: ModuleDef
  factorize_5x5: bool = True
  count_include_pad: bool = True  # of branch_pool's average pool (False: Keras's 'same' pool)

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    conv = self.conv_block
    branch1x1 = conv(64, 1, name='branch1x1')(x, train)

    branch5x5 = conv(48, 1, name='branch5x5_1')(x, train)
    branch5x5 = conv(64, 5, padding=2, name='branch5x5_2')(branch5x5, train)

    if self.factorize_5x5:
      branch3x3dbl = conv(64, 1, name='branch3x3dbl_1')(x, train)
      branch3x3dbl = conv(96, 3, padding=1, name='branch3x3dbl_2')(branch3x3dbl, train)
      branch3x3dbl = conv(96, 3, padding=1, name='branch3x3dbl_3')(branch3x3dbl, train)
    else:
      branch3x3dbl = conv(64, 1, name='branch5x5b_1')(x, train)
      branch3x3dbl = conv(96, 5, padding=2, name='branch5x5b_2')(branch3x3dbl, train)

    branch_pool = layers.avg_pool(x, 3, 1, padding=1, count_include_pad=self.count_include_pad)
    branch_pool = conv(self.pool_features, 1, name='branch_pool')(branch_pool, train)
    return jnp.concatenate([branch1x1, branch5x5, branch3x3dbl, branch_pool], axis=-1)


class InceptionB(nn.Module):
  """35x35 -> 17x17 grid reduction (``Mixed_6a``), Section 6 / Fig. 10.

  Stride-2 convolutions in parallel with a stride-2 max pool, so the grid shrinks without the
  representational bottleneck of pooling first.
  """

  conv_block: ModuleDef
  lowering: Lowering = layers.PLAIN  # of the pool branch (the convolutions take conv_block's)

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    conv = self.conv_block
    branch3x3 = conv(384, 3, strides=2, name='branch3x3')(x, train)

    branch3x3dbl = conv(64, 1, name='branch3x3dbl_1')(x, train)
    branch3x3dbl = conv(96, 3, padding=1, name='branch3x3dbl_2')(branch3x3dbl, train)
    branch3x3dbl = conv(96, 3, strides=2, name='branch3x3dbl_3')(branch3x3dbl, train)

    branch_pool = layers.max_pool(x, 3, 2, lowering=self.lowering)
    return jnp.concatenate([branch3x3, branch3x3dbl, branch_pool], axis=-1)


class InceptionC(nn.Module):
  """17x17 module (``Mixed_6b``-``6e``), Fig. 6: n x n factorised into 1 x n and n x 1, n = 7.

  ``asymmetric_7x7=False`` replaces each asymmetric pair by one full 7x7 with the pair's output
  width: ``branch7x7_1`` (1x1) -> ``branch7x7_2`` (7x7, 192); ``branch7x7dbl_1`` (1x1) ->
  ``branch7x7dbl_2`` (7x7, c7) -> ``branch7x7dbl_3`` (7x7, 192).
  """

  channels_7x7: int
  conv_block: ModuleDef
  asymmetric_7x7: bool = True
  count_include_pad: bool = True  # of branch_pool's average pool (False: Keras's 'same' pool)

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    conv, c7 = self.conv_block, self.channels_7x7
    row, col = dict(kernel_size=(1, 7), padding=(0, 3)), dict(kernel_size=(7, 1), padding=(3, 0))
    branch1x1 = conv(192, 1, name='branch1x1')(x, train)

    branch7x7 = conv(c7, 1, name='branch7x7_1')(x, train)
    branch7x7dbl = conv(c7, 1, name='branch7x7dbl_1')(x, train)
    if self.asymmetric_7x7:
      branch7x7 = conv(c7, **row, name='branch7x7_2')(branch7x7, train)
      branch7x7 = conv(192, **col, name='branch7x7_3')(branch7x7, train)
      branch7x7dbl = conv(c7, **col, name='branch7x7dbl_2')(branch7x7dbl, train)
      branch7x7dbl = conv(c7, **row, name='branch7x7dbl_3')(branch7x7dbl, train)
      branch7x7dbl = conv(c7, **col, name='branch7x7dbl_4')(branch7x7dbl, train)
      branch7x7dbl = conv(192, **row, name='branch7x7dbl_5')(branch7x7dbl, train)
    else:
      branch7x7 = conv(192, 7, padding=3, name='branch7x7_2')(branch7x7, train)
      branch7x7dbl = conv(c7, 7, padding=3, name='branch7x7dbl_2')(branch7x7dbl, train)
      branch7x7dbl = conv(192, 7, padding=3, name='branch7x7dbl_3')(branch7x7dbl, train)

    branch_pool = layers.avg_pool(x, 3, 1, padding=1, count_include_pad=self.count_include_pad)
    branch_pool = conv(192, 1, name='branch_pool')(branch_pool, train)
    return jnp.concatenate([branch1x1, branch7x7, branch7x7dbl, branch_pool], axis=-1)


class InceptionD(nn.Module):
  """17x17 -> 8x8 grid reduction (``Mixed_7a``), as released (Fig. 10 with a 1x7/7x1 pair).

  ``asymmetric_7x7=False`` replaces the pair by one 7x7: ``branch7x7x3_1`` (1x1) ->
  ``branch7x7x3_2`` (7x7, 192) -> ``branch7x7x3_3`` (3x3/2).
  """

  conv_block: ModuleDef
  asymmetric_7x7: bool = True
  lowering: Lowering = layers.PLAIN  # of the pool branch (the convolutions take conv_block's)

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    conv = self.conv_block
    branch3x3 = conv(192, 1, name='branch3x3_1')(x, train)
    branch3x3 = conv(320, 3, strides=2, name='branch3x3_2')(branch3x3, train)

    branch7x7x3 = conv(192, 1, name='branch7x7x3_1')(x, train)
    if self.asymmetric_7x7:
      branch7x7x3 = conv(192, (1, 7), padding=(0, 3), name='branch7x7x3_2')(branch7x7x3, train)
      branch7x7x3 = conv(192, (7, 1), padding=(3, 0), name='branch7x7x3_3')(branch7x7x3, train)
      branch7x7x3 = conv(192, 3, strides=2, name='branch7x7x3_4')(branch7x7x3, train)
    else:
      branch7x7x3 = conv(192, 7, padding=3, name='branch7x7x3_2')(branch7x7x3, train)
      branch7x7x3 = conv(192, 3, strides=2, name='branch7x7x3_3')(branch7x7x3, train)

    branch_pool = layers.max_pool(x, 3, 2, lowering=self.lowering)
    return jnp.concatenate([branch3x3, branch7x7x3, branch_pool], axis=-1)


class InceptionE(nn.Module):
  """8x8 module (``Mixed_7b``, ``7c``), Fig. 7: expanded filter bank outputs.

  The 3x3 of each branch is replaced by parallel 1x3 and 3x1 convolutions whose outputs are
  concatenated (``branch3x3_2a``/``2b``, ``branch3x3dbl_3a``/``3b``), widening the representation
  on the coarsest grid. ``expanded_3x3=False`` uses one plain 3x3 of the same total width (768)
  instead: ``branch3x3_2`` and ``branch3x3dbl_3``.
  """

  conv_block: ModuleDef
  expanded_3x3: bool = True
  count_include_pad: bool = True  # of branch_pool's average pool (False: Keras's 'same' pool)

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    conv = self.conv_block
    row, col = dict(kernel_size=(1, 3), padding=(0, 1)), dict(kernel_size=(3, 1), padding=(1, 0))
    branch1x1 = conv(320, 1, name='branch1x1')(x, train)

    branch3x3 = conv(384, 1, name='branch3x3_1')(x, train)
    branch3x3dbl = conv(448, 1, name='branch3x3dbl_1')(x, train)
    branch3x3dbl = conv(384, 3, padding=1, name='branch3x3dbl_2')(branch3x3dbl, train)
    if self.expanded_3x3:
      branch3x3 = jnp.concatenate([
          conv(384, **row, name='branch3x3_2a')(branch3x3, train),
          conv(384, **col, name='branch3x3_2b')(branch3x3, train)], axis=-1)
      branch3x3dbl = jnp.concatenate([
          conv(384, **row, name='branch3x3dbl_3a')(branch3x3dbl, train),
          conv(384, **col, name='branch3x3dbl_3b')(branch3x3dbl, train)], axis=-1)
    else:
      branch3x3 = conv(768, 3, padding=1, name='branch3x3_2')(branch3x3, train)
      branch3x3dbl = conv(768, 3, padding=1, name='branch3x3dbl_3')(branch3x3dbl, train)

    branch_pool = layers.avg_pool(x, 3, 1, padding=1, count_include_pad=self.count_include_pad)
    branch_pool = conv(192, 1, name='branch_pool')(branch_pool, train)
    return jnp.concatenate([branch1x1, branch3x3, branch3x3dbl, branch_pool], axis=-1)


class AuxHeadV3(nn.Module):
  """Auxiliary classifier on the last 17x17 grid (``AuxLogits``), Section 7 / Fig. 8.

  Released: 5x5/3 average pool (17x17 -> 5x5), 1x1 conv 128, 5x5 conv 768 (the head's
  fully-connected layer: it covers the whole 5x5 grid), adaptive average pool to 1x1 as
  torchvision, FC to the classes. The 5x5 conv needs a 5x5 pooled grid, i.e. a 17x17 input
  grid (299 px images). ``adaptive`` pools adaptively to 5x5 instead, so any grid works.
  ``bn_auxiliary`` is Table 3's "BN-auxiliary": the head's fully-connected layer (``conv1``) is
  batch-normalised, as released; False gives it a bias and no BN (the rows before BN-auxiliary).
  """

  num_classes: int
  conv_block: ModuleDef
  adaptive: bool = False
  bn_auxiliary: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    if self.adaptive:
      x = layers.adaptive_avg_pool(x, 5)
    else:
      x = layers.avg_pool(x, 5, 3)
    x = self.conv_block(128, 1, name='conv0')(x, train)
    x = self.conv_block(768, 5, use_bn=self.bn_auxiliary, name='conv1')(x, train)
    x = layers.global_avg_pool(x)
    return layers.dense(self.num_classes, self.dtype, 'fc')(x)


# The released layout (paper Table 1, torchvision's Inception3): (name, block, block fields).
LAYOUT: tuple[tuple[str, type[nn.Module], dict[str, Any]], ...] = (
    ('Mixed_5b', InceptionA, dict(pool_features=32)),
    ('Mixed_5c', InceptionA, dict(pool_features=64)),
    ('Mixed_5d', InceptionA, dict(pool_features=64)),
    ('Mixed_6a', InceptionB, {}),
    ('Mixed_6b', InceptionC, dict(channels_7x7=128)),
    ('Mixed_6c', InceptionC, dict(channels_7x7=160)),
    ('Mixed_6d', InceptionC, dict(channels_7x7=160)),
    ('Mixed_6e', InceptionC, dict(channels_7x7=192)),
    ('Mixed_7a', InceptionD, {}),
    ('Mixed_7b', InceptionE, {}),
    ('Mixed_7c', InceptionE, {}),
)
AUX_AFTER = 'Mixed_6e'


class InceptionV3(nn.Module):
  """Inception v3; the defaults are the released network (torchvision ``inception_v3``).

  Attributes:
    num_classes: classifier outputs.
    aux_logits: build the auxiliary classifier (run in training or with ``return_aux``).
    dropout_rate: before the classifier; 0.5 as torchvision's Inception3 (TF-slim's training
      script used keep probability 0.8, i.e. rate 0.2; the paper gives no value).
    stem: '3x3' (released: 3x3/2, 3x3, 3x3 convolutions) or '7x7' (one 7x7/2 convolution with 64
      filters in their place, Table 3 row "Factorized 7x7" undone; a VALID 7x7/2 gives exactly
      the same grid, 147x147 at 299 px, so everything downstream is unchanged).
    factorize_5x5: module A's double-3x3 branch (Fig. 5) or a single 5x5 (see InceptionA).
    asymmetric_7x7: modules C and D use 1x7/7x1 pairs (Fig. 6) or full 7x7 convolutions.
    expanded_3x3: module E's parallel 1x3/3x1 bank (Fig. 7) or a plain 3x3.
    bn_auxiliary: Table 3's "BN-auxiliary": the aux head's fully-connected layer (``conv1``, a
      5x5 convolution over the whole 5x5 grid, 768 units) is batch-normalised, as released
      (True); False gives it a bias and no BN, the rows of Table 3 before BN-auxiliary.
    aux_adaptive: adaptive pooling in the aux head (works at any size >= 75 px) instead of the
      released 5x5/3 pool, which needs >= 299 px.
    width_multiplier: scales every channel count (1.0 = the published widths).
    dtype: compute dtype; parameters stay float32 and logits are returned as float32.
    lowering: which code computes the convolutions, batch norms and max pools (same numbers,
      same parameters); None = ``lowering.for_backend(network=label)`` of the backend it is traced
      on. Chosen once here and handed to every block, ConvBN and pool.
    bn_axis_name: training-mode batch statistics averaged over this named device axis
      (synchronised batch norm, for small per-device batches); None = each device's own, as the
      papers trained.
    bn_momentum: decay of the batch-norm running statistics (0.9 = PyTorch's momentum 0.1;
      the Cloud TPU Inception v3 run used 0.996).
    bn_scale: batch norm with a learned scale (``bn/scale``), as torchvision; False = without,
      as TF-slim and Keras (``BatchNormalization(scale=False)``): fewer parameters, one per BN
      channel.
    avg_pool_count_include_pad: the ``branch_pool`` 3x3/1 average pools divide by 9 at the
      border, counting the zero padding (torchvision); False = by the number of input pixels
      in the window, as TF's and Keras's ``padding='same'`` average pool.
  """

  num_classes: int = 1000
  aux_logits: bool = True
  dropout_rate: float = 0.5
  stem: Stem = '3x3'
  factorize_5x5: bool = True
  asymmetric_7x7: bool = True
  expanded_3x3: bool = True
  bn_auxiliary: bool = True
  aux_adaptive: bool = False
  width_multiplier: float = 1.0
  dtype: Any = jnp.float32
  lowering: Lowering | None = None
  bn_axis_name: str | None = None
  bn_momentum: float = layers.BN_MOMENTUM
  bn_scale: bool = True
  avg_pool_count_include_pad: bool = True

  label = 'inception_v3'

  def check_config(self) -> None:
    """Reject impossible settings; called by the registry and again at trace time."""
    contract.check_config(self.label, self.num_classes, self.width_multiplier)
    contract.check_choice(self.label, 'stem', self.stem, ('3x3', '7x7'))
    contract.check_lowering(self.label, self.lowering)

  def trunk_min_size(self) -> int:
    """Smallest side the trunk takes: Mixed_7a's VALID 3x3/2 needs a 3x3 grid (75 px)."""
    return _smallest(lambda size: self._final_grid(size) >= 1)

  def aux_min_size(self) -> int:
    """Smallest side the released aux head takes: its 5x5/3 pool must leave a 5x5 grid for
    ``conv1`` (5x5, VALID), i.e. a 17x17 Mixed_6e grid, which is 299 px."""
    def fits(size: int) -> bool:
      grid = self._grid_6e(size)
      return grid >= 1 and layers.conv_output_size(layers.pool_output_size(grid, 5, 3), 5) >= 1
    return _smallest(fits)

  def _grid_6e(self, size: int) -> int:
    """Side of the 17x17 grid (Mixed_6a..6e) for a square input; 0 if a layer has no output."""
    steps = ([('conv', 3, 2), ('conv', 3, 1)] if self.stem == '3x3' else [('conv', 7, 2)])
    steps += [('pool', 3, 2), ('conv', 3, 1), ('pool', 3, 2), ('conv', 3, 2)]
    s = size
    for kind, k, stride in steps:  # Conv2d_1a/2a (or 1a_7x7), maxpool1, 4a, maxpool2, Mixed_6a
      s = (layers.conv_output_size if kind == 'conv' else layers.pool_output_size)(s, k, stride)
      if s < 1:
        return 0
    return s

  def _final_grid(self, size: int) -> int:
    """Side of the 8x8 grid (Mixed_7a..7c); 0 if a layer has no output."""
    grid = self._grid_6e(size)
    return layers.conv_output_size(grid, 3, 2) if grid else 0

  def min_input_size(self) -> int:
    """Smallest square side accepted by every call, initialisation and training included.

    75 px for the trunk (torchvision's documented minimum); 299 px while the released aux head is
    on (``aux_logits=True, aux_adaptive=False``). Evaluation without the aux head accepts 75 px.
    """
    if self.aux_logits and not self.aux_adaptive:
      return max(self.trunk_min_size(), self.aux_min_size())
    return self.trunk_min_size()

  @nn.compact
  def __call__(self, images: Array, train: bool = False,
               return_aux: bool | None = None) -> ModelOutput:
    self.check_config()
    contract.check_images(self.label, images, self.trunk_min_size())
    want_aux = train if return_aux is None else return_aux
    # The aux head owns parameters: build it whenever the model is initialised.
    run_aux = self.aux_logits and (want_aux or self.is_initializing())
    if run_aux and not self.aux_adaptive:
      aux_min, (h, w) = self.aux_min_size(), images.shape[1:3]
      if h < aux_min or w < aux_min:
        raise UserError(
            f"{self.label}'s released auxiliary head needs images of at least {aux_min}x{aux_min}"
            f' pixels (got {h}x{w}); use images of at least {aux_min} pixels, or set '
            'aux_adaptive=True (adaptive aux pooling) or aux_logits=False')

    lowering = contract.chosen_lowering(self.label, self.lowering)
    conv = layers.conv_block(True, self.width_multiplier, self.dtype, lowering,
                             self.bn_axis_name, self.bn_momentum, self.bn_scale)
    x = images.astype(self.dtype)

    # Stem (Table 1 rows conv .. conv padded; TF-slim Conv2d_1a .. Conv2d_4a).
    if self.stem == '3x3':
      x = conv(32, 3, strides=2, name='Conv2d_1a_3x3')(x, train)
      x = conv(32, 3, name='Conv2d_2a_3x3')(x, train)
      x = conv(64, 3, padding=1, name='Conv2d_2b_3x3')(x, train)
    else:
      x = conv(64, 7, strides=2, name='Conv2d_1a_7x7')(x, train)
    x = layers.max_pool(x, 3, 2, lowering=lowering)
    x = conv(80, 1, name='Conv2d_3b_1x1')(x, train)
    x = conv(192, 3, name='Conv2d_4a_3x3')(x, train)
    x = layers.max_pool(x, 3, 2, lowering=lowering)

    # The ablation switches of each block, and the lowering of the blocks with a max-pool branch.
    pad = dict(count_include_pad=self.avg_pool_count_include_pad)
    switches = {InceptionA: dict(factorize_5x5=self.factorize_5x5, **pad),
                InceptionC: dict(asymmetric_7x7=self.asymmetric_7x7, **pad),
                InceptionB: dict(lowering=lowering),
                InceptionD: dict(asymmetric_7x7=self.asymmetric_7x7, lowering=lowering),
                InceptionE: dict(expanded_3x3=self.expanded_3x3, **pad)}
    aux = {}
    for name, block, fields in LAYOUT:
      x = block(**fields, **switches.get(block, {}), conv_block=conv, name=name)(x, train)
      if name == AUX_AFTER and run_aux:
        aux['aux'] = AuxHeadV3(self.num_classes, conv, self.aux_adaptive, self.bn_auxiliary,
                               self.dtype, name='AuxLogits')(x, train)

    # Classifier: global average pool (8x8 at 299 px), dropout, linear.
    x = layers.global_avg_pool(x)
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    logits = layers.dense(self.num_classes, self.dtype, 'fc')(x)

    aux_out = {k: v.astype(jnp.float32) for k, v in aux.items()} if want_aux else {}
    return ModelOutput(logits=logits.astype(jnp.float32), aux_logits=aux_out)


def _smallest(fits, limit: int = 4096) -> int:
  """Smallest positive side for which ``fits`` holds (the layer arithmetic is monotonic)."""
  for size in range(1, limit):
    if fits(size):
      return size
  raise AssertionError('no input size fits')  # pragma: no cover


# ----------------------------------------------------------------------------- registry entry

# torchvision.models.inception_v3's state dict: the names are this module's, and both flattens
# act on 1x1 maps (nothing to permute). Its eval transform resizes to 342 and crops 299.
TORCHVISION_LAYOUT = registry.TorchvisionLayout(
    signature='Mixed_5b.branch1x1.conv.weight', aux_prefixes=('AuxLogits.',), resize_size=342)

# 299 px input, as released.
registry.register('inception_v3', registry.ModelSpec(
    InceptionV3, 'Inception v3 as released (torchvision / TF-slim layout), dropout 0.5',
    default_input_size=299, torchvision_name='inception_v3',
    torchvision_layout=TORCHVISION_LAYOUT))
