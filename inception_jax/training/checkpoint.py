"""Checkpoints: Orbax ``CheckpointManager`` (asynchronous saves, keep the last K), with metadata.

Layout: ``<workdir>/checkpoints/<step>/{state,metadata}``. ``state`` is the whole
:class:`~inception_jax.training.state.TrainState` saved from host numpy arrays (Orbax writes numpy
leaves from process 0 only, so the same code serves one process or many); ``metadata`` is a JSON
object naming the model, its overrides, the number of classes, the image size, an architecture
fingerprint (shapes of the parameters) and ``checksum``, a sha256 over the state's leaves, so a damaged
checkpoint can be told from a good one (:meth:`Checkpointer.verify`). An interrupted save leaves
``<step>.orbax-checkpoint-tmp``, which Orbax ignores.

Checkpoints hold only arrays and JSON: restoring never unpickles anything.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from typing import Any, Mapping

import jax
import numpy as np
import orbax.checkpoint as ocp

from inception_jax.errors import UserError

STATE = 'state'
METADATA = 'metadata'
FORMAT = 'inception_jax.checkpoint/1'
CHECKPOINT_SUBDIR = 'checkpoints'

PyTree = Any
log = logging.getLogger(__name__)


def _path_str(path) -> str:
  return jax.tree_util.keystr(path)


def state_checksum(host_state: PyTree) -> str:
  """sha256 over every leaf's path, dtype, shape and bytes (host arrays), in tree order."""
  h = hashlib.sha256()
  for path, leaf in jax.tree_util.tree_flatten_with_path(host_state)[0]:
    a = np.ascontiguousarray(np.asarray(leaf))
    h.update(f'{_path_str(path)}|{a.dtype.str}|{a.shape}|'.encode())
    h.update(a.view(np.uint8).reshape(-1).data if a.size else b'')
  return 'sha256:' + h.hexdigest()


def architecture_fingerprint(params: PyTree) -> str:
  """sha256 of the parameter paths and shapes: equal iff the networks have the same layers."""
  items = [(_path_str(p), tuple(np.shape(x)))
           for p, x in jax.tree_util.tree_flatten_with_path(params)[0]]
  return 'sha256:' + hashlib.sha256(repr(items).encode()).hexdigest()


def structure_fingerprint(state: PyTree) -> str:
  """sha256 of every leaf's path and shape of the whole state (optimizer and EMA included)."""
  items = [(_path_str(p), tuple(np.shape(x)))
           for p, x in jax.tree_util.tree_flatten_with_path(state)[0]]
  return 'sha256:' + hashlib.sha256(repr(items).encode()).hexdigest()


def run_metadata(config: Any, state: PyTree, *, num_classes: int, total_steps: int
                 ) -> dict[str, Any]:
  """What identifies a run's checkpoints: model, overrides, classes, size, fingerprints, recipe.

  Needs only shapes (``state`` may be the abstract state from ``jax.eval_shape``).
  """
  overrides = config.get('model_overrides')
  overrides = overrides.to_dict() if hasattr(overrides, 'to_dict') else dict(overrides or {})
  return {
      'format': FORMAT,
      'model': config.model,
      'model_overrides': json.loads(json.dumps(overrides, default=str)),
      'num_classes': int(num_classes),
      'image_size': int(config.image_size),
      'normalization': str(config.get('normalization', 'inception')),
      'eval_crop_fraction': float(config.get('eval_crop_fraction', 0.875)),
      'architecture': architecture_fingerprint(state.params),
      'state_structure': structure_fingerprint(state),
      'dataset': str(config.dataset),
      'optimizer': config.optimizer,
      'learning_rate': float(config.learning_rate),
      'global_batch_size': int(config.global_batch_size),
      'num_train_steps': int(total_steps),
      'ema': bool(config.get('ema_decay', 0.0) > 0),
      'seed': int(config.seed),
      'process_count': jax.process_count(),
  }


def build_metadata(config: Any, host_state: PyTree, *, num_classes: int, total_steps: int
                   ) -> dict[str, Any]:
  """The JSON saved next to each state: :func:`run_metadata` plus step, checksum and versions."""
  meta = run_metadata(config, host_state, num_classes=num_classes, total_steps=total_steps)
  meta.update({
      'step': int(np.asarray(host_state.step)),
      'checksum': state_checksum(host_state),
      'jax_version': jax.__version__,
      'saved_at': time.strftime('%Y-%m-%dT%H:%M:%S%z'),
  })
  return meta


def check_compatible(saved: Mapping[str, Any], current: Mapping[str, Any], where: str
                     ) -> list[str]:
  """Raises UserError when ``saved`` belongs to another network or optimiser set-up; returns
  warnings for settings that may change between runs (learning rate, steps, batch, size...)."""
  if saved.get('format') != FORMAT:
    raise UserError(f'{where} holds a checkpoint in an unknown format {saved.get("format")!r}; '
                    'use another --workdir')
  def describe(m):
    return f"{m.get('model')} ({m.get('num_classes')} classes, overrides {m.get('model_overrides')})"
  if (saved.get('model') != current['model'] or saved.get('num_classes') != current['num_classes']
      or saved.get('architecture') != current['architecture']):
    raise UserError(f'{where} holds a checkpoint of {describe(saved)} at step {saved.get("step")}, '
                    f'not of {describe(current)}; use another --workdir (or init_from to fine-tune)')
  if saved.get('state_structure') != current['state_structure']:
    raise UserError(f'{where} holds a checkpoint trained with optimizer={saved.get("optimizer")} '
                    f'ema={saved.get("ema")}, which does not match this config '
                    f'(optimizer={current["optimizer"]}, ema={current["ema"]}); use another '
                    '--workdir or the same optimizer settings')
  warnings = []
  for key in ('learning_rate', 'num_train_steps', 'global_batch_size', 'image_size', 'dataset',
              'seed', 'model_overrides', 'process_count'):
    if saved.get(key) != current.get(key):
      warnings.append(f'{key} changed from {saved.get(key)!r} to {current.get(key)!r} since the '
                      f'checkpoint at step {saved.get("step")}')
  return warnings


