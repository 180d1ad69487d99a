"""Load a model and its weights for inference from any checkpoint this project writes.

One entry point, :func:`load_for_inference`, for both layouts, which share the training system's
directory structure (:mod:`inception_jax.training.checkpoint`)::

  DIR/checkpoints/<step>/state      Orbax PyTree
  DIR/checkpoints/<step>/metadata   Orbax JSON: model, model_overrides, num_classes, image_size, ...

* **training** (``train.py --workdir=DIR``): ``state`` is a whole TrainState (``params``,
  ``batch_stats``, ``ema_params``, ``opt_state``, ``step``, ...). The Polyak-averaged
  ``ema_params`` are used when the run kept them (``ema_decay > 0``), else ``params``.
* **converted** (``python -m inception_jax.tools.convert ... --out DIR``): ``state`` is
  ``{'params', 'batch_stats'}`` at step 0, and the metadata also records the ``normalization`` and
  ``eval_crop_fraction`` the weights expect.

``path`` may be the workdir / ``--out`` directory, its ``checkpoints`` directory, or one step's
directory (``DIR/checkpoints/1000``). Only the arrays inference needs are read (no optimiser state),
as numpy: nothing is unpickled, so checkpoints are safe to share.

Checks, each a one-line :class:`~inception_jax.errors.UserError` when it fails: the path holds a
checkpoint; the metadata names a registered model with valid overrides; the saved parameters have
exactly the shapes of the model the metadata describes (and its architecture fingerprint);
converted checkpoints (whose state is just the saved variables) match their sha256 checksum.
Training checkpoints carry one checksum over the whole TrainState, optimiser state included, which a
read of three of its items cannot recompute; when the metadata also holds ``checksums`` (one
``state_checksum`` per item, e.g. ``{'params': 'sha256:...', 'ema_params': ...}``) the items read
are verified against it. A
damaged newest step (unreadable, checksum mismatch, non-finite weights) is skipped with a warning
naming the step and the reason, and the newest good one is used instead (the step actually loaded is
in ``meta['step']``); a step named explicitly is never replaced.
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any, NamedTuple

from absl import logging
from etils import epath
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from inception_jax.errors import UserError, first_line
from inception_jax.training import checkpoint as ckpt_lib
from inception_jax.training import model_factory

TRAINING = 'training'
CONVERTED = 'converted'
_REQUIRED = ('model', 'num_classes', 'image_size')


class InferenceCheckpoint(NamedTuple):
  """What :func:`load_for_inference` returns (unpacks as ``model, variables, meta``).

  Attributes:
    model: the Flax module the metadata describes (float32 compute).
    variables: ``{'params': ...}`` plus ``'batch_stats'`` when the model has BatchNorm; numpy.
    meta: the checkpoint's metadata plus ``step`` (the step loaded), ``checkpoint`` (its directory),
      ``layout`` (``'training'`` / ``'converted'``) and ``weights`` (``'ema'`` / ``'params'``).
  """
  model: nn.Module
  variables: dict[str, Any]
  meta: dict[str, Any]


class _Damaged(Exception):
  """A step that cannot be used (reason in the message); an older step may still be good."""


def _is_step_dir(path: str) -> bool:
  return (os.path.isdir(os.path.join(path, ckpt_lib.STATE))
          or os.path.isdir(os.path.join(path, ckpt_lib.METADATA)))


def _committed_steps(directory: str) -> list[int]:
  """Integer-named step directories, newest first (Orbax's ``*.orbax-checkpoint-tmp*`` excluded)."""
  try:
    names = os.listdir(directory)
  except OSError:
    return []
  return sorted((int(n) for n in names
                 if n.isdigit() and os.path.isdir(os.path.join(directory, n))), reverse=True)


def find_checkpoint_steps(path: str | os.PathLike) -> tuple[list[str], bool]:
  """Step directories to try, newest first, and whether ``path`` named a single step."""
  path = os.path.abspath(os.path.expanduser(os.fspath(path)))
  if not os.path.exists(path):
    raise UserError(f'checkpoint {path} does not exist; pass a training --workdir, a converted '
                    '--out directory, or one of their checkpoints/<step> directories')
  if not os.path.isdir(path):
    raise UserError(f'checkpoint {path} is a file, not a checkpoint directory')
  if _is_step_dir(path):
    return [path], True
  candidates = [os.path.join(path, ckpt_lib.CHECKPOINT_SUBDIR), path]
  for directory in candidates:
    steps = _committed_steps(directory)
    if steps:
      return [os.path.join(directory, str(s)) for s in steps], False
  raise UserError(f'{path} holds no checkpoint (no committed step directory in '
                  f'{" or ".join(candidates)})')


def _read_item(step_dir: str, item: str, read: Any) -> Any:
  """``read(path)`` of the ``item`` directory of a step (metadata, state); any failure to find
  or read it means the step is damaged."""
  directory = os.path.join(step_dir, item)
  if not os.path.isdir(directory):
    raise _Damaged(f'its {item} is missing')
  try:
    return read(epath.Path(directory))
  except Exception as e:  # noqa: BLE001 - any failure to read means "damaged"
    raise _Damaged(f'its {item} is unreadable ({first_line(e)})') from None


def read_metadata(step_dir: str) -> dict[str, Any]:
  """The JSON metadata saved next to a step's state."""
  meta = _read_item(step_dir, ckpt_lib.METADATA, ocp.JsonCheckpointHandler().restore)
  if not isinstance(meta, dict):
    raise _Damaged('its metadata is not a JSON object')
  return dict(meta)


def _check_metadata(meta: dict[str, Any], where: str) -> None:
  fmt = meta.get('format')
  if fmt is not None and fmt != ckpt_lib.FORMAT:
    raise UserError(f'{where} is in an unknown checkpoint format {fmt!r} (expected '
                    f'{ckpt_lib.FORMAT!r})')
  missing = [k for k in _REQUIRED if k not in meta]
  if missing:
    raise UserError(f'{where} metadata lacks {", ".join(missing)}: not a checkpoint of this '
                    'project (train.py or python -m inception_jax.tools.convert write them)')
  for key in ('num_classes', 'image_size'):
    value = meta[key]
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
      raise UserError(f'{where} metadata has {key}={value!r}; expected a positive integer')
  overrides = meta.get('model_overrides') or {}
  if not isinstance(overrides, dict):
    raise UserError(f'{where} metadata has model_overrides={overrides!r}; expected an object')
  classes = overrides.get('num_classes')
  if classes is not None and classes != meta['num_classes']:
    raise UserError(f'{where} metadata is inconsistent: num_classes={meta["num_classes"]} but '
                    f'model_overrides.num_classes={classes}')


def _build_model(meta: dict[str, Any], where: str) -> nn.Module:
  """The network the metadata names, in float32 (inference), as training built it."""
  try:
    return model_factory.build_model(meta, check_input_size=False)
  except UserError as e:
    raise UserError(f'{where}: {first_line(e)}') from None


def _tree_metadata(step_dir: str) -> dict[str, Any]:
  tree = _read_item(step_dir, ckpt_lib.STATE, ocp.PyTreeCheckpointHandler().metadata)
  tree = getattr(tree, 'tree', tree)
  if not isinstance(tree, dict) or 'params' not in tree:
    raise _Damaged('its state has no params')
  return tree


def _has_leaves(tree: Any) -> bool:
  return bool(jax.tree.leaves(tree))


def _restore(step_dir: str, tree: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
  """Reads only ``keys`` of the saved state, as numpy arrays."""
  item = {k: tree[k] for k in keys}
  restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), item)
  args = ocp.args.PyTreeRestore(item=item, restore_args=restore_args, partial_restore=True)
  out = _read_item(step_dir, ckpt_lib.STATE,
                   lambda path: ocp.PyTreeCheckpointHandler().restore(path, args=args))
  return jax.tree.map(np.asarray, dict(out))


