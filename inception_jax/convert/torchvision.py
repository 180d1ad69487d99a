"""torchvision weights -> this project's Flax variables, with logit parity.

``python -m inception_jax.tools.convert --from torchvision --model {googlenet_tv,inception_v3}
--weights FILE --out DIR`` (see ``__main__``) reads a torchvision state dict and writes a checkpoint
that ``--config.init_from=DIR``, evaluation and prediction load. The library functions:

* :func:`load_torch_state_dict` reads ``.pth``/``.pt`` files with ``torch.load(path,
  map_location='cpu', weights_only=True)`` (PyTorch's restricted unpickler: tensors and plain
  containers only, never arbitrary objects) or ``.safetensors`` files with the safetensors package.
  torch is an optional extra, imported only here.
* :func:`convert_state_dict` is pure numpy: torchvision names and layouts -> ``{'params': ...,
  'batch_stats': ...}`` nested dicts of float32 arrays, with every key checked.
* :func:`save_converted` (from ``common``, shared by every weight source) writes the checkpoint
  (the training system's Orbax format, step 0).

**Mapping.** Parameter names here mirror torchvision's module names (see the model docstrings):

* ``X.conv.weight`` [out, in, kh, kw] (OIHW) -> ``params/X/conv/kernel`` [kh, kw, in, out] (HWIO);
* ``X.bn.weight``/``bias`` -> ``params/X/bn/scale``/``bias``, ``X.bn.running_mean``/
  ``running_var`` -> ``batch_stats/X/bn/mean``/``var``; ``num_batches_tracked`` is dropped;
* ``Y.weight`` [out, in] of a ``nn.Linear`` -> ``params/Y/kernel`` [in, out];
* GoogLeNet's ``inceptionNx.branchK.J`` (an ``nn.Sequential`` index) -> ``branchK_J``;
* GoogLeNet's aux ``fc1`` reads torchvision's NCHW flatten of a [128, 4, 4] map, index
  ``c*16 + h*4 + w``; here the map is NHWC and flattens as ``h*512 + w*128 + c``, so the input
  rows are permuted: ``kernel = W.reshape(1024, 128, 4, 4).transpose(2, 3, 1, 0).reshape(2048,
  1024)``. Inception v3's aux ``fc`` follows an adaptive pool to 1x1: no permutation.

The per-model facts (a key only that state dict has, the aux-head prefixes, the GoogLeNet index
renaming and permuted kernels, torchvision's eval resize) are each model file's
``TORCHVISION_LAYOUT``, in its registry entry (``models.ModelSpec.torchvision_layout``); a model
is convertible when its entry has one. This module is the generic part.

The auxiliary heads are converted when the state dict has them (torchvision's released files do:
``aux1``/``aux2`` for GoogLeNet, ``AuxLogits`` for v3) and the model is then built with
``aux_logits=True``; a state dict saved from a model without them converts with ``aux_logits=False``.
``num_classes`` is read from ``fc.weight`` (a fine-tuned 10-class model converts as one).

**Input conventions.** torchvision's pretrained ``googlenet`` and ``inception_v3`` are built with
``transform_input=True``: they take ImageNet mean/std-normalised input ``(x - mean) / std`` (``x``
in [0, 1]) and first undo it, per channel ``x_c * std_c / 0.5 + (mean_c - 0.5) / 0.5 = (x - 0.5) /
0.5 = 2x - 1``, so their first convolution sees pixels scaled to [-1, 1]. The converted model has no
such step, so feed it [-1, 1] input: this project's ``normalization='inception'`` (``image / 127.5
- 1``) reproduces torchvision's pretrained behaviour exactly (as real arithmetic; within float
rounding in practice). ``normalization='imagenet'`` is only right for weights trained with
``transform_input=False`` (``--no-transform-input``). The converter records the right setting in the
checkpoint metadata (``normalization``, plus ``image_size`` 224 / 299 and ``eval_crop_fraction``
224/256 / 299/342 as torchvision's eval transforms resize-then-crop).

Other conventions that matter for parity are built into the models (see ``layers``): max pools
with ``ceil_mode`` (GoogLeNet), average pools that count the zero padding (``count_include_pad``,
v3's ``branch_pool``), PyTorch's adaptive pooling windows, BatchNorm eps 1e-3.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from inception_jax.convert import common
from inception_jax.convert.common import META_FILE, PyTree, save_converted
from inception_jax.errors import UserError, first_line

if TYPE_CHECKING:
  from inception_jax.models import ModelSpec

SOURCE = 'torchvision'
TORCH_EXTRA = "pip install 'inception_jax[torch]'"
IGNORED_SUFFIXES = ('.num_batches_tracked',)


# Architectures users may try to convert, recognised by a key only they have (better messages).
_OTHER_SIGNATURES = {
    'torchvision resnet': 'layer1.0.conv1.weight',
    'torchvision vgg / alexnet': 'features.0.weight',
    'torchvision densenet': 'features.denseblock1.denselayer1.conv1.weight',
    'torchvision efficientnet / mobilenet': 'features.0.0.weight',
    'torchvision vit': 'encoder.layers.encoder_layer_0.ln_1.weight',
}


def convertible() -> dict[str, ModelSpec]:
  """Registered models whose entry has a ``torchvision_layout``: name -> ``models.ModelSpec``."""
  from inception_jax import models  # pylint: disable=g-import-not-at-top
  return {name: models.spec(name) for name in models.available()
          if models.spec(name).torchvision_layout is not None}


def _spec(model_name: str) -> ModelSpec:
  """The registry entry of a convertible model, else a UserError naming the ones there are."""
  specs = convertible()
  if model_name not in specs:
    from inception_jax import models  # pylint: disable=g-import-not-at-top
    tv_name = models.spec(model_name).torchvision_name if model_name in models.available() else None
    layouts = [name for name, spec in specs.items() if spec.torchvision_name == tv_name]
    hint = f" (torchvision's {tv_name} has the {layouts[0]!r} layout)" if layouts else ''
    raise UserError(f'cannot convert {model_name!r} from torchvision{hint}; choose one of: '
                    f'{", ".join(specs)}')
  return specs[model_name]


# ---------------------------------------------------------------------------------------------
# Expected layout: ``common.abstract_variables`` of the model, under torchvision's names.


_LEAF_NAMES = {('params', 'kernel'): 'weight', ('params', 'scale'): 'weight',
               ('params', 'bias'): 'bias', ('batch_stats', 'mean'): 'running_mean',
               ('batch_stats', 'var'): 'running_var'}


def _torch_key(spec: ModelSpec, path: tuple[str, ...]) -> str:
  """``('params', 'inception3a', 'branch2_0', 'conv', 'kernel')`` -> torchvision's key."""
  collection, *modules, leaf = path
  try:
    leaf_name = _LEAF_NAMES[(collection, leaf)]
  except KeyError:  # pragma: no cover - a new kind of layer in the models
    raise NotImplementedError(f'no torchvision name for {"/".join(path)}') from None
  module_name = spec.torchvision_layout.module_name
  return '.'.join([module_name(m) for m in modules] + [leaf_name])