class Checkpointer:
  """Saves and restores TrainStates under ``directory`` (see the module docstring).

  ``save`` returns at once (the write continues in the background); ``wait`` blocks until every
  started save is committed. All processes must call ``save``/``wait``/``close`` together.
  """

  def __init__(self, directory: str, *, keep: int = 3, async_save: bool = True,
               read_only: bool = False):
    self.directory = os.path.abspath(os.fspath(directory))
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep if keep and keep > 0 else None, create=not read_only,
        read_only=read_only, enable_async_checkpointing=async_save)
    self.manager = ocp.CheckpointManager(self.directory, options=options,
                                         item_names=(STATE, METADATA))

  def all_steps(self) -> list[int]:
    return sorted(self.manager.all_steps())

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def save(self, host_state: PyTree, metadata: Mapping[str, Any]) -> None:
    """Starts an asynchronous save of ``host_state`` (numpy leaves) at ``metadata['step']``."""
    step = int(metadata['step'])
    if step in self.manager.all_steps():
      return  # already saved (e.g. the final save right after a periodic one)
    self.manager.save(step, args=ocp.args.Composite(
        **{STATE: ocp.args.PyTreeSave(host_state), METADATA: ocp.args.JsonSave(dict(metadata))}),
        force=True)

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def read_metadata(self, step: int) -> dict[str, Any]:
    return dict(self.manager.restore(step, args=ocp.args.Composite(
        **{METADATA: ocp.args.JsonRestore()}))[METADATA])

  def restore(self, step: int, abstract_state: PyTree) -> PyTree:
    """The state saved at ``step`` as host numpy arrays, in the structure of ``abstract_state``."""
    restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray),
                                abstract_state)
    out = self.manager.restore(step, args=ocp.args.Composite(
        **{STATE: ocp.args.PyTreeRestore(item=abstract_state, restore_args=restore_args)}))
    return out[STATE]

  def restore_raw(self, step: int) -> dict[str, Any]:
    """The saved state as nested dicts of numpy arrays, whatever its structure (for init_from)."""
    out = self.manager.restore(step, args=ocp.args.Composite(**{STATE: ocp.args.PyTreeRestore()}))
    return jax.tree.map(np.asarray, out[STATE])

  def verify(self, step: int, abstract_state: PyTree) -> str | None:
    """None when the checkpoint at ``step`` restores and matches its checksum, else the reason."""
    try:
      meta = self.read_metadata(step)
    except Exception as e:  # noqa: BLE001 - any failure means "damaged"
      return f'metadata unreadable ({type(e).__name__}: {str(e).splitlines()[0][:200]})'
    try:
      state = self.restore(step, abstract_state)
    except Exception as e:  # noqa: BLE001
      return f'state unreadable ({type(e).__name__}: {str(e).splitlines()[0][:200]})'
    if state_checksum(state) != meta.get('checksum'):
      return 'checksum mismatch'
    return None

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()


def checkpoint_dir(workdir: str) -> str:
  return os.path.join(os.fspath(workdir), CHECKPOINT_SUBDIR)


def load_pretrained(path: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
  """``(params, batch_stats, metadata)`` of the latest checkpoint under ``path`` (a workdir or its
  ``checkpoints`` directory), as nested dicts of numpy arrays."""
  path = os.fspath(path)
  candidates = [checkpoint_dir(path), path]
  for directory in candidates:
    if os.path.isdir(directory):
      ckpt = Checkpointer(directory, read_only=True)
      step = ckpt.latest_step()
      if step is not None:
        raw = ckpt.restore_raw(step)
        meta = ckpt.read_metadata(step)
        ckpt.close()
        return raw['params'], raw.get('batch_stats') or {}, meta
      ckpt.close()
  raise UserError(f'init_from={path!r} holds no checkpoint (looked in {" and ".join(candidates)})')


def merge_pretrained(params: PyTree, pretrained: PyTree) -> tuple[PyTree, list[str], list[str]]:
  """Takes every leaf of ``pretrained`` whose path and shape match ``params``; returns
  ``(merged, loaded_paths, kept_paths)`` (kept = left at initialisation, e.g. a new classifier)."""
  flat_pre = {_path_str(p): x for p, x in jax.tree_util.tree_flatten_with_path(pretrained)[0]}
  loaded, kept = [], []

  def pick(path, x):
    key = _path_str(path)
    y = flat_pre.get(key)
    if y is not None and np.shape(y) == np.shape(x):
      loaded.append(key)
      return np.asarray(y, dtype=np.asarray(x).dtype)
    kept.append(key)
    return x

  merged = jax.tree_util.tree_map_with_path(pick, params)
  return merged, loaded, kept