def _shapes(tree: Any) -> dict[str, tuple[int, ...]]:
  return {jax.tree_util.keystr(p): tuple(np.shape(x))
          for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]}


@functools.lru_cache(maxsize=16)
def _variable_shapes(model: nn.Module, size: int) -> dict[str, dict[str, tuple[int, ...]]]:
  """Shapes of every variable of ``model`` (traced with ``eval_shape``: nothing is computed)."""
  key = jax.random.PRNGKey(0)
  abstract = jax.eval_shape(lambda: model.init(  # train=True: the aux heads' params too.
      {'params': key, 'dropout': key}, jnp.zeros((1, size, size, 3), jnp.float32), train=True))
  return {name: _shapes(abstract.get(name, {})) for name in ('params', 'batch_stats')}


def _check_against_model(model: nn.Module, meta: dict[str, Any], params: Any, batch_stats: Any,
                         where: str) -> None:
  """The saved arrays must be exactly the variables of the model the metadata describes."""
  size = max(int(meta['image_size']), model.min_input_size())
  try:
    shapes = _variable_shapes(model, size)
  except UserError as e:
    raise UserError(f'{where}: {first_line(e)}') from None
  for name, saved in (('params', params), ('batch_stats', batch_stats)):
    want, got = shapes[name], _shapes(saved)
    if want != got:
      diff = sorted(set(want.items()) ^ set(got.items()))
      raise UserError(
          f'{where} does not match its metadata: the {name} of {meta["model"]} '
          f'({meta["num_classes"]} classes, overrides {meta.get("model_overrides") or {}}) differ '
          f'from the saved ones ({len(diff)} mismatches, e.g. {diff[0][0]})')