def _torch_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
  """Flax HWIO conv kernels / [in, out] dense kernels -> torch OIHW / [out, in]."""
  if len(shape) == 4:
    return (shape[3], shape[2], shape[0], shape[1])
  if len(shape) == 2:
    return (shape[1], shape[0])
  return tuple(shape)


def _layout(model_name: str, num_classes: int, aux_logits: bool
            ) -> dict[str, tuple[tuple[str, ...], tuple[int, ...]]]:
  """torchvision key -> (Flax path, Flax shape) for every converted array, in model order."""
  spec = _spec(model_name)
  flat = common.flatten(common.abstract_variables(model_name, num_classes, aux_logits))
  return {_torch_key(spec, path): (path, shape) for path, shape in flat.items()}


def torch_layout(model_name: str, num_classes: int = 1000, aux_logits: bool = True
                 ) -> dict[str, tuple[int, ...]]:
  """The float arrays of torchvision's state dict for ``model_name`` and their torch shapes
  (``num_batches_tracked`` counters, which the converter ignores, are not listed)."""
  return {key: _torch_shape(shape)
          for key, (_, shape) in _layout(model_name, num_classes, aux_logits).items()}


# ---------------------------------------------------------------------------------------------
# Conversion.


def _to_flax(spec: ModelSpec, path: tuple[str, ...], array: np.ndarray) -> np.ndarray:
  """One torch array in Flax layout."""
  if path[-1] != 'kernel':
    return array
  if array.ndim == 4:
    return array.transpose(2, 3, 1, 0)           # OIHW -> HWIO
  nchw_maps = dict(spec.torchvision_layout.nchw_flattened_kernels)
  if '/'.join(path[1:]) in nchw_maps:
    c, h, w = nchw_maps['/'.join(path[1:])]
    out = array.shape[0]
    # Input rows: torch's (c, h, w) flatten -> this project's (h, w, c) flatten.
    return array.reshape(out, c, h, w).transpose(2, 3, 1, 0).reshape(h * w * c, out)
  return array.T                                  # [out, in] -> [in, out]


