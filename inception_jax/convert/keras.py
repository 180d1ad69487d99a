"""Keras ``applications.InceptionV3`` weights -> this project's Flax variables, with logit parity.

``python -m inception_jax.tools.convert --from keras --model inception_v3 --weights FILE --out
DIR`` reads a ``.keras`` / ``.h5`` full-model file or a ``.weights.h5`` weights file and writes a
checkpoint that ``--config.init_from=DIR``, evaluation and prediction load.

**The network.** Keras's InceptionV3 (``keras/src/applications/inception_v3.py``) is TF-slim's,
i.e. torchvision's layout (the ``inception_v3`` entry here) but for:

* batch norm without a learned scale (``BatchNormalization(scale=False)``, epsilon 1e-3 as here):
  ``bn_scale=False``;
* ``branch_pool``'s ``AveragePooling2D((3, 3), strides=1, padding='same')``, which divides by the
  number of input pixels in the window: ``avg_pool_count_include_pad=False``;
* no auxiliary head (``aux_logits=False``) and a softmax on ``predictions`` (built here with
  ``classifier_activation=None``: the converted model returns logits, as every model here).

Everything else agrees layer by layer: Keras's ``'same'`` convolutions (stride 1, odd kernels) pad
``k // 2`` on each side as the explicit paddings here, its ``'valid'`` ones (the stem, the stride-2
convolutions of Mixed_6a/7a) and its max pools (3x3/2, ``'valid'``) have no padding, convolutions
have no bias, and ``avg_pool`` + ``predictions`` are the global average pool and ``fc``.

**Mapping.** Keras names its layers ``conv2d_N`` / ``batch_normalization_N`` with N counting up in
the order ``conv2d_bn`` is called in Keras's source (from a process-wide counter: the first model
of a process has ``conv2d`` .. ``conv2d_93``, a later one is offset). :func:`keras_order` lists
this model's ConvBN modules in that order; the i-th conv of the sorted N maps to
``params/<module>/conv/kernel`` (both HWIO: no transpose), the i-th batch norm's ``beta``,
``moving_mean``, ``moving_variance`` to ``params/<module>/bn/bias``, ``batch_stats/<module>/bn/
mean``, ``var``; ``predictions`` ``kernel`` [2048, N] and ``bias`` to ``params/fc``.

**Reading.** The file's arrays are first listed with h5py (a ``.keras`` file is a zip holding
``model.weights.h5``); a file that does not hold InceptionV3's 94 convolution kernels and one
[2048, classes] classifier is rejected before Keras is imported. Then
``keras.applications.InceptionV3(weights=None, classifier_activation=None, classes=N)`` is built
here and ``load_weights(FILE)`` fills it: nothing of the file's own model config is deserialised
or run (no ``safe_mode=False``, no Lambda layers).

**Input.** ``keras.applications.inception_v3.preprocess_input`` is ``x / 127.5 - 1``: this
project's ``normalization='inception'``, recorded in the metadata with image size 299 and
TF-slim's evaluation crop (central fraction 0.875).
"""

from __future__ import annotations

import collections
import functools
import io
import os
import re
import zipfile
from typing import Any

import numpy as np

from inception_jax.convert import common
from inception_jax.convert.common import PyTree, save_converted
from inception_jax.errors import UserError, first_line

SOURCE = 'keras'
ARCHITECTURE = 'keras.applications.InceptionV3'
MODEL = 'inception_v3'
# What makes this project's InceptionV3 Keras's (module docstring).
MODEL_OVERRIDES = {'aux_logits': False, 'bn_scale': False, 'avg_pool_count_include_pad': False}
IMAGE_SIZE = 299
EVAL_CROP_FRACTION = 0.875     # TF-slim's inception_preprocessing central_crop
FEATURES = 2048                # the classifier's input width
SUFFIXES = ('.keras', '.h5', '.hdf5')
KERAS_INSTALL = 'pip install keras (TensorFlow 2.16+ ships Keras 3)'


def convertible() -> tuple[str, ...]:
  """The models a Keras file converts to."""
  return (MODEL,)


def _check_model(model_name: str) -> None:
  if model_name != MODEL:
    raise UserError(f'cannot convert {model_name!r} from Keras; choose one of: '
                    f'{", ".join(convertible())}')