def _load_step(step_dir: str, *, use_ema: bool) -> InferenceCheckpoint:
  where = f'checkpoint {step_dir}'
  meta = read_metadata(step_dir)
  _check_metadata(meta, where)
  model = _build_model(meta, where)
  tree = _tree_metadata(step_dir)
  layout = CONVERTED if set(tree) <= {'params', 'batch_stats'} else TRAINING
  use_ema = use_ema and _has_leaves(tree.get('ema_params', {}))
  keys = tuple(k for k in ('params', 'batch_stats') if k in tree and _has_leaves(tree[k]))
  keys += ('ema_params',) if use_ema else ()
  raw = _restore(step_dir, tree, keys)
  params, batch_stats = raw['params'], raw.get('batch_stats', {})
  if meta.get('architecture') and ckpt_lib.architecture_fingerprint(params) != meta['architecture']:
    raise UserError(f'{where}: its params do not match the architecture recorded in its '
                    'metadata; the checkpoint was altered or mixed with another one')
  if layout == CONVERTED and meta.get('checksum'):
    saved = {'params': params, 'batch_stats': batch_stats}
    if ckpt_lib.state_checksum(saved) != meta['checksum']:
      raise _Damaged('checksum mismatch')
  # Per-item checksums ({'params': 'sha256:...', ...}, state_checksum of each sub-tree), when the
  # training system records them: the whole-state checksum cannot be recomputed from a partial read.
  item_checksums = meta.get('checksums')
  if isinstance(item_checksums, dict):
    for name, subtree in raw.items():
      expected = item_checksums.get(name)
      if expected and ckpt_lib.state_checksum(subtree) != expected:
        raise _Damaged(f'checksum mismatch in {name}')
  _check_against_model(model, meta, params, batch_stats, where)
  weights = raw['ema_params'] if use_ema else params
  if use_ema:
    _check_against_model(model, meta, weights, batch_stats, f'{where} (ema_params)')
  for leaf in jax.tree.leaves(weights) + jax.tree.leaves(batch_stats):
    if not np.all(np.isfinite(leaf)):
      raise _Damaged('non-finite weights')
  variables = {'params': weights}
  if _has_leaves(batch_stats):
    variables['batch_stats'] = batch_stats
  step = meta.get('step')
  if not isinstance(step, int) or isinstance(step, bool):
    base = os.path.basename(step_dir)
    step = int(base) if base.isdigit() else 0
  meta = dict(meta, step=step, checkpoint=step_dir, layout=layout,
              weights='ema' if use_ema else 'params')
  return InferenceCheckpoint(model, variables, meta)