def _strip_wrapper_prefix(keys: list[str]) -> str:
  """``module.`` (DataParallel / DDP) or ``_orig_mod.`` (torch.compile) on every key, or ''."""
  for prefix in ('module.', '_orig_mod.', 'model.'):
    if keys and all(k.startswith(prefix) for k in keys):
      return prefix
  return ''


def few_keys(keys, n: int = 3) -> str:
  """The first ``n`` keys and how many more, for one-line messages about a state dict."""
  keys = list(keys)
  more = f' (+{len(keys) - n} more)' if len(keys) > n else ''
  return ', '.join(keys[:n]) + more


def inspect_state_dict(model_name: str, state_dict: Mapping[str, Any],
                       source: str = 'state dict') -> tuple[int, bool]:
  """``(num_classes, has_aux_heads)`` of a torchvision state dict of ``model_name``.

  Raises UserError when the state dict is not of that architecture, naming the one it looks like.
  """
  spec = _spec(model_name)
  keys = [k for k in state_dict if not k.endswith(IGNORED_SUFFIXES)]
  if spec.torchvision_layout.signature not in state_dict:
    for other, other_spec in convertible().items():
      if other != model_name and other_spec.torchvision_layout.signature in state_dict:
        raise UserError(f'{source} looks like {other}, not {model_name}; '
                        f'pass --model {other} or the {spec.torchvision_name} weights')
    for other, signature in _OTHER_SIGNATURES.items():
      if signature in state_dict:
        raise UserError(f'{source} looks like {other}, not {model_name} '
                        f'(torchvision {spec.torchvision_name}); pass the right weights file')
    expected = list(torch_layout(model_name))
    missing = [k for k in expected if k not in state_dict]
    raise UserError(f'{source} is not a torchvision {spec.torchvision_name} state dict: '
                    f'{len(missing)} of its {len(expected)} arrays are missing '
                    f'({few_keys(missing)}); it has {len(keys)} arrays ({few_keys(keys)})')
  fc = state_dict.get('fc.weight')
  if fc is None or np.ndim(fc) != 2:
    raise UserError(f'{source} has no 2-D classifier weight fc.weight; it is not a complete '
                    f'torchvision {spec.torchvision_name} state dict')
  num_classes = int(np.shape(fc)[0])
  if num_classes < 1:
    raise UserError(f'{source}: fc.weight has shape {tuple(np.shape(fc))}, i.e. no classes')
  has_aux = any(k.startswith(spec.torchvision_layout.aux_prefixes) for k in keys)
  return num_classes, has_aux


