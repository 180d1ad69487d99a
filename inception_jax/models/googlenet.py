"""GoogLeNet (Inception v1): Szegedy et al., "Going Deeper with Convolutions", CVPR 2015.

The network is Table 1 of the paper: a stem, nine Inception modules (Fig. 2) in three stages
separated by stride-2 max pools, global average pooling, dropout and a linear classifier, plus two
auxiliary classifiers after 4a and 4d (Section 5). Defaults follow torchvision's layout (batch norm,
max pools with ``ceil_mode=True`` as in Caffe), and the switches recover the paper's variants.

Parameter names mirror torchvision's module names, so converting weights is mechanical
(torchvision ``a.b.0.conv.weight`` is ``params/a/b_0/conv/kernel`` here):

* ``conv1``, ``conv2``, ``conv3``: ``ConvBN`` blocks, each ``conv`` (kernel [kh, kw, in, out] =
  torch weight transposed (2, 3, 1, 0)) and ``bn`` (``scale``/``bias`` = torch ``weight``/``bias``;
  ``batch_stats`` ``mean``/``var`` = torch ``running_mean``/``running_var``).
* ``inception3a`` .. ``inception5b``: ``branch1``; ``branch2_0``, ``branch2_1`` (torch
  ``branch2.0``, ``branch2.1``); ``branch3_0``, ``branch3_1`` (and ``branch3_2`` when the 5x5 is
  factorised); ``branch4_1`` (torch ``branch4.1``; ``branch4.0`` is the max pool).
* ``aux1``, ``aux2``: ``conv`` (ConvBN), ``fc1``, ``fc2`` (Dense kernel [in, out] = torch weight
  transposed). **Flatten order:** the aux head flattens its [4, 4, 128] NHWC map in (h, w, c)
  order, torchvision flattens NCHW in (c, h, w) order, so ``fc1/kernel =
  W.reshape(1024, 128, 4, 4).transpose(2, 3, 1, 0).reshape(2048, 1024)`` for torch weight ``W``.
* ``fc``: the classifier (the pooled features are [1024], no permutation needed).
"""

from __future__ import annotations

import functools
import re
from typing import Any, Literal, NamedTuple

import flax.linen as nn
import jax.numpy as jnp

from inception_jax.lowering import Lowering
from inception_jax.models import contract
from inception_jax.models import layers
from inception_jax.models import registry
from inception_jax.models.contract import ModelOutput
from inception_jax.models.layers import Array, ModuleDef


class InceptionSpec(NamedTuple):
  """One row of the paper's Table 1: filter counts of an Inception module."""

  name: str
  ch1x1: int      # "#1x1"
  ch3x3red: int   # "#3x3 reduce"
  ch3x3: int      # "#3x3"
  ch5x5red: int   # "#5x5 reduce"
  ch5x5: int      # "#5x5"
  pool_proj: int  # "pool proj"


# GoogLeNet paper, Table 1 (module rows, in network order).
TABLE1: tuple[InceptionSpec, ...] = (
    InceptionSpec('inception3a', 64, 96, 128, 16, 32, 32),
    InceptionSpec('inception3b', 128, 128, 192, 32, 96, 64),
    InceptionSpec('inception4a', 192, 96, 208, 16, 48, 64),
    InceptionSpec('inception4b', 160, 112, 224, 24, 64, 64),
    InceptionSpec('inception4c', 128, 128, 256, 24, 64, 64),
    InceptionSpec('inception4d', 112, 144, 288, 32, 64, 64),
    InceptionSpec('inception4e', 256, 160, 320, 32, 128, 128),
    InceptionSpec('inception5a', 256, 160, 320, 32, 128, 128),
    InceptionSpec('inception5b', 384, 192, 384, 48, 128, 128),
)
# Table 1's "max pool 3x3/2" rows between the stages (after 3b and after 4e).
POOL_AFTER = {'inception3b': 'maxpool3', 'inception4e': 'maxpool4'}
# Section 5: auxiliary classifiers on top of the outputs of 4a and 4d.
AUX_AFTER = {'inception4a': 'aux1', 'inception4d': 'aux2'}