def load_for_inference(path: str | os.PathLike, *, use_ema: bool = True) -> InferenceCheckpoint:
  """``(model, variables, meta)`` from a training or converted checkpoint (module docstring).

  Args:
    path: a workdir / converted directory, its ``checkpoints`` directory, or a step directory.
    use_ema: use ``ema_params`` when the checkpoint has them (the default, as for evaluation
      during training).

  Raises:
    UserError: no checkpoint there, every step damaged, or a checkpoint of another model.
  """
  step_dirs, explicit = find_checkpoint_steps(path)
  skipped = []
  for step_dir in step_dirs:
    try:
      loaded = _load_step(step_dir, use_ema=use_ema)
    except _Damaged as e:
      if explicit:
        raise UserError(f'checkpoint {step_dir} is damaged: {e}') from None
      logging.warning('checkpoint step %s in %s is damaged (%s); trying an older step',
                      os.path.basename(step_dir), os.path.dirname(step_dir), e)
      skipped.append((step_dir, str(e)))
      continue
    if skipped:
      logging.warning('using checkpoint step %d (%d newer step(s) damaged)',
                      loaded.meta['step'], len(skipped))
    return loaded
  step_dir, reason = skipped[0]
  raise UserError(f'no usable checkpoint in {os.fspath(path)}: the newest, {step_dir}, is '
                  f'damaged ({reason})' + (f', and so are {len(skipped) - 1} older one(s)'
                                           if len(skipped) > 1 else ''))


def workdir_config(meta: dict[str, Any]) -> dict[str, Any]:
  """The run's ``config.json`` (written by ``train.py`` next to ``checkpoints/``), or ``{}``."""
  step_dir = meta.get('checkpoint')
  if not step_dir:
    return {}
  checkpoints = os.path.dirname(step_dir)
  if os.path.basename(checkpoints) != ckpt_lib.CHECKPOINT_SUBDIR:
    return {}
  try:
    with open(os.path.join(os.path.dirname(checkpoints), 'config.json')) as f:
      config = json.load(f)
  except (OSError, ValueError):
    return {}
  return config if isinstance(config, dict) else {}


def preprocessing_settings(meta: dict[str, Any], defaults: Any = None) -> dict[str, Any]:
  """How the weights expect their input: ``normalization``, ``eval_crop_fraction``, ``dataset``,
  ``data_dir``, and ``random_flip`` (whether mirror images were trained on).

  From the checkpoint metadata (converted checkpoints record them), else the run's
  ``config.json``, else ``defaults`` (a config / dict), else the schema's defaults.
  """
  run = workdir_config(meta)
  out = {}
  for key, fallback in (('normalization', 'inception'), ('eval_crop_fraction', 0.875),
                        ('dataset', None), ('data_dir', None), ('random_flip', True)):
    value = meta.get(key)
    if value is None:
      value = run.get(key)
    if value is None and defaults is not None:
      value = defaults.get(key) if hasattr(defaults, 'get') else getattr(defaults, key, None)
    out[key] = fallback if value is None else value
  return out


__all__ = ['CONVERTED', 'InferenceCheckpoint', 'TRAINING', 'find_checkpoint_steps',
           'load_for_inference', 'preprocessing_settings', 'read_metadata',
           'workdir_config']