def convert_state_dict(model_name: str, state_dict: Mapping[str, Any],
                       source: str = 'state dict') -> dict[str, PyTree]:
  """torchvision state dict (name -> numpy array) -> ``{'params': ..., 'batch_stats': ...}``.

  Pure numpy. The Flax model to load it into is ``models.create(model_name,
  num_classes=N, aux_logits=A)`` with ``(N, A) = inspect_state_dict(...)``: ``num_classes`` comes
  from ``fc.weight`` and the aux heads are built iff the state dict has them. Every array must
  be used and every parameter found, with exactly torchvision's shape; ``num_batches_tracked``
  counters are dropped. Raises UserError otherwise (``source`` names the file in messages).
  """
  spec = _spec(model_name)
  prefix = _strip_wrapper_prefix(list(state_dict))
  state_dict = {k[len(prefix):]: v for k, v in state_dict.items()}
  num_classes, has_aux = inspect_state_dict(model_name, state_dict, source)
  layout = _layout(model_name, num_classes, has_aux)
  given = {k: v for k, v in state_dict.items() if not k.endswith(IGNORED_SUFFIXES)}

  missing = [k for k in layout if k not in given]
  unexpected = [k for k in given if k not in layout]
  if missing or unexpected:
    parts = []
    if missing:
      parts.append(f'{len(missing)} missing ({few_keys(missing)})')
    if unexpected:
      parts.append(f'{len(unexpected)} unexpected ({few_keys(unexpected)})')
    raise UserError(f'{source} does not match torchvision {spec.torchvision_name} '
                    f'(num_classes={num_classes}, aux heads {"on" if has_aux else "off"}): '
                    f'{" and ".join(parts)} arrays')

  flat = {}
  for key, (path, flax_shape) in layout.items():
    array = np.asarray(given[key])
    expected = _torch_shape(flax_shape)
    if array.shape != expected:
      bad = [k for k, (_, s) in layout.items() if np.shape(given[k]) != _torch_shape(s)]
      raise UserError(f'{source}: {key} has shape {tuple(array.shape)} but torchvision '
                      f'{spec.torchvision_name} with {num_classes} classes has {expected} '
                      f'({len(bad)} arrays differ: {few_keys(bad)}); only the number of classes '
                      'may differ from the published architecture')
    if not np.issubdtype(array.dtype, np.floating):
      raise UserError(f'{source}: {key} has dtype {array.dtype}, expected floating point')
    array = array.astype(np.float32)
    if not np.all(np.isfinite(array)):
      raise UserError(f'{source}: {key} holds NaN or Inf values; the weights file is damaged')
    converted = np.ascontiguousarray(_to_flax(spec, path, array))
    assert converted.shape == tuple(flax_shape), (key, converted.shape, flax_shape)
    flat[path] = converted
  variables = common.unflatten(flat)
  variables.setdefault('batch_stats', {})
  return variables


# ---------------------------------------------------------------------------------------------
# Reading weight files.


def _import_torch():
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise UserError(f'reading PyTorch weights needs torch, which is not installed: '
                    f'{TORCH_EXTRA}') from None
  return torch


def _unwrap_checkpoint(obj: Any, path: str) -> Mapping[str, Any]:
  """A training checkpoint {'state_dict': {...}, 'epoch': ...} -> its state dict."""
  if isinstance(obj, Mapping):
    for key in ('state_dict', 'model_state_dict', 'model'):
      inner = obj.get(key)
      if isinstance(inner, Mapping) and inner and all(isinstance(k, str) for k in inner):
        if not any(hasattr(v, 'shape') for v in obj.values()):
          return inner
    return obj
  raise UserError(f'weights file {path} holds a {type(obj).__name__}, not a state dict; save '
                  'model.state_dict() with torch.save')