def keras_order() -> list[str]:
  """This model's ConvBN modules in the order Keras's ``inception_v3.py`` calls ``conv2d_bn``."""
  from inception_jax.models import inception_v3  # pylint: disable=g-import-not-at-top
  per_block = {
      inception_v3.InceptionA: ['branch1x1', 'branch5x5_1', 'branch5x5_2', 'branch3x3dbl_1',
                                'branch3x3dbl_2', 'branch3x3dbl_3', 'branch_pool'],
      inception_v3.InceptionB: ['branch3x3', 'branch3x3dbl_1', 'branch3x3dbl_2',
                                'branch3x3dbl_3'],
      inception_v3.InceptionC: ['branch1x1', 'branch7x7_1', 'branch7x7_2', 'branch7x7_3',
                                'branch7x7dbl_1', 'branch7x7dbl_2', 'branch7x7dbl_3',
                                'branch7x7dbl_4', 'branch7x7dbl_5', 'branch_pool'],
      inception_v3.InceptionD: ['branch3x3_1', 'branch3x3_2', 'branch7x7x3_1', 'branch7x7x3_2',
                                'branch7x7x3_3', 'branch7x7x3_4'],
      inception_v3.InceptionE: ['branch1x1', 'branch3x3_1', 'branch3x3_2a', 'branch3x3_2b',
                                'branch3x3dbl_1', 'branch3x3dbl_2', 'branch3x3dbl_3a',
                                'branch3x3dbl_3b', 'branch_pool'],
  }
  order = ['Conv2d_1a_3x3', 'Conv2d_2a_3x3', 'Conv2d_2b_3x3', 'Conv2d_3b_1x1', 'Conv2d_4a_3x3']
  for name, block, _ in inception_v3.LAYOUT:
    order += [f'{name}/{branch}' for branch in per_block[block]]
  return order


@functools.lru_cache(maxsize=None)
def flax_layout(num_classes: int) -> dict[tuple[str, ...], tuple[int, ...]]:
  """Flat Flax path -> shape of every variable of Keras's network as this project builds it."""
  switches = {k: v for k, v in MODEL_OVERRIDES.items() if k != 'aux_logits'}
  return common.flatten(common.abstract_variables(
      MODEL, num_classes, MODEL_OVERRIDES['aux_logits'], tuple(sorted(switches.items()))))


# ---------------------------------------------------------------------------------------------
# Reading the file.


def _weight_shapes(path: str) -> list[tuple[int, ...]]:
  """Shapes of the layer arrays in a Keras file, read with h5py (nothing is executed)."""
  import h5py  # pylint: disable=g-import-not-at-top
  try:
    if path.endswith('.keras'):
      with zipfile.ZipFile(path) as archive:
        handle = io.BytesIO(archive.read('model.weights.h5'))
    else:
      handle = path
    shapes = []
    with h5py.File(handle, 'r') as f:
      # Keras 3 files keep the layers under 'layers/', legacy full-model .h5 files under
      # 'model_weights/'; optimizer state, when saved, lives beside them and is not counted.
      root = f['layers'] if 'layers' in f else f['model_weights'] if 'model_weights' in f else f
      root.visititems(lambda _, obj: shapes.append(obj.shape)
                      if isinstance(obj, h5py.Dataset) else None)
  except (OSError, KeyError, zipfile.BadZipFile, EOFError) as e:
    raise UserError(f'weights file {path} is truncated or not a Keras file ({first_line(e)})'
                    ) from None
  return [tuple(s) for s in shapes]


def inspect_file(path: str) -> int:
  """The number of classes of a Keras InceptionV3 file; UserError if it holds another network."""
  path = common.check_weights_file(path, '.keras or .h5')
  if not path.endswith(SUFFIXES):
    raise UserError(f'weights file {path} is not a Keras file: expected a name ending in '
                    f'{", ".join(SUFFIXES)} (.weights.h5 included)')
  shapes = _weight_shapes(path)
  kernels = collections.Counter(s for s in shapes if len(s) == 4)
  dense = [s for s in shapes if len(s) == 2]
  not_v3 = f'weights file {path} is not a Keras InceptionV3:'
  if len(dense) != 1 or dense[0][0] != FEATURES:
    raise UserError(f'{not_v3} it has {len(dense)} dense kernels {dense[:3]}, InceptionV3 one of '
                    f'[{FEATURES}, classes] (a model saved with include_top=False has none)')
  num_classes = dense[0][1]
  want = collections.Counter(s for p, s in flax_layout(num_classes).items() if p[-1] == 'kernel'
                             and len(s) == 4)
  if kernels != want:
    odd = sorted((kernels - want) + (want - kernels))
    raise UserError(f'{not_v3} it has {sum(kernels.values())} convolution kernels, InceptionV3 '
                    f'{sum(want.values())}, and {len(odd)} shapes differ (e.g. {odd[0]})')
  vectors = sum(len(s) == 1 for s in shapes)
  if vectors != 3 * sum(want.values()) + 1:
    raise UserError(f'{not_v3} it has {vectors} 1-D arrays, InceptionV3 {3 * sum(want.values())} '
                    'batch-norm beta/moving mean/moving variance (no gamma: scale=False) and '
                    'a classifier bias')
  return num_classes


def _import_keras():
  try:
    import keras  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise UserError(f'reading Keras files needs keras, which is not installed: {KERAS_INSTALL}'
                    ) from None
  return keras


