"""What every weight source shares: the expected variables of a model and the written checkpoint.

A converter (torchvision here; Keras or timm alike) maps its framework's names and layouts onto
:func:`abstract_variables` of a registered model, then hands the Flax variables and
:func:`conversion_metadata` to :func:`save_converted`. The checkpoint is the training system's
(Orbax, step 0), so ``--config.init_from=DIR``, evaluation and prediction load it whatever the
source, and the metadata tells them how to feed it (normalisation, image size, eval crop).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from typing import Any, Mapping

from inception_jax.errors import UserError

PyTree = Any

META_FILE = 'meta.json'


@functools.lru_cache(maxsize=None)
def abstract_variables(model_name: str, num_classes: int, aux_logits: bool,
                       overrides: tuple[tuple[str, Any], ...] = ()) -> dict[str, Any]:
  """Shapes of ``model.init``'s variables, traced abstractly (no FLOPs, no memory).

  Derived from the Flax model itself, so a converter's expected layout can never drift from it.
  ``overrides``: further model switches as ``(name, value)`` pairs (hashable, for the cache).
  """
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from inception_jax import models  # pylint: disable=g-import-not-at-top

  model = models.create(model_name, num_classes=num_classes, aux_logits=aux_logits,
                        **dict(overrides))
  size = models.spec(model_name).default_input_size
  images = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
  rngs = {'params': jax.random.PRNGKey(0), 'dropout': jax.random.PRNGKey(1)}
  variables = jax.eval_shape(lambda x: model.init(rngs, x, train=False), images)
  return jax.tree.map(lambda s: tuple(s.shape), dict(variables))


def flatten(tree: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
  """Nested dicts -> ``{path tuple: leaf}``."""
  out = {}
  for key, value in tree.items():
    if isinstance(value, Mapping):
      out.update(flatten(value, prefix + (key,)))
    else:
      out[prefix + (key,)] = value
  return out


def unflatten(flat: Mapping[tuple[str, ...], Any]) -> dict[str, Any]:
  """``{path tuple: leaf}`` -> nested dicts (the inverse of :func:`flatten`)."""
  tree: dict[str, Any] = {}
  for path, value in flat.items():
    node = tree
    for key in path[:-1]:
      node = node.setdefault(key, {})
    node[path[-1]] = value
  return tree


def file_sha256(path: str) -> str:
  """``'sha256:<hex>'`` of a weights file, so a checkpoint names exactly what it came from."""
  h = hashlib.sha256()
  with open(path, 'rb') as f:
    for block in iter(lambda: f.read(1 << 20), b''):
      h.update(block)
  return 'sha256:' + h.hexdigest()


def conversion_metadata(model_name: str, *, num_classes: int, aux_logits: bool, image_size: int,
                        eval_crop_fraction: float, normalization: str,
                        source: Mapping[str, Any], weights_path: str | None = None
                        ) -> dict[str, Any]:
  """What evaluation / prediction / init_from need to use converted weights correctly.

  ``source`` describes the origin (``framework``, ``architecture``, ...); with ``weights_path``
  it also gets the file's absolute path and sha256.
  """
  meta = {
      'model': model_name,
      'model_overrides': {'aux_logits': aux_logits},
      'num_classes': num_classes,
      'image_size': image_size,
      'eval_crop_fraction': eval_crop_fraction,
      'normalization': normalization,
      'source': dict(source),
      'step': 0,
  }
  if weights_path is not None:
    meta['source']['file'] = os.path.abspath(weights_path)
    meta['source']['sha256'] = file_sha256(weights_path)
  return meta


def check_weights_file(path: str | os.PathLike, kind: str) -> str:
  """``path`` as a string if it is a readable, non-empty file, else a one-line UserError (``kind``
  names the file a user should pass instead of a directory, e.g. '.pth or .safetensors')."""
  path = os.fspath(path)
  if not os.path.exists(path):
    raise UserError(f'weights file {path} does not exist')
  if os.path.isdir(path):
    raise UserError(f'weights file {path} is a directory; pass the {kind} file')
  if not os.access(path, os.R_OK):
    raise UserError(f'weights file {path} is not readable (check its permissions)')
  if os.path.getsize(path) == 0:
    raise UserError(f'weights file {path} is empty (an interrupted download?)')
  return path


def save_converted(out_dir: str | os.PathLike, variables: PyTree, meta: Mapping[str, Any]) -> str:
  """Writes ``variables`` as a step-0 checkpoint of the training system under ``out_dir``.

  Layout (what ``checkpoint.load_pretrained``, i.e. ``--config.init_from=DIR``, reads):
  ``DIR/checkpoints/0/state`` (Orbax PyTree ``{'params', 'batch_stats'}``),
  ``DIR/checkpoints/0/metadata`` (JSON) and a copy of that JSON as ``DIR/meta.json`` for people
  and tools that do not want Orbax. Returns the checkpoint directory.
  """
  from inception_jax.inference import export  # pylint: disable=g-import-not-at-top
  from inception_jax.training import checkpoint as ckpt_lib  # pylint: disable=g-import-not-at-top

  out_dir = export.check_out_dir(out_dir)  # new or empty, as for an export: nothing overwritten
  try:
    os.makedirs(out_dir, exist_ok=True)
  except OSError as e:
    raise UserError(f'cannot create --out {out_dir}: {e.strerror or e}') from None
  if not os.access(out_dir, os.W_OK):
    raise UserError(f'--out {out_dir} is not writable')

  host_state = {'params': variables['params'], 'batch_stats': variables.get('batch_stats', {})}
  meta = dict(meta)
  meta.update({
      'format': ckpt_lib.FORMAT,
      'architecture': ckpt_lib.architecture_fingerprint(host_state['params']),
      'checksum': ckpt_lib.state_checksum(host_state),
      'saved_at': time.strftime('%Y-%m-%dT%H:%M:%S%z'),
  })
  directory = ckpt_lib.checkpoint_dir(out_dir)
  checkpointer = ckpt_lib.Checkpointer(directory, keep=0, async_save=False)
  try:
    checkpointer.save(host_state, meta)
    checkpointer.wait()
  finally:
    checkpointer.close()
  with open(os.path.join(out_dir, META_FILE), 'w') as f:
    json.dump(meta, f, indent=2, sort_keys=True)
    f.write('\n')
  return directory


__all__ = ['META_FILE', 'abstract_variables', 'conversion_metadata', 'file_sha256', 'flatten',
           'save_converted', 'unflatten']