def load_torch_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """A torchvision state dict from ``.pth``/``.pt``/``.bin`` (torch) or ``.safetensors``, as
  numpy arrays. Reads safely: ``torch.load(..., weights_only=True)`` never runs pickled code.
  """
  path = common.check_weights_file(path, '.pth or .safetensors')

  if path.endswith('.safetensors'):
    try:
      from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top
    except ImportError:
      raise UserError(f'reading {path} needs the safetensors package: pip install safetensors'
                      ) from None
    try:
      return dict(load_file(path))
    except Exception as e:  # noqa: BLE001 - safetensors raises several types on damaged files
      raise UserError(f'weights file {path} is truncated or not a safetensors file '
                      f'({first_line(e)})') from None

  torch = _import_torch()
  try:
    obj = torch.load(path, map_location='cpu', weights_only=True)
  except Exception as e:  # noqa: BLE001 - torch raises RuntimeError, UnpicklingError, EOFError...
    text = str(e)
    unsafe = re.search(r'Unsupported global: GLOBAL ([\w.]+)', text)
    if unsafe:
      raise UserError(f'weights file {path} holds pickled Python objects ({unsafe.group(1)}), '
                      'which are never loaded (unsafe); save model.state_dict() with torch.save'
                      ) from None
    detail = re.search(r'WeightsUnpickler error:\s*(\S[^\n]*)', text)
    reason = detail.group(1)[:200] if detail else first_line(e)
    raise UserError(f'weights file {path} is truncated or not a PyTorch state dict '
                    f'({reason})') from None
  state_dict = _unwrap_checkpoint(obj, path)
  out = {}
  for key, value in state_dict.items():
    if not isinstance(key, str) or not isinstance(value, torch.Tensor):
      raise UserError(f'weights file {path} is not a PyTorch state dict (entry {key!r} is a '
                      f'{type(value).__name__}, not a tensor)')
    value = value.detach().cpu()
    if value.is_floating_point() and value.dtype not in (torch.float32, torch.float64):
      value = value.float()                       # float16 / bfloat16 -> float32 for numpy
    out[key] = value.numpy()
  return out


# ---------------------------------------------------------------------------------------------
# Conversion metadata and the whole file.


def conversion_metadata(model_name: str, variables: PyTree, *, transform_input: bool = True,
                        weights_path: str | None = None) -> dict[str, Any]:
  """What evaluation / prediction / init_from need to use the converted weights correctly."""
  spec = _spec(model_name)
  layout = spec.torchvision_layout
  return common.conversion_metadata(
      model_name,
      num_classes=int(variables['params']['fc']['bias'].shape[0]),
      aux_logits=all(prefix.rstrip('.') in variables['params'] for prefix in layout.aux_prefixes),
      image_size=spec.default_input_size,
      eval_crop_fraction=spec.default_input_size / layout.resize_size,
      normalization='inception' if transform_input else 'imagenet',
      source={
          'framework': SOURCE,
          'architecture': f'torchvision.models.{spec.torchvision_name}',
          'transform_input': bool(transform_input),
      },
      weights_path=weights_path)


def convert_file(model_name: str, weights: str, out_dir: str, *, transform_input: bool = True
                 ) -> dict[str, Any]:
  """Reads, converts and saves; returns the metadata written."""
  _spec(model_name)
  state_dict = load_torch_state_dict(weights)
  variables = convert_state_dict(model_name, state_dict, source=f'weights file {weights}')
  meta = conversion_metadata(model_name, variables, transform_input=transform_input,
                             weights_path=weights)
  save_converted(out_dir, variables, meta)
  return meta


__all__ = ['META_FILE', 'conversion_metadata', 'convertible', 'convert_file', 'convert_state_dict',
           'few_keys', 'inspect_state_dict', 'load_torch_state_dict', 'save_converted',
           'torch_layout']