def _layer_number(name: str, kind: str) -> int:
  """N of Keras's auto-name ``kind_N`` (``kind`` alone is 0), i.e. the creation order."""
  match = re.fullmatch(rf'{kind}(?:_(\d+))?', name)
  if match is None:  # pragma: no cover - Keras renamed its layers
    raise AssertionError(f'unexpected Keras layer name {name!r}')
  return int(match.group(1) or 0)


def load_keras_arrays(path: str, num_classes: int) -> dict[str, Any]:
  """``{'conv': [kernel]*94, 'bn': [(beta, mean, var)]*94, 'predictions': (kernel, bias)}``
  from a Keras InceptionV3 file, in Keras's creation order (:func:`keras_order`)."""
  keras = _import_keras()
  model = keras.applications.InceptionV3(weights=None, classifier_activation=None,
                                         classes=num_classes)
  try:
    model.load_weights(path)
  except Exception as e:  # noqa: BLE001 - Keras raises ValueError, KeyError, OSError...
    raise UserError(f'weights file {path} is not a Keras InceptionV3: {first_line(e)}') from None
  by_kind = {'conv2d': keras.layers.Conv2D, 'batch_normalization': keras.layers.BatchNormalization}
  found = {}
  for kind, cls in by_kind.items():
    found[kind] = sorted((layer for layer in model.layers if isinstance(layer, cls)),
                         key=lambda layer, kind=kind: _layer_number(layer.name, kind))
  return {'conv': [layer.get_weights()[0] for layer in found['conv2d']],
          'bn': [tuple(layer.get_weights()) for layer in found['batch_normalization']],
          'predictions': tuple(model.get_layer('predictions').get_weights()),
          'keras_version': keras.__version__}


# ---------------------------------------------------------------------------------------------
# Conversion.


def convert_arrays(arrays: dict[str, Any], num_classes: int, source: str) -> dict[str, PyTree]:
  """Keras's arrays (:func:`load_keras_arrays`) -> ``{'params': ..., 'batch_stats': ...}``,
  every variable of the Flax model filled exactly once with its exact shape."""
  order = keras_order()
  if len(arrays['conv']) != len(order) or len(arrays['bn']) != len(order):
    raise UserError(f'{source} is not a Keras InceptionV3: {len(arrays["conv"])} convolutions '
                    f'and {len(arrays["bn"])} batch norms, InceptionV3 has {len(order)}')
  flat = {}
  for module, kernel, (beta, mean, var) in zip(order, arrays['conv'], arrays['bn']):
    prefix = tuple(module.split('/'))
    flat[('params', *prefix, 'conv', 'kernel')] = kernel      # Keras HWIO = Flax HWIO
    flat[('params', *prefix, 'bn', 'bias')] = beta
    flat[('batch_stats', *prefix, 'bn', 'mean')] = mean
    flat[('batch_stats', *prefix, 'bn', 'var')] = var
  flat[('params', 'fc', 'kernel')], flat[('params', 'fc', 'bias')] = arrays['predictions']

  layout = flax_layout(num_classes)
  assert set(flat) == set(layout), sorted(set(flat) ^ set(layout))[:3]
  for path, array in flat.items():
    name = '/'.join(path)
    if tuple(np.shape(array)) != layout[path]:
      raise UserError(f'{source} is not a Keras InceptionV3: {name} has shape '
                      f'{tuple(np.shape(array))}, expected {layout[path]}')
    array = np.asarray(array, np.float32)
    if not np.all(np.isfinite(array)):
      raise UserError(f'{source}: {name} holds NaN or Inf values; the weights file is damaged')
    flat[path] = np.ascontiguousarray(array)
  return common.unflatten(flat)


def conversion_metadata(num_classes: int, *, keras_version: str | None = None,
                        weights_path: str | None = None) -> dict[str, Any]:
  """What evaluation / prediction / init_from need, the model switches included."""
  meta = common.conversion_metadata(
      MODEL, num_classes=num_classes, aux_logits=False, image_size=IMAGE_SIZE,
      eval_crop_fraction=EVAL_CROP_FRACTION, normalization='inception',
      source={'framework': SOURCE, 'architecture': ARCHITECTURE, 'keras_version': keras_version},
      weights_path=weights_path)
  meta['model_overrides'] = dict(MODEL_OVERRIDES)
  return meta


def convert_file(model_name: str, weights: str, out_dir: str) -> dict[str, Any]:
  """Reads, converts and saves; returns the metadata written."""
  _check_model(model_name)
  weights = os.fspath(weights)
  num_classes = inspect_file(weights)
  arrays = load_keras_arrays(weights, num_classes)
  variables = convert_arrays(arrays, num_classes, f'weights file {weights}')
  meta = conversion_metadata(num_classes, keras_version=arrays['keras_version'],
                             weights_path=weights)
  save_converted(out_dir, variables, meta)
  return meta


__all__ = ['MODEL_OVERRIDES', 'conversion_metadata', 'convert_arrays', 'convert_file',
           'convertible', 'flax_layout', 'inspect_file', 'keras_order', 'load_keras_arrays']