ModuleKind = Literal['reduced', 'naive']


class InceptionV1Module(nn.Module):
  """The Inception module of Fig. 2, naive (a) or with dimension reductions (b).

  Naive: 1x1, 3x3 and 5x5 convolutions and a 3x3 max pool side by side on the input; the pool
  passes all input channels through, so the output grows with every module (the paper's reason for
  (b)). Reduced: 1x1 convolutions shrink the input before the 3x3 and 5x5 and project the pool.
  ``branch5x5_kernel=3`` is the layout of torchvision's / TF-slim's released weights (torchvision
  issue 906); ``factorize_5x5`` replaces that convolution by two 3x3 (``branch3_1``,
  ``branch3_2``), whatever ``branch5x5_kernel`` says. Both 3x3 have the 5x5's filter count, as
  BN-Inception's "double 3x3" (Ioffe & Szegedy 2015, Fig. 5 of the Inception-v3 paper); since
  GoogLeNet's #5x5 is 2-4x its #5x5 reduce, this *adds* parameters (9rc + 9c^2 > 25rc), unlike
  the equal-width case of the v3 paper's Fig. 1, where it saves 28%.
  """

  ch1x1: int
  ch3x3red: int
  ch3x3: int
  ch5x5red: int
  ch5x5: int
  pool_proj: int
  conv_block: ModuleDef
  kind: ModuleKind = 'reduced'
  branch5x5_kernel: int = 5
  factorize_5x5: bool = False
  lowering: Lowering = layers.PLAIN  # of the pool branch (the convolutions take conv_block's)

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    conv = self.conv_block
    reduced = self.kind == 'reduced'

    branch1 = conv(self.ch1x1, 1, name='branch1')(x, train)

    branch2 = conv(self.ch3x3red, 1, name='branch2_0')(x, train) if reduced else x
    branch2 = conv(self.ch3x3, 3, padding=1, name='branch2_1')(branch2, train)

    branch3 = conv(self.ch5x5red, 1, name='branch3_0')(x, train) if reduced else x
    if self.factorize_5x5:
      branch3 = conv(self.ch5x5, 3, padding=1, name='branch3_1')(branch3, train)
      branch3 = conv(self.ch5x5, 3, padding=1, name='branch3_2')(branch3, train)
    else:
      k = self.branch5x5_kernel
      branch3 = conv(self.ch5x5, k, padding=k // 2, name='branch3_1')(branch3, train)

    branch4 = layers.max_pool(x, 3, 1, padding=1, ceil_mode=True, lowering=self.lowering)
    if reduced:
      branch4 = conv(self.pool_proj, 1, name='branch4_1')(branch4, train)

    return jnp.concatenate([branch1, branch2, branch3, branch4], axis=-1)


class AuxHeadV1(nn.Module):
  """GoogLeNet's auxiliary classifier (Section 5), as torchvision builds it.

  The paper pools 5x5 with stride 3 (4x4 at 224 px); torchvision pools adaptively to 4x4, which
  gives the same 4x4 grid at every input size (at 224 its windows are 4 wide with stride 3-4 rather
  than 5/3), then 1x1 conv 128, FC 1024 + ReLU, dropout 0.7, FC to the classes.
  Flattening is NHWC (h, w, c); see the module docstring for the torchvision permutation.
  """

  num_classes: int
  conv_block: ModuleDef
  dropout_rate: float = 0.7
  width_multiplier: float = 1.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    x = layers.adaptive_avg_pool(x, 4)
    x = self.conv_block(128, 1, name='conv')(x, train)
    x = x.reshape(x.shape[0], -1)
    hidden = layers.scale_channels(1024, self.width_multiplier)
    x = nn.relu(layers.dense(hidden, self.dtype, 'fc1')(x))
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return layers.dense(self.num_classes, self.dtype, 'fc2')(x)


class GoogLeNet(nn.Module):
  """GoogLeNet, Table 1 of the paper; defaults are the paper's network with batch norm.

  Attributes:
    num_classes: classifier outputs.
    aux_logits: build the two auxiliary classifiers (run in training or with ``return_aux``).
    dropout_rate: before the classifier; 0.4 in the paper, 0.2 in torchvision.
    aux_dropout_rate: in the aux heads, 0.7 (paper Section 5).
    branch5x5_kernel: 5 (paper) or 3 (torchvision / TF-slim released weights).
    factorize_5x5: each 5x5 branch as two 3x3 (BN-Inception).
    use_bn: batch norm after every conv (BN-GoogLeNet, torchvision). False is the 2014 network:
      conv biases and local response normalisation in the stem (Table 1's LocalRespNorm rows).
    module_kind: 'reduced' (Fig. 2b, the network) or 'naive' (Fig. 2a).
    maxpool4_window: the pool after 4e; 3 (3x3/2 in Table 1 and Caffe) or 2 (torchvision/TF-slim).
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
  """

  num_classes: int = 1000
  aux_logits: bool = True
  dropout_rate: float = 0.4
  aux_dropout_rate: float = 0.7
  branch5x5_kernel: int = 5
  factorize_5x5: bool = False
  use_bn: bool = True
  module_kind: ModuleKind = 'reduced'
  maxpool4_window: int = 3
  width_multiplier: float = 1.0
  dtype: Any = jnp.float32
  lowering: Lowering | None = None
  bn_axis_name: str | None = None
  bn_momentum: float = layers.BN_MOMENTUM

  label = 'googlenet'

  def check_config(self) -> None:
    """Reject impossible settings; called by the registry and again at trace time."""
    contract.check_config(self.label, self.num_classes, self.width_multiplier)
    contract.check_choice(self.label, 'module_kind', self.module_kind, ('reduced', 'naive'))
    contract.check_choice(self.label, 'branch5x5_kernel', self.branch5x5_kernel, (5, 3))
    contract.check_choice(self.label, 'maxpool4_window', self.maxpool4_window, (3, 2))
    contract.check_lowering(self.label, self.lowering)

  def _pool_grid(self, size: int) -> int:
    """Grid side after the four stride-2 max pools (< 1 when a pool has no output)."""
    s = layers.conv_output_size(size, 7, 2, 3)                          # conv1 7x7/2
    for window in (3, 3, 3, self.maxpool4_window):                      # maxpool1..4
      if s < 1:
        return 0
      s = layers.pool_output_size(s, window, 2, 0, ceil_mode=True)
    return s

  def min_input_size(self) -> int:
    """Smallest square side every layer can take.

    The total stride is 32, but Caffe/torchvision max pools use ``ceil_mode``: a window may
    overhang the input as long as it starts inside it, so each 3x3/2 pool needs only 2 input
    pixels (a 2x2/2 pool needs 1). Working back from the last pool gives 15 px with the 2x2 pool4
    (torchvision's documented ``min_size``) and 31 px with the paper's 3x3 pool4. Below that a
    pool has no output at all. The aux heads pool adaptively and add no constraint.
    """
    size = 1
    while self._pool_grid(size) < 1:
      size += 1
    return size

  @nn.compact
  def __call__(self, images: Array, train: bool = False,
               return_aux: bool | None = None) -> ModelOutput:
    self.check_config()
    contract.check_images(self.label, images, self.min_input_size())
    want_aux = train if return_aux is None else return_aux
    # Aux heads own parameters: build them whenever the model is initialised.
    run_aux = self.aux_logits and (want_aux or self.is_initializing())

    lowering = contract.chosen_lowering(self.label, self.lowering)
    conv = layers.conv_block(self.use_bn, self.width_multiplier, self.dtype, lowering,
                             self.bn_axis_name, self.bn_momentum)
    max_pool = functools.partial(layers.max_pool, ceil_mode=True, lowering=lowering)
    x = images.astype(self.dtype)

    # Stem (Table 1 rows "convolution 7x7/2" .. "max pool 3x3/2").
    x = conv(64, 7, strides=2, padding=3, name='conv1')(x, train)
    x = max_pool(x, 3, 2)
    if not self.use_bn:
      x = layers.local_response_norm(x)
    x = conv(64, 1, name='conv2')(x, train)
    x = conv(192, 3, padding=1, name='conv3')(x, train)
    if not self.use_bn:
      x = layers.local_response_norm(x)
    x = max_pool(x, 3, 2)

    aux = {}
    for spec in TABLE1:
      x = InceptionV1Module(
          *spec[1:], conv_block=conv, kind=self.module_kind,
          branch5x5_kernel=self.branch5x5_kernel, factorize_5x5=self.factorize_5x5,
          lowering=lowering, name=spec.name)(x, train)
      if spec.name in AUX_AFTER and run_aux:
        head = AUX_AFTER[spec.name]
        aux[head] = AuxHeadV1(
            self.num_classes, conv, self.aux_dropout_rate, self.width_multiplier, self.dtype,
            name=head)(x, train)
      if POOL_AFTER.get(spec.name) == 'maxpool3':
        x = max_pool(x, 3, 2)
      elif POOL_AFTER.get(spec.name) == 'maxpool4':
        x = max_pool(x, self.maxpool4_window, 2)

    # Classifier: global average pool ("avg pool 7x7/1" at 224 px), dropout, linear.
    x = layers.global_avg_pool(x)
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    logits = layers.dense(self.num_classes, self.dtype, 'fc')(x)

    aux_out = {k: v.astype(jnp.float32) for k, v in aux.items()} if want_aux else {}
    return ModelOutput(logits=logits.astype(jnp.float32), aux_logits=aux_out)


# ----------------------------------------------------------------------------- registry entries


def _torchvision_module_name(name: str) -> str:
  """``branch2_0`` -> ``branch2.0`` (torchvision's ``nn.Sequential`` indices); others unchanged."""
  return re.sub(r'^(branch\d)_(\d+)$', r'\1.\2', name)


# torchvision.models.googlenet's state dict (the module docstring's names); its aux fc1 reads an
# NCHW flatten of the [128, 4, 4] map.
TORCHVISION_LAYOUT = registry.TorchvisionLayout(
    signature='inception3a.branch1.conv.weight', aux_prefixes=('aux1.', 'aux2.'),
    resize_size=256, module_name=_torchvision_module_name,
    nchw_flattened_kernels=(('aux1/fc1/kernel', (128, 4, 4)), ('aux2/fc1/kernel', (128, 4, 4))))

# 224 px input (Section 5).
_GOOGLENET = dict(default_input_size=224)

registry.register('googlenet', registry.ModelSpec(
    functools.partial(GoogLeNet, branch5x5_kernel=5, dropout_rate=0.4, maxpool4_window=3),
    'GoogLeNet as in the paper (5x5 branch, 3x3/2 pool4, dropout 0.4) with batch norm',
    torchvision_name='googlenet',
    torchvision_note="torchvision's GoogLeNet has 3x3 '5x5' branches and a 2x2 pool4 (our "
                     'googlenet_tv); compare googlenet_tv for like for like',
    **_GOOGLENET))
registry.register('googlenet_tv', registry.ModelSpec(
    functools.partial(GoogLeNet, branch5x5_kernel=3, dropout_rate=0.2, maxpool4_window=2),
    "torchvision's GoogLeNet layout (3x3 '5x5' branch, 2x2/2 pool4, dropout 0.2), BN",
    torchvision_name='googlenet', torchvision_layout=TORCHVISION_LAYOUT, **_GOOGLENET))
registry.register('googlenet_2014', registry.ModelSpec(
    functools.partial(GoogLeNet, branch5x5_kernel=5, dropout_rate=0.4, maxpool4_window=3,
                      use_bn=False),
    'the 2014 GoogLeNet: no batch norm, conv biases and LRN in the stem', **_GOOGLENET))
